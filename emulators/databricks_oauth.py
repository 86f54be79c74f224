"""OAuth secrets of a workspace's service principals (Databricks-managed OAuth M2M).

A secret authenticates at ``/oidc/v1/token`` while it exists and has not expired on the virtual
clock. Secrets made through the workspace's service-principal secrets proxy
(``/api/2.0/accounts/servicePrincipals/{id}/credentials/secrets``) follow the API's rules:
at most `SECRET_QUOTA` live secrets per service principal and a lifetime of at most
`MAX_LIFETIME_SECONDS` (730 days, also the default). Seeded secrets skip the rules and may never
expire.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulators.databricks_model import ApiError

if TYPE_CHECKING:
    from emulators.clock import Clock
    from emulators.registry import SecretRegistry

__all__ = ["MAX_LIFETIME_SECONDS", "SECRET_QUOTA", "OAuthSecret", "OAuthSecretStore"]

SECRET_QUOTA = 5
"""Secrets per service principal [C: Databricks OAuth M2M pages]."""
MAX_LIFETIME_SECONDS = 730 * 86400
"""Maximum and default lifetime of a secret [C: sdk-py docstring, AWS, Infisical]."""


@dataclass(frozen=True, slots=True)
class OAuthSecret:
    """One OAuth secret; ``expire_ms`` None: it never expires (seeded). Times are virtual ms."""

    secret_id: str
    principal_id: int
    value: str = field(repr=False)
    create_ms: int
    expire_ms: int | None
    scopes: tuple[str, ...] = ()

    @property
    def secret_hash(self) -> str:
        """A hash of the value (the API's ``secret_hash``; its exact algorithm is [I])."""
        return hashlib.sha256(self.value.encode()).hexdigest()[:32]

    def expired(self, now_ms: int) -> bool:
        """Tell whether the secret has expired at ``now_ms``."""
        return self.expire_ms is not None and now_ms >= self.expire_ms


class OAuthSecretStore:
    """The OAuth secrets of one workspace, by the numeric id of their service principal."""

    def __init__(self, *, clock: Clock, registry: SecretRegistry) -> None:
        self._clock = clock
        self._registry = registry
        self._secrets: dict[int, list[OAuthSecret]] = {}
        self._lock = threading.Lock()
        self.page_size = 2
        """Most entries per page of the proxy's list [I: no source; small, so clients page]."""

    def add(
        self, principal_id: int, lifetime_seconds: int | None, scopes: tuple[str, ...] = ()
    ) -> OAuthSecret:
        """Add a secret without the API's checks (``lifetime_seconds`` None: never expires)."""
        now = self._clock.now_ms()
        expire = None if lifetime_seconds is None else now + lifetime_seconds * 1000
        secret = OAuthSecret(
            secrets.token_hex(16), principal_id, "dose" + secrets.token_hex(32), now, expire, scopes
        )
        self._registry.add(secret.value, "oauth_secret")
        with self._lock:
            self._secrets.setdefault(principal_id, []).append(secret)
        return secret

    def create(
        self, principal_id: int, lifetime_seconds: int | None, scopes: tuple[str, ...] = ()
    ) -> OAuthSecret:
        """Create a secret as the API does: quota of live secrets, lifetime 1 s..730 days.

        Refusals (the codes are [I]; no source names them): 400 ``INVALID_PARAMETER_VALUE``
        for the lifetime, 400 ``QUOTA_EXCEEDED`` past `SECRET_QUOTA` live secrets.
        """
        lifetime = MAX_LIFETIME_SECONDS if lifetime_seconds is None else lifetime_seconds
        if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"lifetime must be between 1 second and {MAX_LIFETIME_SECONDS}s (730 days),"
                f" got {lifetime}s",
            )
        with self._lock:
            if len(self._live(principal_id)) >= SECRET_QUOTA:
                raise ApiError(
                    400,
                    "QUOTA_EXCEEDED",
                    f"A service principal can have at most {SECRET_QUOTA} OAuth secrets;"
                    " delete one first.",
                )
        return self.add(principal_id, lifetime, scopes)

    def of(self, principal_id: int, *, include_expired: bool = False) -> list[OAuthSecret]:
        """Return a principal's secrets, oldest first (the API does not list expired ones)."""
        with self._lock:
            if include_expired:
                return list(self._secrets.get(principal_id, []))
            return self._live(principal_id)

    def delete(self, principal_id: int, secret_id: str) -> bool:
        """Delete a secret; return whether the principal had it."""
        with self._lock:
            held = self._secrets.get(principal_id, [])
            kept = [s for s in held if s.secret_id != secret_id]
            self._secrets[principal_id] = kept
            return len(kept) != len(held)

    def expire(self, principal_id: int, secret_id: str) -> None:
        """Make a secret expired now (for tests); KeyError if the principal has no such secret."""
        now = self._clock.now_ms()
        with self._lock:
            held = self._secrets.get(principal_id, [])
            for index, secret in enumerate(held):
                if secret.secret_id == secret_id:
                    held[index] = OAuthSecret(
                        secret.secret_id, principal_id, secret.value, secret.create_ms, now,
                        secret.scopes,
                    )  # fmt: skip
                    return
        raise KeyError(f"no OAuth secret {secret_id} for principal {principal_id}")

    def authenticates(self, principal_id: int, value: str) -> bool:
        """Tell whether ``value`` is a live secret of the principal."""
        with self._lock:
            live = self._live(principal_id)
        return any(secrets.compare_digest(value.encode(), s.value.encode()) for s in live)

    def _live(self, principal_id: int) -> list[OAuthSecret]:
        now = self._clock.now_ms()
        return [s for s in self._secrets.get(principal_id, []) if not s.expired(now)]

    def __repr__(self) -> str:
        with self._lock:
            return f"OAuthSecretStore(principals={len(self._secrets)})"
