"""Kind ``databricks-oauth``: a Databricks-managed service principal with an OAuth secret.

OAuth M2M at the workspace's ``/oidc/v1/token`` (tokens cached until near expiry), then
``token/create`` as the principal — the documented route on Azure.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import httpx

from rotation import errors
from rotation.backends import (
    UNTRUSTED_ADVICE,
    BearerAuth,
    is_transient_status,
    json_body,
    untrusted_certificate,
)
from rotation.principals.base import ClientSecretPrincipal
from rotation.principals.issuers import OwnIssuer
from rotation.secret import Secret

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rotation.principals.base import CredentialRotator, IssuerContext, TokenIssuer
from rotation.units import HOUR

__all__ = ["DatabricksOAuth", "DatabricksOAuthPrincipal"]

_EARLY = 40.0  # refresh bearer tokens this many seconds before expiry (Databricks rejects < 30 s)


class DatabricksOAuthPrincipal(ClientSecretPrincipal):
    """A Databricks-managed SP: OAuth M2M at ``/oidc/v1/token``, then ``token/create``."""

    kind: Literal["databricks-oauth"]

    @property
    def rotates_credential(self) -> bool:
        """Return True: the workspace's secrets proxy (the principal must be a workspace admin)."""
        return True

    @asynccontextmanager
    async def credential_rotator(
        self, context: IssuerContext, current: Secret
    ) -> AsyncIterator[CredentialRotator]:
        """Yield the rotator of the principal's OAuth secret, acting with *current*."""
        from rotation.principals.databricks_credential import OAuthCredentials  # noqa: PLC0415

        yield OAuthCredentials(self, context, current)

    @asynccontextmanager
    async def open(self, context: IssuerContext) -> AsyncIterator[TokenIssuer]:
        """Yield an issuer acting as the principal with OAuth tokens from its secret."""
        secret, expires = await context.secrets.read_credential(self.client_secret_name)
        oauth = DatabricksOAuth(context.http, context.workspace.url, self.client_id, secret)
        yield OwnIssuer(context.workspace, BearerAuth(oauth.token), self.client_id, expires)


class DatabricksOAuth:
    """OAuth M2M tokens from the workspace's ``/oidc/v1/token``, cached until near expiry."""

    def __init__(self, http: httpx.AsyncClient, url: str, client_id: str, secret: Secret) -> None:
        self._http = http
        self._url = f"{url}/oidc/v1/token"
        self._client_id = client_id
        self._secret = secret
        self._cached: tuple[Secret, float] | None = None

    async def token(self) -> Secret:
        """Return an OAuth token for the principal (cached until near its expiry)."""
        if self._cached and self._cached[1] - _EARLY > time.monotonic():
            return self._cached[0]
        form = {"grant_type": "client_credentials", "scope": "all-apis"}
        try:
            response = await self._http.post(
                self._url, data=form, auth=(self._client_id, self._secret.reveal())
            )
        except httpx.TransportError as exc:
            if (why := untrusted_certificate(exc)) is not None:
                msg = f"Databricks OAuth at {self._url}: its TLS certificate is not trusted "
                msg += f"({why}); {UNTRUSTED_ADVICE}."
                raise errors.CredentialError(msg) from None
            msg = f"Could not reach {self._url} ({type(exc).__name__}); retrying later may help."
            raise errors.CredentialError(msg, transient=True) from None
        body = json_body(response)
        if not response.is_success or "access_token" not in body:
            raise self._error(response.status_code, body)
        expires = time.monotonic() + float(body.get("expires_in", HOUR))
        self._cached = (Secret(str(body["access_token"])), expires)
        return self._cached[0]

    def _error(self, status: int, body: dict[str, object]) -> errors.CredentialError:
        error = body.get("error", "unknown")
        described = body.get("error_description", "")
        if is_transient_status(status) or "temporarily" in str(described).lower():
            msg = f"Databricks OAuth at {self._url} is unavailable ({status} {error}); retry later."
            return errors.CredentialError(msg, transient=True)
        msg = (
            f"Databricks OAuth at {self._url} refused service principal {self._client_id} "
            f"({status} {error}: {described}). Check the client_id is the SP's application id "
            "and create a new OAuth secret (Settings → Identity and access → Service principals "
            "→ Secrets) if it expired; store it in the configured Key Vault secret."
        )
        return errors.CredentialError(msg)
