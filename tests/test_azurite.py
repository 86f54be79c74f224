"""The tests' Azurite starts on ports of its own even when Azurite's default ports are taken."""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import socket
from contextlib import ExitStack
from email.utils import formatdate
from typing import Any

import httpx
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from tests.azurite import start

DEFAULT_PORTS = (10000, 10001, 10002)  # blob, queue, table: where a plain `npx azurite` listens
TIMEOUT = 15  # seconds: a request to a port that only a silent listener holds would hang


def _occupy(stack: ExitStack, port: int) -> None:
    """Hold 127.0.0.1:port with a listener that never answers, unless something already holds it."""
    sock = stack.enter_context(socket.socket())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:  # with SO_REUSEADDR this means a listener holds it: taken all the same
        if exc.errno != errno.EADDRINUSE:
            raise
        return
    sock.listen()


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


def _settings(connection_string: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in connection_string.split(";") if part)


def _list_tables(endpoint: str, account: str, key: str) -> httpx.Response:
    """Query Tables, authorised with SharedKeyLite (the SDK for tables is not a dependency)."""
    url = httpx.URL(f"{endpoint}/Tables")
    date = formatdate(usegmt=True)
    # Path-style (emulator) URLs: the account is named once before the path, which holds it too.
    signed = f"{date}\n/{account}{url.path}".encode()
    mac = hmac.new(base64.b64decode(key), signed, hashlib.sha256).digest()
    headers = {
        "x-ms-date": date,
        "x-ms-version": "2019-02-02",
        "Accept": "application/json;odata=nometadata",
        "Authorization": f"SharedKeyLite {account}:{base64.b64encode(mac).decode()}",
    }
    return httpx.get(url, headers=headers, timeout=TIMEOUT)


def test_azurite_starts_while_the_default_ports_are_taken() -> None:
    with ExitStack() as stack:
        for port in DEFAULT_PORTS:
            _occupy(stack, port)
        assert all(_taken(port) for port in DEFAULT_PORTS)

        running = start()
        stack.callback(running.stop)
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": TIMEOUT,
            "read_timeout": TIMEOUT,
        }
        with BlobServiceClient.from_connection_string(running.connection_string, **options) as b:
            assert "cors" in b.get_service_properties()
        with QueueServiceClient.from_connection_string(running.connection_string, **options) as q:
            assert "cors" in q.get_service_properties()
        settings = _settings(running.connection_string)
        tables = _list_tables(
            settings["TableEndpoint"], settings["AccountName"], settings["AccountKey"]
        )
        assert tables.status_code == 200, tables.text
        assert tables.json() == {"value": []}
        running.check()
        ports = {httpx.URL(settings[f"{name}Endpoint"]).port for name in ("Blob", "Queue", "Table")}
        assert len(ports) == 3, settings
        assert not ports & set(DEFAULT_PORTS), settings
