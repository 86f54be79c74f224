"""``grant``: the procedure's CAN_USE step — give a target's service principal use of tokens.

With a workspace admin's credential, ``PATCH /api/2.0/permissions/authorization/tokens`` adds the
principal with ``CAN_USE``. Never ``PUT``: a PUT that omits an existing principal deletes its
tokens. Idempotent: when the principal already has ``CAN_USE`` nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.auth import BearerAuth
from rotation.databricks import Workspace
from rotation.principals import DATABRICKS_SCOPE
from rotation.secret import Secret

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import httpx
    from azure.core.credentials_async import AsyncTokenCredential

    from rotation.config import Target
    from rotation.runtime import Runtime

__all__ = ["grant_can_use", "login_auth"]


async def grant_can_use(rt: Runtime, target: Target, admin: httpx.Auth) -> bool:
    """Give *target*'s principal ``CAN_USE`` on tokens; return whether anything changed."""
    workspace = Workspace(rt.http, target.workspace_url, rt.retry)
    app = target.principal.application_id
    if app.lower() in await workspace.token_users(admin, principal="admin"):
        return False
    await workspace.grant_can_use(admin, app, principal="admin")
    return True


def login_auth(
    credential: AsyncTokenCredential,
) -> httpx.Auth:
    """Return bearer auth for Azure Databricks from *credential* (the caller's Entra login)."""

    async def token() -> Secret:
        return Secret((await credential.get_token(DATABRICKS_SCOPE)).token)

    return BearerAuth(token)


def default_login(rt: Runtime) -> AbstractAsyncContextManager[AsyncTokenCredential]:
    """Return the caller's ``DefaultAzureCredential`` over the run's shared transport."""
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    return DefaultAzureCredential(**rt.azure.client_kwargs())
