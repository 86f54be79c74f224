"""Every secret value the emulators issue, so tests can scan logs and outputs for leaks."""

from __future__ import annotations

import threading

__all__ = ["SecretRegistry"]


class SecretRegistry:
    """A thread-safe set of issued secret values, each with a kind.

    Kinds used by the emulators: ``client_secret``, ``access_token``, ``pat``,
    ``oauth_secret``, ``api_key``.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, value: str, kind: str) -> None:
        """Remember ``value`` as a secret of ``kind``."""
        if not value:
            raise ValueError("refusing to register an empty secret value")
        with self._lock:
            self._kinds[value] = kind

    def values(self) -> frozenset[str]:
        """Return every registered value."""
        with self._lock:
            return frozenset(self._kinds)

    def kind_of(self, value: str) -> str | None:
        """Return the kind ``value`` was registered with, or None if it is not a known secret."""
        with self._lock:
            return self._kinds.get(value)

    def find_in(self, text: str) -> list[str]:
        """Return the kinds of all registered secrets that occur in ``text`` (never the values)."""
        with self._lock:
            items = list(self._kinds.items())
        return sorted({kind for value, kind in items if value in text})

    def __len__(self) -> int:
        with self._lock:
            return len(self._kinds)

    def __repr__(self) -> str:
        return f"SecretRegistry(<{len(self)} values>)"
