"""State of the Entra ID emulator: app registrations, managed identities and issued tokens.

A managed identity is a service principal without app registration or secret: only the identity
endpoint (`emulators.identity`) issues its tokens, which are the same `IssuedToken` an app gets
from the token endpoint, so every emulator accepts them alike.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulators.registry import SecretRegistry

__all__ = [
    "DATABRICKS_RESOURCE",
    "DEVOPS_RESOURCE",
    "KNOWN_RESOURCES",
    "VAULT_RESOURCE",
    "AppCredential",
    "EntraState",
    "IssuedToken",
    "ManagedIdentity",
    "audience_of",
]

DATABRICKS_RESOURCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
"""Azure Databricks' first-party application id: the audience of Databricks tokens."""
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
"""Azure DevOps' first-party application id: the audience of Azure DevOps tokens."""
VAULT_RESOURCE = "https://vault.azure.net"
KNOWN_RESOURCES: dict[str, str] = {
    DATABRICKS_RESOURCE: DATABRICKS_RESOURCE,
    DEVOPS_RESOURCE: DEVOPS_RESOURCE,
    VAULT_RESOURCE: VAULT_RESOURCE,
    "https://storage.azure.com": "https://storage.azure.com",
    "https://management.core.windows.net": "https://management.core.windows.net/",
    "https://management.azure.com": "https://management.azure.com/",
}
"""Resource named in a ``<resource>/.default`` scope -> audience of the issued token."""


def audience_of(resource: str) -> str | None:
    """Return the audience of a token for ``resource`` (trailing ``/`` ignored), None if unknown."""
    return KNOWN_RESOURCES.get(resource.rstrip("/"))


@dataclass(frozen=True, slots=True)
class AppCredential:
    """What a service principal needs to sign in: tenant, client id and one client secret."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the emulator issued; ``expires_real`` is real epoch seconds."""

    access_token: str = field(repr=False)
    tenant_id: str
    client_id: str
    audience: str
    expires_real: float

    def seconds_left(self) -> float:
        """Real seconds until expiry (negative once expired)."""
        return self.expires_real - time.time()


@dataclass(frozen=True, slots=True)
class ManagedIdentity:
    """A managed identity assigned to the (one emulated) Function App.

    ``client_id`` is its application id (what Databricks knows it by), ``principal_id`` its
    object id; ``resource_id`` is the ARM id of a user-assigned identity ("" for the
    system-assigned one).
    """

    client_id: str
    principal_id: str
    resource_id: str
    system: bool
    display_name: str


@dataclass
class _App:
    client_id: str
    display_name: str
    secrets: list[str] = field(default_factory=list, repr=False)


class EntraState:
    """App registrations of one tenant and the access tokens issued to them; thread-safe."""

    def __init__(
        self, *, tenant_id: str, registry: SecretRegistry, token_lifetime: int = 3599
    ) -> None:
        self.tenant_id = tenant_id
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
        with self._lock:
            self._apps[client_id] = _App(client_id, display_name)
        return AppCredential(self.tenant_id, client_id, self.add_client_secret(client_id))

    def add_client_secret(self, client_id: str) -> str:
        """Add another client secret to an app and return it."""
        value = _new_client_secret()
        self._registry.add(value, "client_secret")
        with self._lock:
            self._app(client_id).secrets.append(value)
        return value

    def remove_client_secret(self, client_id: str, secret: str) -> None:
        """Delete one client secret of an app (tokens already issued stay valid)."""
        with self._lock:
            app = self._app(client_id)
            if secret not in app.secrets:
                raise KeyError("that client secret does not belong to the app")
            app.secrets.remove(secret)

    def remove_app(self, client_id: str) -> None:
        """Delete an app registration."""
        with self._lock:
            self._apps.pop(client_id, None)

    def display_name(self, client_id: str) -> str | None:
        """Return an app's display name, or None if there is no such app."""
        with self._lock:
            app = self._apps.get(client_id)
            return app.display_name if app else None

    def has_app(self, client_id: str) -> bool:
        """Tell whether ``client_id`` is a registered app."""
        with self._lock:
            return client_id in self._apps

    def check_secret(self, client_id: str, secret: str) -> bool:
        """Tell whether ``secret`` is a current client secret of the app."""
        with self._lock:
            app = self._apps.get(client_id)
            return app is not None and any(secrets.compare_digest(secret, s) for s in app.secrets)

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


def _new_client_secret() -> str:
    """Return a random value shaped like an Entra client secret (``abc8Q~...``, 40 chars)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
    head = "".join(secrets.choice(alphabet[:62]) for _ in range(3))
    tail = "".join(secrets.choice(alphabet) for _ in range(34))
    return f"{head}{secrets.choice('12345678')}Q~{tail}"
