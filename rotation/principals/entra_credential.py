"""Rotating an Entra service principal's own client secret through Microsoft Graph.

The principal acts with its current client secret: an app-only Graph token, then ``addPassword``
(display name: the rotator's marker) and ``removePassword`` on its own application. A new secret
is verified at Entra's token endpoint, which is eventually consistent: ``AADSTS7000215`` ("invalid
client secret") is "not yet" for up to a few minutes and is polled with backoff; any other
refusal means the secret is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from rotation import errors
from rotation.backends import DATABRICKS_SCOPE, BearerAuth, RetryPolicy, retrying
from rotation.backends.graph import (
    GRAPH_SCOPE,
    OWNED_BY,
    OWNED_BY_ROLE,
    WRITE_ALL_ROLES,
    GraphApplication,
    GraphPassword,
)
from rotation.principals.base import Credential, NewCredential
from rotation.principals.entra import token_error
from rotation.secret import Secret

if TYPE_CHECKING:
    from rotation.principals.base import IssuerContext
    from rotation.principals.entra import EntraClientSecretPrincipal

__all__ = ["PROPAGATION", "EntraCredentials"]

PROPAGATION = RetryPolicy(attempts=16, wait_initial=1.0, wait_max=20.0, timeout=240.0)
"""How long a new client secret refused as AADSTS7000215 is polled (Entra replicates it)."""
_NOT_YET = "AADSTS7000215"


def _credential(p: GraphPassword) -> Credential:
    return Credential(p.key_id, p.display_name, p.hint, p.start, p.end)


class EntraCredentials:
    """The client secrets of one Entra application, rotated by its own service principal."""

    keeps_marker = True
    quota: int | None = None

    def __init__(
        self, p: EntraClientSecretPrincipal, context: IssuerContext, current: Secret
    ) -> None:
        from azure.identity.aio import ClientSecretCredential  # noqa: PLC0415

        self._p = p
        self._context = context
        self._login = ClientSecretCredential(
            p.tenant_id,
            p.client_id,
            current.reveal(),
            authority=str(p.authority_host),
            **context.azure.client_kwargs(),
        )
        auth = BearerAuth(self._graph_token)
        self._app = GraphApplication(
            context.http, str(p.graph_url), p.client_id, auth, context.retry
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._login.close()

    async def _graph_token(self) -> Secret:
        return await self._token(self._login, GRAPH_SCOPE)

    async def _token(self, login: object, scope: str) -> Secret:
        from azure.core.exceptions import AzureError, ClientAuthenticationError  # noqa: PLC0415

        try:
            token = await login.get_token(scope)  # type: ignore[attr-defined]
        except ClientAuthenticationError as exc:
            raise token_error(self._p, str(exc.message or exc)) from None
        except AzureError as exc:
            msg = f"Entra ID did not answer for {self._p.client_id} ({type(exc).__name__}); "
            raise errors.CredentialError(msg + "retry later.", transient=True) from None
        return Secret(str(token.token))

    async def list(self) -> list[Credential]:
        """List the application's client secrets (Graph shows no values)."""
        return [_credential(p) for p in await self._app.passwords()]

    async def create(self, *, marker: str, lifetime_seconds: int) -> NewCredential:
        """``addPassword`` with *marker* as its display name."""
        end = self._context.clock() + lifetime_seconds
        made = await self._app.add_password(marker, end)
        if made.secret is None or not made.key_id:
            msg = f"Graph's addPassword answer for {self._p.client_id} carried no secretText."
            raise errors.CredentialRotationError(msg)
        return NewCredential(_credential(made), made.secret)

    async def delete(self, key_id: str) -> bool:
        """``removePassword``; False when the key id is already gone."""
        return await self._app.remove_password(key_id)

    async def check_rights(self) -> str | None:
        """Read the application, its owners and the SP's Graph permissions (changes nothing)."""
        app = self._p.client_id
        try:
            await self._app.passwords()
            owners = await self._app.owner_ids()
            roles = await self._app.app_role_ids()
        except errors.CredentialRotationError as exc:
            return str(exc)
        if not (OWNED_BY_ROLE in roles or roles & WRITE_ALL_ROLES):
            return (
                f"service principal {app} lacks the Microsoft Graph application permission "
                f"{OWNED_BY}: App registrations → the app → API permissions → Add → Microsoft "
                "Graph → Application permissions → it → Grant admin consent"
            )
        if app.lower() not in owners and not roles & WRITE_ALL_ROLES:
            return (
                f"service principal {app} does not own its application: az ad app owner add "
                f"--id {app} --owner-object-id <its service principal's object id>"
            )
        return None

    async def verify(self, value: Secret) -> None:
        """Get an Azure Databricks token with *value*, polling while Entra says "not yet"."""
        await retrying(PROPAGATION, lambda: self._try(value))

    async def _try(self, value: Secret) -> None:
        from azure.identity.aio import ClientSecretCredential  # noqa: PLC0415

        p = self._p
        login = ClientSecretCredential(
            p.tenant_id,
            p.client_id,
            value.reveal(),
            authority=str(p.authority_host),
            **self._context.azure.client_kwargs(),
        )
        async with login:
            try:
                await self._token(login, DATABRICKS_SCOPE)
            except errors.CredentialError as exc:
                if _NOT_YET in str(exc):
                    msg = (
                        f"Entra ID does not accept the new client secret of {p.client_id} yet "
                        f"({_NOT_YET}: it replicates for up to a few minutes); a later run "
                        "verifies it again."
                    )
                    raise errors.CredentialRotationError(msg, transient=True) from None
                raise
