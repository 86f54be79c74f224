"""``grant``: the procedure's CAN_USE step — give a target's service principal use of tokens.

With a workspace admin's credential, ``PATCH /api/2.0/permissions/authorization/tokens`` adds the
principal with ``CAN_USE``. Never ``PUT``: a PUT that omits an existing principal deletes its
tokens. Idempotent: when the principal already has ``CAN_USE`` nothing is sent.

The admin is either the caller's own Entra login (``--admin-login``: ``DefaultAzureCredential``,
i.e. ``az login`` or ``AZURE_*`` variables) or a workspace admin's PAT in Key Vault; messages
name which (:class:`WorkspaceAdmin`), never "service principal".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rotation import errors
from rotation.backends import DATABRICKS_SCOPE, Admin, BearerAuth, Workspace
from rotation.secret import Secret

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import httpx
    from azure.core.credentials_async import AsyncTokenCredential

    from rotation.config import Target
    from rotation.engine import Runtime

__all__ = ["LOGIN", "WorkspaceAdmin", "default_login", "grant_can_use", "login_auth"]

LOGIN: Final = Admin("your own Entra login (--admin-login)")


@dataclass(frozen=True, slots=True)
class WorkspaceAdmin:
    """A workspace admin's credential, and who it is (for messages)."""

    auth: httpx.Auth
    who: Admin


async def grant_can_use(rt: Runtime, target: Target, admin: WorkspaceAdmin) -> bool:
    """Give *target*'s principal ``CAN_USE`` on tokens; return whether anything changed."""
    workspace = Workspace(rt.http, target.workspace_url, rt.retry)
    app = target.principal.application_id
    if app.lower() in await workspace.token_users(admin.auth, principal=admin.who):
        return False
    await workspace.grant_can_use(admin.auth, app, principal=admin.who)
    return True


def login_auth(credential: AsyncTokenCredential) -> WorkspaceAdmin:
    """Return the caller's Entra login (*credential*) as the workspace admin.

    A login that gets no token is a ``CredentialError`` saying how to sign in.
    """

    async def token() -> Secret:
        from azure.core.exceptions import AzureError, ClientAuthenticationError  # noqa: PLC0415

        try:
            return Secret((await credential.get_token(DATABRICKS_SCOPE)).token)
        except ClientAuthenticationError as exc:
            why = str(exc.message or exc).strip().splitlines()[0]
            msg = (
                f"--admin-login: {LOGIN} got no token for Azure Databricks ({why}). Sign in as a "
                "workspace admin with az login (or set AZURE_* variables: python -m emulators "
                "serve writes them for its sandbox admin), or name an admin's PAT in "
                "admin_token_secret_name instead."
            )
            raise errors.CredentialError(msg) from None
        except AzureError as exc:
            msg = f"--admin-login: Entra ID did not answer ({type(exc).__name__}); retry later."
            raise errors.CredentialError(msg, transient=True) from None

    return WorkspaceAdmin(BearerAuth(token), LOGIN)


def default_login(rt: Runtime) -> AbstractAsyncContextManager[AsyncTokenCredential]:
    """Return the caller's ``DefaultAzureCredential`` over the run's shared transport."""
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    return DefaultAzureCredential(**rt.azure.client_kwargs())
