"""State of the Entra ID emulator: app registrations, managed identities and issued tokens.

A managed identity is a service principal without app registration or secret: only the identity
endpoint (`emulators.identity`) issues its tokens, which are the same `IssuedToken` an app gets
from the token endpoint, so every emulator accepts them alike.

An app's client secrets are `PasswordCredential`s on the virtual clock: each has an end (None:
never expires, as seeded ones) and a moment from which the token endpoint accepts it, so a secret
added through Microsoft Graph (`emulators.graph_state`) can lag behind as Entra's replication does.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from emulators.clock import Clock
from emulators.entra_model import (
    AppCredential,
    Application,
    IssuedToken,
    ManagedIdentity,
    PasswordCredential,
    SecretStatus,
    ServicePrincipal,
    new_client_secret,
)

if TYPE_CHECKING:
    from emulators.registry import SecretRegistry

__all__ = [
    "DATABRICKS_RESOURCE",
    "DEVOPS_RESOURCE",
    "GRAPH_RESOURCE",
    "KNOWN_RESOURCES",
    "VAULT_RESOURCE",
    "AppCredential",
    "Application",
    "EntraState",
    "IssuedToken",
    "ManagedIdentity",
    "PasswordCredential",
    "SecretStatus",
    "ServicePrincipal",
    "audience_of",
]

DATABRICKS_RESOURCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
"""Azure Databricks' first-party application id: the audience of Databricks tokens."""
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
"""Azure DevOps' first-party application id: the audience of Azure DevOps tokens."""
VAULT_RESOURCE = "https://vault.azure.net"
GRAPH_RESOURCE = "https://graph.microsoft.com"
KNOWN_RESOURCES: dict[str, str] = {
    DATABRICKS_RESOURCE: DATABRICKS_RESOURCE,
    DEVOPS_RESOURCE: DEVOPS_RESOURCE,
    VAULT_RESOURCE: VAULT_RESOURCE,
    GRAPH_RESOURCE: GRAPH_RESOURCE,
    "https://storage.azure.com": "https://storage.azure.com",
    "https://management.core.windows.net": "https://management.core.windows.net/",
    "https://management.azure.com": "https://management.azure.com/",
}
"""Resource named in a ``<resource>/.default`` scope -> audience of the issued token."""


def audience_of(resource: str) -> str | None:
    """Return the audience of a token for ``resource`` (trailing ``/`` ignored), None if unknown."""
    return KNOWN_RESOURCES.get(resource.rstrip("/"))


@dataclass
class _App:
    info: Application
    passwords: list[PasswordCredential] = field(default_factory=list, repr=False)


