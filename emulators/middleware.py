"""The ASGI middleware around every emulator: applies the fault plan and logs each request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulators.requestlog import LoggedRequest, RequestLog

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from emulators.faults import Fault, FaultPlan

__all__ = ["ErrorBody", "ServiceMiddleware", "drop_connection"]

ErrorBody = Callable[[int, str], dict[str, Any]]
"""Build a service's own error body for an HTTP status and request path."""

_HOLD_POLL_SECONDS = 0.001


def drop_connection(send: Send) -> None:
    """Abort the TCP connection under ``send`` so the client gets no HTTP response at all.

    uvicorn passes its ``RequestResponseCycle.send`` bound method as ``send``; the cycle owns
    the transport. Marking the cycle disconnected stops uvicorn from answering 500 itself.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot drop the connection: send() is not uvicorn's")
    transport.abort()
    cycle.disconnected = True  # type: ignore[union-attr]


class ServiceMiddleware:
    """Wrap one emulator app: inject planned faults, log every request with its outcome."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        faults: FaultPlan,
        log: RequestLog,
        error_body: ErrorBody,
    ) -> None:
        self.app = app
        self.service = service
        self.faults = faults
        self.log = log
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        fault = self.faults.take(self.service, method, path)
        record = _Recorder(self, scope, fault)
        if fault is None:
            await self._forward(scope, receive, send, record)
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.mode == "respond":
            await self._respond(fault, path, send, record)
        elif fault.mode == "drop":
            record(0)
            drop_connection(send)
        elif fault.mode == "stall":
            await self._stall(fault, receive)
            record(0)
            drop_connection(send)
        elif fault.mode == "drop_after":
            try:
                await self._drop_after(scope, receive, send, record)
            finally:
                fault.finished.set()
        else:
            if fault.mode == "hold":
                # Read the whole request first, as a server does before its handler runs: a held
                # request whose client dies meanwhile is still carried out when released.
                receive = await _buffered(receive)
                fault.held.set()
                await self._hold(fault)
            try:
                await self._forward(scope, receive, send, record)
            finally:
                fault.finished.set()

    async def _forward(self, scope: Scope, receive: Receive, send: Send, record: _Recorder) -> None:
        status = 0

        async def logging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record(status)
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        except Exception:
            if not record.done:
                record(500)
            raise

    async def _respond(self, fault: Fault, path: str, send: Send, record: _Recorder) -> None:
        status = fault.status or 500
        body = fault.body if fault.body is not None else self.error_body(status, path)
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json; charset=utf-8", **fault.headers}
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        record(status)
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    async def _drop_after(
        self, scope: Scope, receive: Receive, send: Send, record: _Recorder
    ) -> None:
        async def swallow(message: Message) -> None:
            del message

        try:
            await self.app(scope, receive, swallow)
        finally:
            record(0)
            drop_connection(send)

    def _released(self, fault: Fault) -> bool:
        return (fault.hold is None or fault.hold.is_set()) or self.faults.closing.is_set()

    async def _hold(self, fault: Fault) -> None:
        # The hold is a threading.Event set from another thread: poll it without blocking the loop.
        while not self._released(fault):  # noqa: ASYNC110
            await asyncio.sleep(_HOLD_POLL_SECONDS)

    async def _stall(self, fault: Fault, receive: Receive) -> None:
        """Keep the request unanswered until its client disconnects or the fault is released."""
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            while not gone.done() and not self._released(fault):
                await asyncio.wait({gone}, timeout=_HOLD_POLL_SECONDS)
            if gone.done() and gone.exception() is None:
                fault.abandoned.set()
        finally:
            gone.cancel()


async def _buffered(receive: Receive) -> Receive:
    """Read the request's body now; return a ``receive`` that replays it, then waits as usual."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


async def _disconnect(receive: Receive) -> None:
    """Return once the client has closed the connection (reading and discarding any body)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Recorder:
    """Append one request's log entry exactly once."""

    def __init__(self, owner: ServiceMiddleware, scope: Scope, fault: Fault | None) -> None:
        self._owner = owner
        self._scope = scope
        self._fault = fault
        self._at = time.time()
        self.done = False

    def __call__(self, status: int) -> None:
        if self.done:
            return
        self.done = True
        scope = self._scope
        headers = dict(scope.get("headers") or [])
        self._owner.log.append(
            LoggedRequest(
                service=self._owner.service,
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status,
                faulted=self._fault.mode if self._fault else None,
                at=self._at,
                host=headers.get(b"host", b"").decode("latin-1"),
            )
        )
