"""Run a real Azurite (npm) on loopback for the tests, with an account key made at run time."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("Blob", "Queue", "Table")
# Azurite says this once per service once it accepts connections (src/azurite.ts).
LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at \S*:(\d+)")
ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "azurite"


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its connection string (blob, queue and table on 127.0.0.1)."""

    connection_string: str
    process: subprocess.Popen[str]
    workdir: str
    output: list[str]

    def check(self) -> None:
        """Fail with Azurite's last words if it is no longer running."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"Azurite exited ({self.process.returncode}):\n" + "".join(self.output[-30:])
            )

    def stop(self) -> None:
        """Stop Azurite and remove its files."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now, all different (each socket is held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def start(timeout: float = 60.0) -> Azurite:
    """Start Azurite's blob, queue and table services on free ports; return once all three listen.

    Every service gets a port of its own: none is left on Azurite's defaults (10000-10002),
    which another Azurite on the machine (``npx azurite``) may hold.
    """
    if not BINARY.exists():
        msg = f"Azurite is not installed at {BINARY}: run `npm ci` in {ROOT} (scripts/test does)."
        raise RuntimeError(msg)
    account = "rotatortest"
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    ports = dict(zip(SERVICES, _free_ports(len(SERVICES)), strict=True))
    workdir = tempfile.mkdtemp(prefix="azurite-")
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{account}:{key}"}
    flags = [
        flag
        for service, port in ports.items()
        for flag in (f"--{service.lower()}Host", "127.0.0.1", f"--{service.lower()}Port", str(port))
    ]
    process = subprocess.Popen(
        [
            str(BINARY),
            *flags,
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--location",
            workdir,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    listening: set[str] = set()
    settled = threading.Event()  # all three listen, or Azurite closed its output (it exited)
    seen: list[str] = []

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            found = LISTENING.search(line)
            if found and int(found[2]) == ports[found[1]]:
                listening.add(found[1])
                if len(listening) == len(SERVICES):
                    settled.set()
        settled.set()

    threading.Thread(target=watch, daemon=True, name="azurite-output").start()
    settled.wait(timeout)
    if len(listening) < len(SERVICES) or process.poll() is not None:
        process.kill()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        missing = ", ".join(s for s in SERVICES if s not in listening) or "none"
        raise RuntimeError(
            f"Azurite did not start (not listening: {missing}; ports {ports}):\n"
            + "".join(seen[-20:])
        )
    conn = f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};" + "".join(
        f"{s}Endpoint=http://127.0.0.1:{ports[s]}/{account};" for s in SERVICES
    )
    return Azurite(conn, process, workdir, seen)
