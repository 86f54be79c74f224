"""State of the Microsoft Graph emulator: owners, app-role grants and the tenant's secret policy.

Graph is a view of the same directory the Entra ID emulator serves: applications and their client
secrets live in `EntraState`, so a secret added here is one the token endpoint accepts (once
replicated, after `GraphState.replication_delay` virtual seconds) and a removed one stops working.
What only Graph knows is kept here: who owns an application, which Graph application permissions
(app roles) each service principal holds, and the tenant's app management policy (a maximum
password lifetime).

Authorisation follows the contract sheet (docs/reference/credential-apis.md): app-only callers
need ``Application.ReadWrite.OwnedBy`` *and* ownership of the application, or a tenant-wide
permission; reading also works with a ``*.Read.All`` permission.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulators.entra_model import Application, PasswordCredential
    from emulators.entra_state import EntraState

__all__ = [
    "APP_ROLE_IDS",
    "DEFAULT_PASSWORD_LIFETIME",
    "GRAPH_APP_ID",
    "OWNED_BY",
    "AppRoleGrant",
    "GraphError",
    "GraphState",
]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
"""Microsoft Graph's application id (the resource of its app roles) [C]."""
OWNED_BY = "Application.ReadWrite.OwnedBy"
APP_ROLE_IDS: dict[str, str] = {
    OWNED_BY: "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
}
"""Graph application permission -> app role id (Graph's permissions reference; see the sheet)."""
_WRITE_ALL = frozenset({"Application.ReadWrite.All", "Directory.ReadWrite.All"})
_READ_ALL = _WRITE_ALL | {"Application.Read.All", "Directory.Read.All"}
DEFAULT_PASSWORD_LIFETIME = 2 * 365 * 86400
"""``addPassword`` without ``endDateTime``: start + 2 years [C] (as 730 days here)."""


class GraphError(Exception):
    """A Graph API error; the app renders it as ``{"error": {"code", "message", ...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def not_found(reference: str) -> GraphError:
    """Graph's 404 for an object that does not exist [O: msgraph-sdk-java-core #363]."""
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{reference}' does not exist or one of its queried reference-property objects"
        " are not present.",
    )


def denied() -> GraphError:
    """Graph's 403 for a caller without the permission (or ownership) an operation needs."""
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


@dataclass(frozen=True, slots=True)
class AppRoleGrant:
    """One Graph application permission granted to a service principal (an appRoleAssignment)."""

    assignment_id: str
    permission: str
    app_role_id: str
    created: float = field(compare=False)


