"""Rotating a Databricks-managed service principal's own OAuth secret (the secrets proxy).

The principal acts with its current secret (an OAuth M2M token) on the workspace's
service-principal secrets proxy, which only workspace admins may call. A secret keeps no name, so
the rotator's proof that one is its own is its records in Key Vault (the secret id, the intent).
At most 5 secrets per principal. A new secret is verified by an OAuth token from it and one
SCIM ``Me`` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation import errors
from rotation.backends import BearerAuth, RetryPolicy, retrying
from rotation.backends.databricks_secrets import SECRET_QUOTA, OAuthSecretInfo, SecretsProxy
from rotation.principals.base import Credential, NewCredential
from rotation.principals.databricks_oauth import DatabricksOAuth

if TYPE_CHECKING:
    from rotation.principals.base import IssuerContext
    from rotation.principals.databricks_oauth import DatabricksOAuthPrincipal
    from rotation.secret import Secret

__all__ = ["OAuthCredentials"]

_VERIFY = RetryPolicy(attempts=6, wait_initial=1.0, wait_max=10.0, timeout=60.0)


def _credential(s: OAuthSecretInfo) -> Credential:
    return Credential(s.secret_id, None, None, s.created_on, s.expires_on)


class OAuthCredentials:
    """The OAuth secrets of one Databricks service principal, rotated by the principal itself."""

    keeps_marker = False
    quota: int | None = SECRET_QUOTA

    def __init__(
        self, p: DatabricksOAuthPrincipal, context: IssuerContext, current: Secret
    ) -> None:
        self._p = p
        self._context = context
        oauth = DatabricksOAuth(context.http, context.workspace.url, p.client_id, current)
        self._proxy = SecretsProxy(
            context.http, context.workspace, p.client_id, BearerAuth(oauth.token), context.retry
        )

    async def list(self) -> list[Credential]:
        """List the principal's live OAuth secrets (every page)."""
        return [_credential(s) for s in await self._proxy.list()]

    async def create(self, *, marker: str, lifetime_seconds: int) -> NewCredential:
        """Create a secret (the proxy keeps no name: *marker* is recorded in Key Vault only)."""
        del marker
        made = await self._proxy.create(lifetime_seconds)
        if made.secret is None or not made.secret_id:
            msg = f"The secrets proxy's answer for {self._p.client_id} carried no secret."
            raise errors.CredentialRotationError(msg)
        return NewCredential(_credential(made), made.secret)

    async def delete(self, key_id: str) -> bool:
        """Delete a secret; False when it is already gone."""
        return await self._proxy.delete(key_id)

    async def check_rights(self) -> str | None:
        """List the principal's secrets through the proxy (admins only; changes nothing)."""
        try:
            await self._proxy.list()
        except errors.CredentialRotationError as exc:
            return str(exc)
        return None

    async def verify(self, value: Secret) -> None:
        """Get an OAuth token with *value*, then call SCIM ``Me`` with it."""
        await retrying(_VERIFY, lambda: self._try(value))

    async def _try(self, value: Secret) -> None:
        ctx, app = self._context, self._p.client_id
        oauth = DatabricksOAuth(ctx.http, ctx.workspace.url, app, value)
        try:
            me = await ctx.workspace.me(BearerAuth(oauth.token), principal=app)
        except errors.DatabricksError as exc:
            msg = f"The new OAuth secret of {app} was refused by the workspace ({exc.kind})."
            raise errors.CredentialError(msg, transient=exc.transient) from None
        if me.user_name.strip().lower() != app.lower():
            msg = f"The new OAuth secret of {app} answers as {me.user_name!r}."
            raise errors.CredentialError(msg)
