"""Value objects of the Entra ID emulator: apps, client secrets, identities, issued tokens."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AppCredential",
    "Application",
    "IssuedToken",
    "ManagedIdentity",
    "PasswordCredential",
    "SecretStatus",
    "ServicePrincipal",
    "new_client_secret",
]


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


SecretStatus = Literal["valid", "unknown", "expired"]
"""What the token endpoint makes of a client secret: ``unknown`` also covers one not replicated
yet (Entra answers AADSTS7000215 for both), ``expired`` is AADSTS7000222."""


@dataclass(frozen=True, slots=True)
class PasswordCredential:
    """One client secret of an app (Graph's ``passwordCredential``); times are virtual epoch s.

    ``end`` None: never expires (seeded secrets). ``usable_from``: when the token endpoint starts
    accepting it (after replication).
    """

    key_id: str
    display_name: str | None
    start: float
    end: float | None
    usable_from: float
    secret_text: str = field(repr=False)

    @property
    def hint(self) -> str:
        """The first 3 characters of the secret, as Graph shows them."""
        return self.secret_text[:3]

    def status(self, now: float) -> SecretStatus:
        """Tell what the token endpoint makes of this secret at virtual time ``now``."""
        if self.end is not None and now > self.end:
            return "expired"
        return "valid" if now >= self.usable_from else "unknown"


@dataclass(frozen=True, slots=True)
class Application:
    """An app registration.

    ``client_id`` is its application (client) id, ``object_id`` the application object's id and
    ``sp_object_id`` the object id of its service principal (what an owner link points at).
    """

    client_id: str
    object_id: str
    sp_object_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    """The service principal of an app registration or a managed identity, as Graph shows it.

    ``kind`` is Graph's ``servicePrincipalType``: ``Application`` or ``ManagedIdentity``.
    """

    client_id: str
    object_id: str
    display_name: str
    kind: str


def new_client_secret() -> str:
    """Return a random value shaped like an Entra client secret (``abc8Q~...``, 40 chars)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
    head = "".join(secrets.choice(alphabet[:62]) for _ in range(3))
    tail = "".join(secrets.choice(alphabet) for _ in range(34))
    return f"{head}{secrets.choice('12345678')}Q~{tail}"