class GraphState:
    """Graph's own part of the directory; thread-safe. Secrets themselves live in `EntraState`."""

    def __init__(self, *, entra: EntraState) -> None:
        self.entra = entra
        self.clock = entra.clock
        self.graph_sp_id = str(uuid.uuid4())
        """Object id of Microsoft Graph's service principal in the tenant (``resourceId``)."""
        self.replication_delay = 0.0
        """Virtual seconds before a secret added by ``addPassword`` works at the token endpoint."""
        self.max_password_lifetime: float | None = None
        """The tenant policy's ``passwordLifetime`` restriction in seconds (None: no policy)."""
        self.policy_id = str(uuid.uuid4())
        """Id of the app management policy named in ``CredentialInvalidLifetimeAsPerAppPolicy``."""
        self._owners: dict[str, list[str]] = {}
        self._grants: dict[str, dict[str, AppRoleGrant]] = {}
        self._lock = threading.Lock()

    # -- owners and permissions (seeding and checks) ----------------------------------------------

    def add_owner(self, app_client_id: str, owner_client_id: str) -> None:
        """Make a service principal (an app's or a managed identity's) an owner of an app."""
        self._require_app(app_client_id)
        if self.entra.service_principal_object_id(owner_client_id) is None:
            raise KeyError(f"no service principal with client id {owner_client_id}")
        with self._lock:
            owners = self._owners.setdefault(app_client_id, [])
            if owner_client_id not in owners:
                owners.append(owner_client_id)

    def remove_owner(self, app_client_id: str, owner_client_id: str) -> None:
        """Remove an owner of an app (no-op if it is not one)."""
        with self._lock:
            owners = self._owners.get(app_client_id, [])
            if owner_client_id in owners:
                owners.remove(owner_client_id)

    def owners(self, app_client_id: str) -> list[str]:
        """Return the client ids of an app's owners, first added first."""
        with self._lock:
            return list(self._owners.get(app_client_id, []))

    def grant(self, client_id: str, *permissions: str) -> None:
        """Grant Graph application permissions (with admin consent) to a service principal."""
        unknown = [p for p in permissions if p not in APP_ROLE_IDS]
        if unknown:
            raise ValueError(f"unknown Graph permission(s) {unknown}; use {sorted(APP_ROLE_IDS)}")
        now = self.clock.now()
        with self._lock:
            grants = self._grants.setdefault(client_id, {})
            for permission in permissions:
                if permission not in grants:
                    grants[permission] = AppRoleGrant(
                        str(uuid.uuid4()), permission, APP_ROLE_IDS[permission], now
                    )

    def revoke(self, client_id: str, permission: str) -> None:
        """Take a Graph application permission away from a service principal."""
        with self._lock:
            self._grants.get(client_id, {}).pop(permission, None)

    def grants(self, client_id: str) -> list[AppRoleGrant]:
        """Return the Graph permissions granted to a service principal, oldest first."""
        with self._lock:
            return list(self._grants.get(client_id, {}).values())

    def permissions(self, client_id: str) -> frozenset[str]:
        """Return the names of the Graph permissions granted to a service principal."""
        return frozenset(g.permission for g in self.grants(client_id))

    def may_read(self, caller: str, app_client_id: str) -> bool:
        """Tell whether ``caller`` (a client id) may read an application and its owners."""
        held = self.permissions(caller)
        return bool(held & _READ_ALL) or (OWNED_BY in held and caller in self.owners(app_client_id))

    def may_write(self, caller: str, app_client_id: str) -> bool:
        """Tell whether ``caller`` may add or remove the application's passwords."""
        held = self.permissions(caller)
        return bool(held & _WRITE_ALL) or (
            OWNED_BY in held and caller in self.owners(app_client_id)
        )

    # -- passwords ------------------------------------------------------------------------------

    def add_password(
        self,
        app_client_id: str,
        *,
        display_name: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> PasswordCredential:
        """``addPassword`` without the caller checks: defaults, tenant policy, replication lag.

        The token endpoint accepts the secret from ``start`` or once replicated, whichever is
        later (a future ``startDateTime`` holding it back is [I]).

        Raises `GraphError` 400 ``CredentialInvalidLifetimeAsPerAppPolicy`` when the lifetime is
        over the policy's maximum (the default 2 years too) and 400 when ``end`` <= ``start``.
        """
        self._require_app(app_client_id)
        now = self.clock.now()
        start = now if start is None else start
        end = start + DEFAULT_PASSWORD_LIFETIME if end is None else end
        if end <= start:
            raise GraphError(
                400,
                "Request_BadRequest",
                "The end date of the credential must be after its start date.",
            )
        limit = self.max_password_lifetime
        if limit is not None and end - start > limit:
            text = (
                "Credential lifetime exceeds the max value allowed as per assigned policy"
                f" '{self.policy_id}'."
            )
            detail = {"code": "InvalidKeyEndDate", "message": text, "target": "EndDate"}
            raise GraphError(400, "CredentialInvalidLifetimeAsPerAppPolicy", text, details=[detail])
        return self.entra.add_password(
            app_client_id,
            display_name=display_name,
            start=start,
            end=end,
            usable_from=max(start, now + self.replication_delay),
        )

    def remove_password(self, app_client_id: str, key_id: str) -> None:
        """``removePassword``: delete a secret by key id; 404 if the app has none with it [I]."""
        self._require_app(app_client_id)
        if not self.entra.remove_password(app_client_id, key_id):
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"No password credential with keyId '{key_id}' exists on the application.",
            )

    def _require_app(self, app_client_id: str) -> Application:
        app = self.entra.application(client_id=app_client_id)
        if app is None:
            raise KeyError(f"no application with client id {app_client_id}")
        return app

    def __repr__(self) -> str:
        with self._lock:
            return f"GraphState(owned_apps={len(self._owners)}, grantees={len(self._grants)})"
