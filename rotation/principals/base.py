"""Credential strategies: how each principal kind gets a PAT minted, listed and revoked.

The seam is :class:`TokenIssuer`. ``entra-client-secret`` and ``databricks-oauth`` act as the
service principal itself (``token/create``, ``token/list``, ``token/delete``) with a bearer token
from Entra ID or from the workspace's ``/oidc/v1/token``; ``databricks-obo`` uses an admin PAT and
the token-management routes. :func:`open_issuer` reads the credential from Key Vault and closes
what it opened.
"""

from __future__ import annotations

import re
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol, Self

import httpx

from rotation import errors
from rotation.backends.auth import DATABRICKS_SCOPE, BearerAuth, StaticBearerAuth
from rotation.backends.http import is_transient_status, json_body
from rotation.config.models import (
    DatabricksOAuthPrincipal,
    DatabricksOboPrincipal,
    EntraClientSecretPrincipal,
    ManagedIdentityPrincipal,
    SelfPrincipal,
    Target,
)
from rotation.secret import Secret

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

    from rotation.backends.databricks import NewToken, TokenInfo, Workspace
    from rotation.engine.runtime import AzureOptions, Runtime

__all__ = ["DATABRICKS_SCOPE", "CredentialReader", "TokenIssuer", "issuer_for", "open_issuer"]

_EARLY = 40.0  # refresh bearer tokens this many seconds before expiry (Databricks rejects < 30 s)


class TokenIssuer(Protocol):
    """Mint, list and revoke one service principal's PATs."""

    @property
    def application_id(self) -> str:
        """Return the principal's application id (SCIM ``userName``)."""
        ...

    async def authenticate(self) -> None:
        """Get the principal's bearer token now, so a bad credential fails at its own step."""
        ...

    @property
    def credential_expires_on(self) -> float | None:
        """Return when the credential that mints PATs expires (Key Vault ``exp``), if known."""
        ...

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        """Mint a PAT (retried only when it surely did not happen: 429, no connection)."""
        ...

    async def whoami(self) -> str | None:
        """Return the SCIM ``userName`` the principal's own token answers to (None: cannot ask)."""
        ...

    async def list(self) -> list[TokenInfo]:
        """List the principal's own PATs (only those: never another user's or principal's)."""
        ...

    @property
    def foreign(self) -> frozenset[str]:
        """Return the ids of tokens the last :meth:`list` saw that others own (admin lists)."""
        ...

    async def revoke(self, token_id: str) -> bool:
        """Revoke a PAT; False when it was already gone."""
        ...


class _Issuer:
    """What every issuer holds: the workspace, the auth it calls with, whom it mints for."""

    def __init__(
        self, workspace: Workspace, auth: httpx.Auth, application_id: str, expires: float | None
    ) -> None:
        self._ws = workspace
        self._auth = auth
        self._app = application_id
        self._expires = expires

    @property
    def application_id(self) -> str:
        return self._app

    @property
    def credential_expires_on(self) -> float | None:
        return self._expires

    @property
    def foreign(self) -> frozenset[str]:
        return frozenset()


class _SelfIssuer(_Issuer):
    """The principal acts as itself, with a bearer token from Entra ID or Databricks OAuth."""

    async def authenticate(self) -> None:
        if isinstance(self._auth, BearerAuth):
            await self._auth.token()

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        return await self._ws.create_token(
            self._auth,
            lifetime_seconds=lifetime_seconds,
            comment=comment,
            principal=self._app,
            scopes=scopes,
        )

    async def list(self) -> list[TokenInfo]:
        return await self._ws.list_tokens(self._auth, principal=self._app)

    async def whoami(self) -> str | None:
        return (await self._ws.me(self._auth, principal=self._app)).user_name

    async def revoke(self, token_id: str) -> bool:
        return await self._ws.delete_token(self._auth, token_id, principal=self._app)


