"""Small helpers shared by the HTTP adapters (Databricks, Prequel): errors in, facts out.

And :class:`HostPools`, the transport of the run's one HTTP client: a connection pool per host.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import sniffio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "UNTRUSTED_ADVICE",
    "USER_AGENT",
    "HostPools",
    "is_loopback",
    "is_transient_status",
    "json_body",
    "retry_after",
    "untrusted_certificate",
]

UNTRUSTED_ADVICE = (
    "retrying cannot help. Check that the URL names the service itself; behind a proxy that "
    "inspects TLS, add its CA to the system's trust store (or SSL_CERT_FILE); ROTATION_CA_FILE "
    "adds a CA bundle to the public roots (it is meant for the local emulators)"
)
"""What to check when a server's certificate is not trusted (the end of a failure message)."""

_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})


def untrusted_certificate(exc: BaseException) -> str | None:
    """Return why a server's certificate was refused if that is in *exc*'s causes, else None.

    Follows ``__cause__``, ``__context__`` and the wrappers' own links (azure-core's
    ``inner_exception``, aiohttp's ``certificate_error`` / ``os_error``).
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) and hasattr(current, "verify_message"):
            return str(current.verify_message or "certificate verify failed")
        links = ("inner_exception", "certificate_error", "os_error", "__cause__", "__context__")
        todo += [
            x for name in links if isinstance(x := getattr(current, name, None), BaseException)
        ]
    return None


def is_transient_status(status: int) -> bool:
    """Return whether an HTTP status means "try again later"."""
    return status in _TRANSIENT


def retry_after(response: httpx.Response) -> float | None:
    """Return the integer-seconds ``Retry-After`` of *response*, or None when absent or a date."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def json_body(response: httpx.Response) -> dict[str, Any]:
    """Return the JSON object body of *response*, or an empty dict when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


_LIBRARY = sniffio.current_async_library_cvar
"""httpcore and anyio ask sniffio which async library runs, many times per request, and sniffio
looks for the running asyncio task each time; `HostPools` runs on asyncio and says so first."""


@dataclass(eq=False, slots=True)
class _Slot:
    """One connection of a host: an httpcore pool that holds at most one connection."""

    transport: httpx.AsyncHTTPTransport
    active: int = 0
    """Requests sent through it whose response is not closed yet (more than one: queued)."""


@dataclass(eq=False, slots=True)
class _Host:
    slots: list[_Slot] = field(default_factory=list)
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)


class _Release(httpx.AsyncByteStream):
    """A response body that frees its slot when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, host: _Host, slot: _Slot) -> None:
        self._stream = stream
        self._held: tuple[_Host, _Slot] | None = (host, slot)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._stream.__aiter__()
        while True:
            token = _LIBRARY.set("asyncio")
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _LIBRARY.reset(token)
            yield chunk

    async def aclose(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            _release(*held)
        token = _LIBRARY.set("asyncio")
        try:
            await self._stream.aclose()
        finally:
            _LIBRARY.reset(token)


def _release(host: _Host, slot: _Slot) -> None:
    slot.active -= 1
    host.active -= 1
    host.last_used = time.monotonic()


class HostPools(httpx.AsyncBaseTransport):
    """A connection pool per origin (scheme, host, port), every connection on one TLS context.

    httpcore's pool walks every connection it holds, polling each idle socket, whenever a request
    starts or ends, so its cost per request grows with its size (one pool for every host made that
    walk as long as all the run's connections). Here a host's connections are *slots*, each an
    httpcore pool of one connection: a request takes the host's first free slot, reusing its
    connection when the server kept it alive (so the first slots stay warm and the others expire),
    and httpcore never walks more than that one connection. ``limits.max_connections`` is the
    number of slots per host and ``keepalive_expiry`` how long an idle connection is kept; with
    every slot busy a request queues on the slot with the fewest waiting (``pool`` timeout). When
    another host opens, hosts with nothing in flight that have been idle for longer than the
    keep-alive expiry, or the least recently used beyond *max_hosts*, are closed. It runs on
    asyncio only (it tells sniffio so while httpcore works).
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits, max_hosts: int = 64
    ) -> None:
        self._ssl_context = ssl_context
        self._slot_limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=limits.keepalive_expiry
        )
        self._slots_per_host = max(1, limits.max_connections or 100)
        self._expiry = limits.keepalive_expiry or 0.0
        self._max_hosts = max_hosts
        self._hosts: dict[tuple[bytes, bytes, int | None], _Host] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* on a connection of its host (the host's slots open on first use)."""
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        host = self._hosts.get(key)
        if host is None:
            host = await self._open(key)
        slot = self._slot(host)
        slot.active += 1
        host.active += 1
        token = _LIBRARY.set("asyncio")
        try:
            response = await slot.transport.handle_async_request(request)
        except BaseException:
            _release(host, slot)
            raise
        finally:
            _LIBRARY.reset(token)
        if not isinstance(response.stream, httpx.AsyncByteStream):  # pragma: no cover
            msg = "an async transport answered a sync stream"
            raise TypeError(msg)
        response.stream = _Release(response.stream, host, slot)
        return response

    def _slot(self, host: _Host) -> _Slot:
        for slot in host.slots:
            if not slot.active:
                return slot
        if len(host.slots) < self._slots_per_host:
            transport = httpx.AsyncHTTPTransport(verify=self._ssl_context, limits=self._slot_limits)
            host.slots.append(_Slot(transport))
            return host.slots[-1]
        return min(host.slots, key=lambda s: s.active)  # all busy: queue where fewest wait

    async def _open(self, key: tuple[bytes, bytes, int | None]) -> _Host:
        idle = sorted(
            ((k, h) for k, h in self._hosts.items() if h.active == 0),
            key=lambda item: item[1].last_used,
        )
        expired = time.monotonic() - self._expiry
        surplus = len(self._hosts) + 1 - self._max_hosts
        for k, h in idle:
            if h.last_used < expired or surplus > 0:
                del self._hosts[k]
                surplus -= 1
                await _close(h)
        return self._hosts.setdefault(key, _Host())  # another request may have opened it meanwhile

    async def aclose(self) -> None:
        """Close every connection."""
        hosts = list(self._hosts.values())
        self._hosts.clear()
        for host in hosts:
            await _close(host)

    def __repr__(self) -> str:
        return f"HostPools(<{len(self._hosts)} hosts>)"


async def _close(host: _Host) -> None:
    for slot in host.slots:
        await slot.transport.aclose()


USER_AGENT = "pat-rotator/0.1"


def is_loopback(url: str) -> bool:
    """Return whether *url* points at this machine (the local emulators)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
