"""Kind ``entra-client-secret``: an Entra ID service principal with a client secret in Key Vault.

Client credentials against Entra ID for Azure Databricks' scope, then ``token/create`` as itself.
Entra's refusals (``AADSTS…``) become one line that says what to fix.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal, Self

from rotation import errors
from rotation.backends import DATABRICKS_SCOPE, BearerAuth
from rotation.fields import Guid, HttpsUrl
from rotation.principals.base import ClientSecretPrincipal
from rotation.principals.issuers import OwnIssuer
from rotation.secret import Secret

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rotation.backends import AzureOptions
    from rotation.principals.base import CredentialRotator, IssuerContext, TokenIssuer

__all__ = ["EntraClientSecretPrincipal", "token_error"]


class EntraClientSecretPrincipal(ClientSecretPrincipal):
    """An Entra ID service principal: client credentials, then ``token/create`` as itself."""

    kind: Literal["entra-client-secret"]
    tenant_id: Guid
    authority_host: HttpsUrl = "https://login.microsoftonline.com"
    graph_url: HttpsUrl = "https://graph.microsoft.com"
    """Microsoft Graph, where the principal rotates its own client secret."""

    @property
    def rotates_credential(self) -> bool:
        """Return True: Graph ``addPassword`` / ``removePassword`` on its own application."""
        return True

    @asynccontextmanager
    async def credential_rotator(
        self, context: IssuerContext, current: Secret
    ) -> AsyncIterator[CredentialRotator]:
        """Yield the rotator of the principal's client secret, acting with *current*."""
        from rotation.principals.entra_credential import EntraCredentials  # noqa: PLC0415

        async with EntraCredentials(self, context, current) as rotator:
            yield rotator

    @asynccontextmanager
    async def open(self, context: IssuerContext) -> AsyncIterator[TokenIssuer]:
        """Yield an issuer acting as the principal with Entra tokens from its client secret."""
        secret, expires = await context.secrets.read_credential(self.client_secret_name)
        async with _EntraToken(self, secret, context.azure) as entra:
            yield OwnIssuer(context.workspace, BearerAuth(entra.token), self.client_id, expires)


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
            raise token_error(self._p, str(exc.message or exc)) from None
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


def token_error(p: EntraClientSecretPrincipal, detail: str) -> errors.CredentialError:
    """Return Entra's refusal *detail* (``AADSTS…``) as one line that says what to fix."""
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
