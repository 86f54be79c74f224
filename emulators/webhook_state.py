"""State of the webhook receiver emulator: receivers, their signing keys, what they hold.

A receiver stands for an in-house service that uses a Databricks PAT and speaks pat-rotator's
webhook protocol (``docs/reference/consumers.md``, "pat-rotator webhook protocol").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulators.dbprobe import TrustStore, split_host

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.clock import Clock
    from emulators.registry import SecretRegistry

__all__ = ["TOLERANCE_SECONDS", "ReceivedEvent", "Receiver", "WebhookState", "sign"]

TOLERANCE_SECONDS = 300
"""How far ``webhook-timestamp`` may be from the receiver's (virtual) clock."""


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return ``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}`` (Standard Webhooks).

    ``secret`` is ``whsec_`` + base64 of the key bytes.
    """
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One verified delivery and the receiver's answer (``pat`` is the PAT it carried)."""

    webhook_id: str
    type: str
    status: int
    ok: bool
    reason: str
    pat: str = field(repr=False)
    replayed: bool = False


class Receiver:
    """One receiver: its signing secrets, the PAT it holds and what it received."""

    def __init__(self, name: str, databricks_host: str, secret: str, pat: str) -> None:
        self.name = name
        self.host, self.port = split_host(databricks_host)
        self.secrets: list[str] = [secret]
        self.pat = pat
        """The PAT the receiver holds now ("" if none)."""
        self.history: list[str] = [pat] if pat else []
        self.events: list[ReceivedEvent] = []
        self.answers: dict[str, tuple[int, dict[str, object]]] = {}

    def save(self, pat: str) -> None:
        """Hold ``pat`` from now on."""
        self.pat = pat
        if not self.history or self.history[-1] != pat:
            self.history.append(pat)

    def __repr__(self) -> str:
        return f"Receiver(name={self.name!r}, events={len(self.events)})"


class WebhookState:
    """Receivers by name; thread-safe. ``trust`` is the CA used to reach Databricks."""

    def __init__(
        self, *, registry: SecretRegistry, clock: Clock, ca_path: Path | None = None
    ) -> None:
        self.trust = TrustStore(ca_path)
        self.clock = clock
        self._registry = registry
        self._receivers: dict[str, Receiver] = {}
        self.lock = threading.RLock()

    def add_receiver(self, name: str, *, databricks_host: str, pat: str = "") -> str:
        """Add a receiver that uses the workspace at ``databricks_host`` (``https://host:port``).

        ``pat`` is the PAT it holds to begin with. Returns its signing secret (``whsec_…``).
        """
        secret = self._new_secret()
        with self.lock:
            if name in self._receivers:
                raise ValueError(f"receiver {name} already exists")
            self._receivers[name] = Receiver(name, databricks_host, secret, pat)
        return secret

    def add_secret(self, name: str) -> str:
        """Give a receiver one more accepted signing secret (key rotation); return it."""
        secret = self._new_secret()
        with self.lock:
            self._receivers[name].secrets.append(secret)
        return secret

    def receiver(self, name: str) -> Receiver:
        """Return a receiver by name (KeyError if unknown); the object is live."""
        with self.lock:
            return self._receivers[name]

    def find(self, name: str) -> Receiver | None:
        """Return a receiver by name, or None."""
        with self.lock:
            return self._receivers.get(name)

    def _new_secret(self) -> str:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self._registry.add(secret, "webhook_secret")
        return secret

    def __repr__(self) -> str:
        with self.lock:
            return f"WebhookState(receivers={sorted(self._receivers)})"