class EntraState:
    """App registrations of one tenant and the access tokens issued to them; thread-safe."""

    def __init__(
        self,
        *,
        tenant_id: str,
        registry: SecretRegistry,
        token_lifetime: int = 3599,
        clock: Clock | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.clock = clock or Clock()
        """Virtual time: client secrets expire and replicate by it (tokens by real time)."""
        self.token_lifetime = token_lifetime
        """Seconds (real time) an issued access token lives; lower it to test refreshing."""
        self._registry = registry
        self._apps: dict[str, _App] = {}
        self._identities: dict[str, ManagedIdentity] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()

    def add_app(self, display_name: str = "app") -> AppCredential:
        """Register an application (service principal) with one fresh client secret."""
        client_id = str(uuid.uuid4())
        info = Application(client_id, str(uuid.uuid4()), str(uuid.uuid4()), display_name)
        with self._lock:
            self._apps[client_id] = _App(info)
        return AppCredential(self.tenant_id, client_id, self.add_client_secret(client_id))

    def add_client_secret(self, client_id: str) -> str:
        """Add another client secret (usable at once, never expiring) to an app and return it.

        Valid from the epoch: a seeded secret works whatever the virtual clock is moved back to
        (the simulation starts its history 88 days before day 0).
        """
        return self.add_password(client_id, start=0.0, usable_from=0.0).secret_text

    def add_password(
        self,
        client_id: str,
        *,
        display_name: str | None = None,
        start: float | None = None,
        end: float | None = None,
        usable_from: float | None = None,
    ) -> PasswordCredential:
        """Add a client secret with a fresh key id; ``start``/``usable_from`` default to now.

        No checks (Graph's rules are `GraphState.add_password`'s); the value is registered.
        """
        now = self.clock.now()
        value = new_client_secret()
        self._registry.add(value, "client_secret")
        start = now if start is None else start
        credential = PasswordCredential(
            str(uuid.uuid4()), display_name, start, end,
            now if usable_from is None else usable_from, value,
        )  # fmt: skip
        with self._lock:
            self._app(client_id).passwords.append(credential)
        return credential

    def remove_client_secret(self, client_id: str, secret: str) -> None:
        """Delete one client secret of an app (tokens already issued stay valid)."""
        with self._lock:
            app = self._app(client_id)
            kept = [p for p in app.passwords if p.secret_text != secret]
            if len(kept) == len(app.passwords):
                raise KeyError("that client secret does not belong to the app")
            app.passwords = kept

    def remove_password(self, client_id: str, key_id: str) -> bool:
        """Delete the client secret with ``key_id`` (caseless); return whether there was one."""
        with self._lock:
            app = self._app(client_id)
            kept = [p for p in app.passwords if p.key_id.lower() != key_id.lower()]
            removed = len(kept) != len(app.passwords)
            app.passwords = kept
            return removed

    def passwords(self, client_id: str) -> list[PasswordCredential]:
        """Return an app's client secrets, oldest first (expired ones included)."""
        with self._lock:
            return list(self._app(client_id).passwords)

    def replicate(self, client_id: str | None = None) -> None:
        """Make every client secret (of ``client_id`` if given) usable now."""
        now = self.clock.now()
        with self._lock:
            for app in self._apps.values():
                if client_id is None or app.info.client_id == client_id:
                    app.passwords = [
                        replace(p, usable_from=min(p.usable_from, now)) for p in app.passwords
                    ]

    def application(
        self, *, client_id: str | None = None, object_id: str | None = None
    ) -> Application | None:
        """Return the app registration with this client id or application object id (caseless)."""
        with self._lock:
            for app in self._apps.values():
                if _same(client_id, app.info.client_id) or _same(object_id, app.info.object_id):
                    return app.info
            return None

    def service_principal_object_id(self, client_id: str) -> str | None:
        """Return the object id of an app's or a managed identity's service principal."""
        found = self.service_principal(client_id=client_id)
        return found.object_id if found is not None else None

    def service_principal(
        self, *, client_id: str | None = None, object_id: str | None = None
    ) -> ServicePrincipal | None:
        """Return the service principal (of an app or a managed identity) with either id."""
        with self._lock:
            found = [
                ServicePrincipal(
                    a.info.client_id, a.info.sp_object_id, a.info.display_name, "Application"
                )
                for a in self._apps.values()
            ] + [
                ServicePrincipal(i.client_id, i.principal_id, i.display_name, "ManagedIdentity")
                for i in self._identities.values()
            ]
        for sp in found:
            if _same(client_id, sp.client_id) or _same(object_id, sp.object_id):
                return sp
        return None

    def remove_app(self, client_id: str) -> None:
        """Delete an app registration."""
        with self._lock:
            self._apps.pop(client_id, None)

    def display_name(self, client_id: str) -> str | None:
        """Return an app's display name, or None if there is no such app."""
        with self._lock:
            app = self._apps.get(client_id)
            return app.info.display_name if app else None

    def has_app(self, client_id: str) -> bool:
        """Tell whether ``client_id`` is a registered app."""
        with self._lock:
            return client_id in self._apps

    def check_secret(self, client_id: str, secret: str) -> bool:
        """Tell whether ``secret`` is a client secret of the app the token endpoint accepts now."""
        return self.secret_status(client_id, secret) == "valid"

    def secret_status(self, client_id: str, secret: str) -> SecretStatus:
        """Tell what the token endpoint makes of ``secret`` for the app now (virtual time)."""
        now = self.clock.now()
        with self._lock:
            app = self._apps.get(client_id)
            passwords = list(app.passwords) if app is not None else []
        for password in passwords:
            if secrets.compare_digest(secret.encode(), password.secret_text.encode()):
                return password.status(now)
        return "unknown"

    def add_managed_identity(
        self, display_name: str | None = None, *, system: bool = False
    ) -> ManagedIdentity:
        """Assign a new user-assigned identity to the app, or its system-assigned one.

        An app has at most one system-assigned identity: asking again returns the same one.
        """
        with self._lock:
            current = self._system_identity()
            if system and current is not None:
                return current
            client_id, principal_id = str(uuid.uuid4()), str(uuid.uuid4())
            name = display_name or ("function-app" if system else f"id-{client_id[:8]}")
            resource_id = (
                ""
                if system
                else (
                    f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg-emulated/providers/"
                    f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
                )
            )
            identity = ManagedIdentity(client_id, principal_id, resource_id, system, name)
            self._identities[client_id] = identity
            return identity

    def remove_managed_identity(self, client_id: str) -> None:
        """Unassign a managed identity from the app (tokens already issued stay valid)."""
        with self._lock:
            self._identities.pop(client_id, None)

    def managed_identities(self) -> list[ManagedIdentity]:
        """Return the identities assigned to the app, oldest first."""
        with self._lock:
            return list(self._identities.values())

    def find_managed_identity(
        self,
        *,
        client_id: str | None = None,
        principal_id: str | None = None,
        resource_id: str | None = None,
    ) -> ManagedIdentity | None:
        """Return the identity one selector names (ids caseless), or the system-assigned one.

        With no selector: the system-assigned identity, None if the app has none.
        """
        with self._lock:
            if client_id is None and principal_id is None and resource_id is None:
                return self._system_identity()
            for identity in self._identities.values():
                if identity.system:
                    continue
                if (
                    _same(client_id, identity.client_id)
                    or _same(principal_id, identity.principal_id)
                    or _same(resource_id, identity.resource_id)
                ):
                    return identity
            return None

    def _system_identity(self) -> ManagedIdentity | None:
        return next((i for i in self._identities.values() if i.system), None)

    def issue(self, client_id: str, audience: str) -> IssuedToken:
        """Issue an access token for ``audience`` to an app (no checks)."""
        value = secrets.token_urlsafe(48)
        self._registry.add(value, "access_token")
        token = IssuedToken(
            value, self.tenant_id, client_id, audience, time.time() + self.token_lifetime
        )
        with self._lock:
            self._tokens[value] = token
        return token

    def resolve(self, access_token: str) -> IssuedToken | None:
        """Return what an access token stands for, or None if unknown or expired (real time)."""
        with self._lock:
            token = self._tokens.get(access_token)
        if token is None or token.seconds_left() <= 0:
            return None
        return token

    def lookup(self, access_token: str) -> IssuedToken | None:
        """Return an issued token even if expired; None if this emulator never issued it."""
        with self._lock:
            return self._tokens.get(access_token)

    def issued(self, client_id: str | None = None) -> list[IssuedToken]:
        """Return the tokens issued so far (to ``client_id`` if given), oldest first."""
        with self._lock:
            tokens = list(self._tokens.values())
        return [t for t in tokens if client_id is None or t.client_id == client_id]

    def expire_tokens(self, client_id: str | None = None) -> None:
        """Make every issued token (of ``client_id`` if given) expired now."""
        now = time.time()
        with self._lock:
            for value, token in self._tokens.items():
                if client_id is None or token.client_id == client_id:
                    self._tokens[value] = IssuedToken(
                        value, token.tenant_id, token.client_id, token.audience, now
                    )

    def _app(self, client_id: str) -> _App:
        app = self._apps.get(client_id)
        if app is None:
            raise KeyError(f"no app with client id {client_id}")
        return app

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"EntraState(tenant_id={self.tenant_id!r}, apps={len(self._apps)},"
                f" identities={len(self._identities)})"
            )


def _same(wanted: str | None, actual: str) -> bool:
    return wanted is not None and bool(actual) and wanted.lower() == actual.lower()