class _OnBehalfOfIssuer(_Issuer):
    """An admin PAT mints and manages the principal's tokens.

    token-management lists every token of the workspace: :meth:`list` keeps only those the
    principal owns (its numeric id looked up once through SCIM), so a person's or another
    principal's PAT is never taken for this principal's.
    """

    _owner: str | None = None
    _foreign: frozenset[str] = frozenset()

    @property
    def foreign(self) -> frozenset[str]:
        return self._foreign

    async def authenticate(self) -> None:
        """Do nothing: the admin PAT is used as it is and judged by Databricks at the first call."""

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        return await self._ws.create_token_on_behalf_of(
            self._auth,
            application_id=self._app,
            lifetime_seconds=lifetime_seconds,
            comment=comment,
            scopes=scopes,
        )

    async def list(self) -> list[TokenInfo]:
        owner = await self._owner_id()
        tokens = await self._ws.list_all_tokens(self._auth, principal=self._app)
        self._foreign = frozenset(t.token_id for t in tokens if t.owner_id != owner)
        return [t for t in tokens if t.owner_id == owner]

    async def _owner_id(self) -> str:
        if self._owner is None:
            found = await self._ws.service_principal_id(self._auth, self._app)
            if found is None:
                msg = (
                    f"Service principal {self._app} is not in workspace {self._ws.url}: add it "
                    "(Settings → Identity and access → Service principals → Add), then retry."
                )
                raise errors.PrincipalNotInWorkspaceError(msg)
            self._owner = found
        return self._owner

    async def whoami(self) -> str | None:
        """Return None: the admin PAT answers as the admin, not as the principal."""
        return None

    async def revoke(self, token_id: str) -> bool:
        return await self._ws.delete_token_admin(self._auth, token_id, principal=self._app)


class _RenewingIssuer(_SelfIssuer):
    """The current PAT acts for the principal: it mints its successor (kind ``self``)."""

    async def authenticate(self) -> None:
        """Do nothing: the PAT is used as it is and judged by Databricks at the first call."""

    async def list(self) -> list[TokenInfo]:
        try:
            return await super().list()
        except errors.InvalidTokenError:
            raise _dead_pat(self._app) from None

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        try:
            return await super().create(
                lifetime_seconds=lifetime_seconds, comment=comment, scopes=scopes
            )
        except errors.InvalidTokenError:
            raise _dead_pat(self._app) from None


def _dead_pat(application_id: str) -> errors.CredentialError:
    msg = (
        f"The current PAT of service principal {application_id} no longer works (revoked, "
        "expired, or unused for 90 days). A PAT that renews itself cannot heal itself: create a "
        "new PAT as the service principal and store it as the next version of the target's "
        "secret (az keyvault secret set --vault-name <vault> --name <secret_name> --value <PAT>)."
    )
    return errors.CredentialError(msg)


async def _current_pat(target: Target, secrets: CredentialReader) -> Secret:
    """Return the PAT in the target's own secret: the credential of a ``self`` principal."""
    try:
        pat, _ = await secrets.read_credential(target.secret_name)
    except errors.SecretStoreError as exc:
        msg = (
            f"Target {target.name} renews its PAT with itself, so a first PAT must be in Key Vault "
            f"secret {target.secret_name!r}: create one as the service principal and store it "
            f"there (az keyvault secret set --name {target.secret_name} --value <PAT> "
            f"--expires <its expiry>). {exc}"
        )
        raise errors.CredentialError(msg) from None
    return pat


def issuer_for(
    rt: Runtime, target: Target, workspace: Workspace
) -> AbstractAsyncContextManager[TokenIssuer]:
    """Return :func:`open_issuer` for *target* with the runtime's store and clients."""
    return open_issuer(target, workspace=workspace, secrets=rt.store, http=rt.http, azure=rt.azure)


class CredentialReader(Protocol):
    """Read a principal's credential and its expiry from the secret store."""

    async def read_credential(self, name: str) -> tuple[Secret, float | None]:
        """Return secret *name*'s latest value and ``exp``; ``SecretMissingError`` if absent."""
        ...


@asynccontextmanager
async def open_issuer(
    target: Target,
    *,
    workspace: Workspace,
    secrets: CredentialReader,
    http: httpx.AsyncClient,
    azure: AzureOptions,
) -> AsyncIterator[TokenIssuer]:
    """Yield the issuer for *target*'s principal, reading its credential from Key Vault.

    A ``managed-identity`` principal has no stored credential; a ``self`` principal's is the
    target's own current PAT.
    """
    p = target.principal
    if isinstance(p, SelfPrincipal):
        pat = await _current_pat(target, secrets)
        yield _RenewingIssuer(workspace, StaticBearerAuth(pat), p.application_id, None)
        return
    if isinstance(p, ManagedIdentityPrincipal):
        from rotation.principals.managed_identity import ManagedIdentityToken  # noqa: PLC0415 — azure-identity

        async with ManagedIdentityToken(p, azure) as identity:
            yield _SelfIssuer(workspace, BearerAuth(identity.token), p.application_id, None)
        return
    secret, expires = await secrets.read_credential(p.credential_secret_name)
    if isinstance(p, DatabricksOboPrincipal):
        yield _OnBehalfOfIssuer(workspace, StaticBearerAuth(secret), p.application_id, expires)
    elif isinstance(p, DatabricksOAuthPrincipal):
        oauth = _DatabricksOAuth(http, workspace.url, p.client_id, secret)
        yield _SelfIssuer(workspace, BearerAuth(oauth.token), p.client_id, expires)
    else:
        async with _EntraToken(p, secret, azure) as entra:
            yield _SelfIssuer(workspace, BearerAuth(entra.token), p.client_id, expires)


