"""Fixtures for the emulator tests: one running `Emulators` (``emus``), a loopback-only guard.

The guard refuses any DNS lookup or TCP connect that is not loopback while a test module of
this directory runs, and records what was refused.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio

from emulators import AppCredential, Emulators
from tests.emulators.helpers import DATABRICKS, bearer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class LoopbackGuard:
    """Hosts something tried to resolve or connect to outside loopback (all were refused)."""

    blocked: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", autouse=True)
def loopback_guard() -> Iterator[LoopbackGuard]:
    """Refuse every DNS lookup and TCP connect that is not loopback, and remember it."""
    guard = LoopbackGuard()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in _LOOPBACK:
            guard.blocked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {name} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            guard.blocked.append(str(address[0]))
            raise ConnectionRefusedError(f"test guard: {address[0]} is not loopback")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield guard
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def emus() -> Iterator[Emulators]:
    """The emulators under test (named apart from the product tests' ``emu``)."""
    with Emulators() as emulators:
        yield emulators


@pytest.fixture(autouse=True)
def _no_leftover_faults(emus: Emulators) -> Iterator[None]:
    yield
    emus.faults.clear()


@pytest.fixture(scope="session")
def ca(emus: Emulators) -> str:
    return str(emus.ca_path)


@pytest.fixture(scope="session")
def tls(emus: Emulators) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emus.ca_path))


@pytest_asyncio.fixture(scope="session")
async def http(tls: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls, trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def app(emus: Emulators) -> AppCredential:
    """A fresh Entra app registration."""
    return emus.entra.add_app("test-app")


@pytest.fixture
def sp(emus: Emulators, app: AppCredential) -> AppCredential:
    """A fresh Entra app that is also a service principal of the workspace (with CAN_USE)."""
    emus.databricks.add_service_principal(app.client_id, "test-sp")
    return app


@pytest.fixture
def entra_auth(emus: Emulators, sp: AppCredential) -> dict[str, str]:
    """Headers with an Entra token for Databricks of the `sp` service principal."""
    return bearer(emus.entra.issue(sp.client_id, DATABRICKS).access_token)


@pytest.fixture
def admin_auth(emus: Emulators) -> dict[str, str]:
    """Headers with a PAT of a workspace admin user."""
    return bearer(emus.databricks.add_admin_user())


@pytest.fixture
def restore_conf(emus: Emulators) -> Iterator[None]:
    """Put the workspace settings back after the test."""
    conf = emus.databricks.conf
    saved = (conf.tokens_enabled, conf.max_token_lifetime_days, conf.obo_enabled)
    yield
    conf.tokens_enabled, conf.max_token_lifetime_days, conf.obo_enabled = saved
