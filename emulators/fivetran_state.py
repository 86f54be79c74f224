"""State of the Fivetran emulator: API keys, Databricks destinations and their setup tests.

A destination's ``personal_access_token`` is write-only: answers show it as ``"******"``
(``docs/reference/consumers.md`` F6). A PATCH is saved whatever its setup tests find (F10,
the assumed reading); a PATCH that sends the mask back stores the mask, as a real one would.
Setup tests count against a per-minute limit on the virtual clock (F8).
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.dbprobe import TrustStore

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.clock import Clock
    from emulators.registry import SecretRegistry

__all__ = ["MASK", "Destination", "FivetranState", "SetupTest"]

MASK = "******"
_SECRET_FIELDS = ("personal_access_token", "oauth2_secret")


@dataclass(frozen=True, slots=True)
class SetupTest:
    """One setup-test run: which destination, which token it tried, what it found.

    ``trigger`` is ``"patch"`` (``run_setup_tests: true``) or ``"test"`` (``POST …/test``).
    """

    destination_id: str
    trigger: str
    personal_access_token: str = field(repr=False)
    ok: bool
    message: str


class Destination:
    """A Databricks destination; its config holds the token unmasked (masked on the wire)."""

    def __init__(self, destination_id: str, config: dict[str, Any]) -> None:
        self.id = destination_id
        self._config = config
        self.setup_status = "connected"
        self.last_tests: list[dict[str, str]] = []
        self.history: list[str] = [config["personal_access_token"]]

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the stored config, token included."""
        return copy.deepcopy(self._config)

    @property
    def personal_access_token(self) -> str:
        """The stored PAT (may be the mask itself if a client wrote it back)."""
        return str(self._config.get("personal_access_token", ""))

    def apply(self, changes: dict[str, Any]) -> None:
        """Merge config changes in; remember each new token in ``history``."""
        self._config.update(copy.deepcopy(changes))
        token = self.personal_access_token
        if token != self.history[-1]:
            self.history.append(token)

    def as_json(self) -> dict[str, Any]:
        """Return the destination as Fivetran shows it: secrets masked."""
        shown = copy.deepcopy(self._config)
        for name in _SECRET_FIELDS:
            if shown.get(name):
                shown[name] = MASK
        return {
            "id": self.id,
            "group_id": self.id,
            "service": "databricks",
            "region": "AZURE_EASTUS2",
            "time_zone_offset": "0",
            "setup_status": self.setup_status,
            "daylight_saving_time_enabled": False,
            "config": shown,
        }

    def __repr__(self) -> str:
        return f"Destination(id={self.id!r}, setup_status={self.setup_status!r})"


class FivetranState:
    """API keys, destinations, setup tests and the setup-test rate limit; thread-safe.

    ``setup_tests_per_minute`` (settable while running; Fivetran's paid accounts: 250): more
    setup tests in a rolling minute of virtual time answer 429 with ``Retry-After``.
    """

    def __init__(
        self, *, registry: SecretRegistry, clock: Clock, ca_path: Path | None = None
    ) -> None:
        self.trust = TrustStore(ca_path)
        self.setup_tests_per_minute = 250
        self._registry = registry
        self._clock = clock
        self._keys: dict[str, str] = {}
        self._destinations: dict[str, Destination] = {}
        self._tests: list[SetupTest] = []
        self._window: deque[float] = deque()
        self.lock = threading.RLock()

    def add_api_key(self) -> tuple[str, str]:
        """Create an API key and its secret; return ``(key, secret)``."""
        key, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
        self._registry.add(secret, "api_secret")
        with self.lock:
            self._keys[key] = secret
        return key, secret

    def revoke_api_key(self, key: str) -> None:
        """Make an API key unusable."""
        with self.lock:
            self._keys.pop(key, None)

    def key_valid(self, key: str, secret: str) -> bool:
        """Tell whether ``key:secret`` is a live pair."""
        with self.lock:
            known = self._keys.get(key)
        return known is not None and secrets.compare_digest(known, secret)

    def add_destination(
        self,
        *,
        host: str,
        port: int,
        personal_access_token: str,
        http_path: str = "/sql/1.0/warehouses/abc",
        destination_id: str | None = None,
    ) -> str:
        """Add a Databricks destination (``host`` without scheme or port); return its id."""
        ident = destination_id or "_".join(secrets.token_hex(4) for _ in range(2))
        config = {
            "auth_type": "PERSONAL_ACCESS_TOKEN",
            "server_host_name": host,
            "port": port,
            "http_path": http_path,
            "catalog": "main",
            "create_external_tables": False,
            "personal_access_token": personal_access_token,
        }
        with self.lock:
            if ident in self._destinations:
                raise ValueError(f"destination {ident} already exists")
            self._destinations[ident] = Destination(ident, config)
        return ident

    def destination(self, destination_id: str) -> Destination:
        """Return a destination by id (KeyError if unknown); the object is live."""
        with self.lock:
            return self._destinations[destination_id]

    def find(self, destination_id: str) -> Destination | None:
        """Return a destination by id, or None."""
        with self.lock:
            return self._destinations.get(destination_id)

    def admit_setup_test(self) -> float | None:
        """Count one setup test; return None if allowed, else seconds to wait."""
        now = self._clock.now()
        with self.lock:
            while self._window and self._window[0] <= now - 60:
                self._window.popleft()
            if len(self._window) >= self.setup_tests_per_minute:
                return max(1.0, self._window[0] + 60 - now)
            self._window.append(now)
            return None

    def reset_setup_test_window(self) -> None:
        """Forget the setup tests counted so far against the per-minute limit."""
        with self.lock:
            self._window.clear()

    def record_test(self, test: SetupTest) -> None:
        """Remember a setup test."""
        with self.lock:
            self._tests.append(test)

    def tests(self) -> list[SetupTest]:
        """Every setup test run so far, oldest first."""
        with self.lock:
            return list(self._tests)

    def __repr__(self) -> str:
        with self.lock:
            return f"FivetranState(keys={len(self._keys)}, destinations={len(self._destinations)})"