class _EntraToken:
    """Client-credentials tokens for Azure Databricks from Entra ID (azure-identity caches them)."""

    def __init__(self, p: EntraClientSecretPrincipal, secret: Secret, azure: AzureOptions) -> None:
        from azure.identity.aio import ClientSecretCredential  # noqa: PLC0415

        self._p = p
        self._credential = ClientSecretCredential(
            p.tenant_id,
            p.client_id,
            secret.reveal(),
            authority=str(p.authority_host),
            **azure.client_kwargs(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._credential.close()

    async def token(self) -> Secret:
        from azure.core.exceptions import AzureError, ClientAuthenticationError  # noqa: PLC0415

        try:
            token = await self._credential.get_token(DATABRICKS_SCOPE)
        except ClientAuthenticationError as exc:
            raise _entra_error(self._p, str(exc.message or exc)) from None
        except AzureError as exc:
            name = type(exc).__name__
            msg = f"Entra ID did not answer for {self._p.client_id} ({name}); retry later."
            raise errors.CredentialError(msg, transient=True) from None
        return Secret(token.token)


_AADSTS_HINTS = {
    "7000215": "the client secret is wrong or expired: create a new one under Certificates & "
    "secrets and store its *Value* (not its ID) in Key Vault secret {secret!r}",
    "7000222": "the client secret has expired: create a new one and store it in {secret!r}",
    "700016": "no application {client!r} in tenant {tenant!r}: check client_id and tenant_id",
    "90002": "tenant {tenant!r} does not exist: check tenant_id",
    "70011": "the scope was refused; the rotator always uses {scope} — check authority_host",
    "500011": "Azure Databricks is unknown in tenant {tenant!r}: check tenant_id, authority_host",
}


def _entra_error(p: EntraClientSecretPrincipal, detail: str) -> errors.CredentialError:
    found = re.search(r"AADSTS(\d+)", detail)
    code = found.group(1) if found else None
    if code is None:  # no AADSTS verdict: a 5xx, a throttle or a broken answer
        msg = f"Entra ID could not issue a token for {p.client_id} right now; retry later."
        return errors.CredentialError(msg, transient=True)
    hint = _AADSTS_HINTS.get(code, "check tenant_id, client_id and the client secret")
    text = hint.format(
        secret=p.client_secret_name, client=p.client_id, tenant=p.tenant_id, scope=DATABRICKS_SCOPE
    )
    msg = f"Entra ID refused a token for service principal {p.client_id} (AADSTS{code}): {text}."
    return errors.CredentialError(msg)


class _DatabricksOAuth:
    """OAuth M2M tokens from the workspace's ``/oidc/v1/token``, cached until near expiry."""

    def __init__(self, http: httpx.AsyncClient, url: str, client_id: str, secret: Secret) -> None:
        self._http = http
        self._url = f"{url}/oidc/v1/token"
        self._client_id = client_id
        self._secret = secret
        self._cached: tuple[Secret, float] | None = None

    async def token(self) -> Secret:
        if self._cached and self._cached[1] - _EARLY > time.monotonic():
            return self._cached[0]
        form = {"grant_type": "client_credentials", "scope": "all-apis"}
        try:
            response = await self._http.post(
                self._url, data=form, auth=(self._client_id, self._secret.reveal())
            )
        except httpx.TransportError as exc:
            msg = f"Could not reach {self._url} ({type(exc).__name__}); retrying later may help."
            raise errors.CredentialError(msg, transient=True) from None
        body = json_body(response)
        if not response.is_success or "access_token" not in body:
            raise self._error(response.status_code, body)
        expires = time.monotonic() + float(body.get("expires_in", 3600))
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
