"""Serve one ASGI app with uvicorn over HTTPS on loopback, in a daemon thread of its own."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    import socket

    from starlette.types import ASGIApp

    from emulators.tls import LoopbackTLS

__all__ = ["ServerThread"]

_START_TIMEOUT_SECONDS = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, telling another thread when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Abort open connections first: a TLS close waits for the client's close_notify,
        # which an idle keep-alive client never sends.
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown(sockets=sockets)


class ServerThread:
    """One uvicorn server on ``127.0.0.1:<OS-chosen port>`` with its own event loop."""

    def __init__(self, app: ASGIApp, tls: LoopbackTLS, name: str) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            ssl_certfile=str(tls.cert_path),
            ssl_keyfile=str(tls.key_path),
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.name = name
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"emulator-{name}", daemon=True
        )
        self.port = 0

    def begin(self) -> None:
        """Start the thread; `wait_ready` waits until it listens."""
        self._thread.start()

    def wait_ready(self) -> None:
        """Block until the server listens, then record its port."""
        if not self._server.ready.wait(_START_TIMEOUT_SECONDS) or not self._server.started:
            raise RuntimeError(f"the {self.name} emulator did not start on 127.0.0.1")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://127.0.0.1:{self.port}"

    def signal_stop(self) -> None:
        """Ask the server to shut down (returns at once)."""
        self._server.should_exit = True

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the server thread to finish."""
        if self._thread.is_alive():
            self._thread.join(timeout)
