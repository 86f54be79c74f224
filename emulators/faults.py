"""Fault plans: make the next N matching requests fail, stall or lose their connection.

Modes (all may add ``delay`` seconds first):

- ``respond``: answer ``status`` with ``body`` (or the service's own error shape) and
  ``headers``, without processing the request;
- ``drop``: close the TCP connection without any HTTP response, without processing;
- ``drop_after``: process the request (state changes happen), then drop the connection
  instead of sending the response;
- ``delay``: wait ``delay`` seconds, then process normally;
- ``hold``: read the request whole, then wait until the ``hold`` event is set (``Fault.arrived``
  tells a test the request reached the server, ``Fault.held`` that it was read and waits), then
  process normally — even if its client has gone meanwhile, as a real server would;
- ``stall``: answer nothing and keep the connection open until the client gives up on it
  (closes it: a client-side timeout) or the fault is released, then drop it, without
  processing. A timeout that costs the server nothing but the client's own wait.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = ["MODES", "Fault", "FaultMode", "FaultPlan"]

FaultMode = Literal["respond", "drop", "drop_after", "delay", "hold", "stall"]
MODES: frozenset[str] = frozenset(get_args(FaultMode))


@dataclass(eq=False)
class Fault:
    """One planned fault; `FaultPlan.add` builds it, the emulators apply it.

    ``remaining`` counts down per matching request (-1 = forever); ``hits`` counts the
    requests it applied to; ``arrived`` is set when the first matching request reaches it.
    """

    service: str
    method: str
    path: re.Pattern[str]
    mode: str
    status: int | None
    body: dict[str, Any] | None
    headers: dict[str, str]
    delay: float
    remaining: int
    hold: threading.Event | None
    skip: int = 0
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    """Set once a ``hold`` request has been read whole and waits: killing its client from now on
    loses only the answer, since the server carries the request out when released."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set when a request the fault let through (delay, hold, drop_after) was fully processed."""
    abandoned: threading.Event = field(default_factory=threading.Event)
    """Set when the client of a ``stall``ed request gave up on it (closed the connection)."""

    def matches(self, service: str, method: str, path: str) -> bool:
        """Tell whether a request is one this fault is aimed at (ignores ``remaining``)."""
        return (
            self.service == service
            and self.method in ("*", method.upper())
            and self.path.fullmatch(path) is not None
        )

    def release(self) -> None:
        """Let requests held by a ``hold`` fault proceed; drop those a ``stall`` keeps."""
        if self.hold is not None:
            self.hold.set()

    @property
    def exhausted(self) -> bool:
        """True once the fault has applied ``times`` times."""
        return self.remaining == 0

    def __repr__(self) -> str:
        return (
            f"Fault({self.service} {self.method} {self.path.pattern!r} mode={self.mode}"
            f" status={self.status} remaining={self.remaining} hits={self.hits})"
        )


class FaultPlan:
    """The faults to inject, shared by all emulator servers; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def add(
        self,
        service: str,
        method: str,
        path: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        mode: str = "respond",
        times: int = 1,
        hold: threading.Event | None = None,
        skip: int = 0,
    ) -> Fault:
        """Plan a fault for requests of ``service`` whose method and path (a regex) match.

        ``times`` is how many matching requests it applies to (-1 = all). A ``hold`` fault
        or ``stall`` fault without an event gets a fresh one (release it with `Fault.release`;
        `FaultPlan.clear` releases every fault). Earlier faults
        win when several match. ``skip`` lets that many matching requests through first.
        """
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; use one of {sorted(MODES)}")
        if mode == "respond" and status is None:
            raise ValueError("a 'respond' fault needs a status")
        if times == 0 or times < -1:
            raise ValueError("times must be positive, or -1 for every matching request")
        if skip < 0:
            raise ValueError("skip must not be negative")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if mode in ("hold", "stall") and hold is None:
            hold = threading.Event()
        fault = Fault(
            service=service,
            method=method.upper(),
            path=re.compile(path),
            mode=mode,
            status=status,
            body=body,
            headers=dict(headers or {}),
            delay=delay,
            remaining=times,
            hold=hold,
            skip=skip,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, service: str, method: str, path: str) -> Fault | None:
        """Return the fault that applies to this request, counting it as used; None if none."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining != 0 and fault.matches(service, method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.remaining > 0:
                        fault.remaining -= 1
                    fault.hits += 1
                    fault.arrived.set()
                    return fault
        return None

    def faults(self) -> list[Fault]:
        """Return all planned faults, exhausted ones included."""
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        """Remove all faults, releasing requests that ``hold`` and ``stall`` faults keep waiting."""
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.release()

    def close(self) -> None:
        """Release every held request for shutdown; later holds do not wait."""
        self.closing.set()
        self.clear()

    def __repr__(self) -> str:
        with self._lock:
            return f"FaultPlan(<{len(self._faults)} faults>)"
