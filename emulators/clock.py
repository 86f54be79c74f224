"""A virtual clock: real time plus an offset that tests can move forward."""

from __future__ import annotations

import threading
import time

__all__ = ["Clock"]


class Clock:
    """Epoch seconds as the emulators see them: real time plus an adjustable offset.

    Virtual time drives PAT creation and expiry and Key Vault timestamps. Access tokens
    issued by Entra ID and ``/oidc/v1/token`` expire by *real* time instead, because
    azure-identity caches them by real time.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the virtual time in epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def now_ms(self) -> int:
        """Return the virtual time in epoch milliseconds."""
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (backwards if negative)."""
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        """Seconds that virtual time is ahead of real time."""
        with self._lock:
            return self._offset

    def __repr__(self) -> str:
        return f"Clock(offset={self.offset!r})"
