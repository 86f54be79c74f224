"""A shared, thread-safe log of every request the emulators answered (or dropped)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

__all__ = ["LoggedRequest", "RequestLog"]


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as an emulator saw it.

    ``status`` is 0 when the connection was dropped instead of answered; ``faulted`` names
    the fault mode that applied (``respond``, ``drop``, ``drop_after``, ``delay``, ``hold``)
    or is None; ``at`` is real epoch seconds when the request arrived; ``host`` is the
    ``host:port`` the request was sent to (tells several Databricks workspaces apart).
    """

    service: str
    method: str
    path: str
    query: str
    status: int
    faulted: str | None
    at: float
    host: str = ""


class RequestLog:
    """Append-only list of `LoggedRequest`, shared by all emulator servers.

    An entry is appended *before* the last byte of its response is sent, so a client that
    has received a complete response always finds its request in the log.
    """

    def __init__(self) -> None:
        self._entries: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def append(self, entry: LoggedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        """Return a copy of all entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def find(
        self, service: str | None = None, method: str | None = None, path: str | None = None
    ) -> list[LoggedRequest]:
        """Return the entries matching all given filters; ``path`` is a regex, fully matched."""
        pattern = re.compile(path) if path is not None else None
        return [
            e
            for e in self.entries()
            if (service is None or e.service == service)
            and (method is None or e.method == method.upper())
            and (pattern is None or pattern.fullmatch(e.path) is not None)
        ]

    def count(
        self, service: str | None = None, method: str | None = None, path: str | None = None
    ) -> int:
        """Count the entries matching all given filters; ``path`` is a regex, fully matched."""
        return len(self.find(service, method, path))

    def clear(self) -> None:
        """Forget all entries."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"RequestLog(<{len(self)} entries>)"
