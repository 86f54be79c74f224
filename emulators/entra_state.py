"""State of the Entra ID emulator: app registrations, their secrets and issued access tokens."""

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
    "KNOWN_RESOURCES",
    "VAULT_RESOURCE",
    "AppCredential",
    "EntraState",
    "IssuedToken",
]

DATABRICKS_RESOURCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
"""Azure Databricks' first-party application id: the audience of Databricks tokens."""
VAULT_RESOURCE = "https://vault.azure.net"
KNOWN_RESOURCES: dict[str, str] = {
    DATABRICKS_RESOURCE: DATABRICKS_RESOURCE,
    VAULT_RESOURCE: VAULT_RESOURCE,
    "https://storage.azure.com": "https://storage.azure.com",
    "https://management.core.windows.net": "https://management.core.windows.net/",
    "https://management.azure.com": "https://management.azure.com/",
}
"""Resource named in a ``<resource>/.default`` scope -> audience of the issued token."""


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
            return f"EntraState(tenant_id={self.tenant_id!r}, apps={len(self._apps)})"


def _new_client_secret() -> str:
    """Return a random value shaped like an Entra client secret (``abc8Q~...``, 40 chars)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
    head = "".join(secrets.choice(alphabet[:62]) for _ in range(3))
    tail = "".join(secrets.choice(alphabet) for _ in range(34))
    return f"{head}{secrets.choice('12345678')}Q~{tail}"
