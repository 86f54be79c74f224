"""Try a Databricks PAT the way a consumer's own connection test does: ask who it belongs to.

Used by the consumer emulators that test a PAT against the Databricks emulator (Fivetran's setup
tests, the webhook receiver's ``pat.test``). Only loopback hosts are ever contacted.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LOOPBACK", "ProbeResult", "TrustStore", "probe_databricks", "split_host"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found: whether the PAT works, and a message that never quotes it."""

    ok: bool
    message: str


class TrustStore:
    """The CA a consumer emulator trusts when it calls Databricks (settable until first use)."""

    def __init__(self, ca_path: Path | None = None) -> None:
        self._ca_path = ca_path
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    @property
    def ca_path(self) -> Path | None:
        """The PEM file of the trusted CA (None: the system's)."""
        return self._ca_path

    @ca_path.setter
    def ca_path(self, value: Path | None) -> None:
        with self._lock:
            self._ca_path, self._context = value, None

    def context(self) -> ssl.SSLContext:
        """Return the client TLS context (trusting ``ca_path``), built once."""
        with self._lock:
            if self._context is None:
                cafile = str(self._ca_path) if self._ca_path else None
                self._context = ssl.create_default_context(cafile=cafile)
            return self._context


async def probe_databricks(trust: TrustStore, host: str, port: int, token: str) -> ProbeResult:
    """Call ``GET https://host:port/api/2.0/preview/scim/v2/Me`` with ``token`` as a bearer."""
    if not token:
        return ProbeResult(ok=False, message="No personal access token is configured.")
    if host not in LOOPBACK:
        return ProbeResult(ok=False, message=f"Could not connect to {host}: only loopback.")
    try:
        async with httpx.AsyncClient(
            verify=trust.context(), trust_env=False, timeout=_TIMEOUT_SECONDS
        ) as client:
            response = await client.get(
                f"https://{host}:{port}/api/2.0/preview/scim/v2/Me",
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        return ProbeResult(
            ok=False, message=f"Could not connect to {host}:{port}: {type(exc).__name__}."
        )
    if response.status_code == 200:
        user = response.json().get("userName", "?")
        return ProbeResult(ok=True, message=f"Authenticated as {user}.")
    try:
        detail = str(response.json().get("message", ""))
    except ValueError:
        detail = ""
    text = f"Databricks rejected the token: HTTP {response.status_code} {detail}".rstrip()
    return ProbeResult(ok=False, message=text)


def split_host(address: str, default_port: int = 443) -> tuple[str, int]:
    """Split ``host[:port]`` (an optional ``https://`` and trailing ``/`` are ignored)."""
    bare = address.removeprefix("https://").removeprefix("http://").rstrip("/")
    host, sep, port = bare.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return bare, default_port
