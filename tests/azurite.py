"""Run a real Azurite (npm) on loopback for the tests, with an account key made at run time."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "azurite"


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its connection string (blob + queue on 127.0.0.1)."""

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


def start(timeout: float = 60.0) -> Azurite:
    """Start Azurite's blob and queue services; return once both listen."""
    if not BINARY.exists():
        msg = f"Azurite is not installed at {BINARY}: run `npm ci` in {ROOT} (scripts/test does)."
        raise RuntimeError(msg)
    account = "rotatortest"
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    blob, queue = _free_port(), _free_port()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{account}:{key}"}
    process = subprocess.Popen(
        [
            str(BINARY),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(blob),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(queue),
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
    ready = threading.Event()
    seen: list[str] = []

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if sum("successfully listening" in s for s in seen) >= 2:
                ready.set()
        ready.set()  # exited: start() reports what it said

    threading.Thread(target=watch, daemon=True).start()
    if not ready.wait(timeout) or process.poll() is not None:
        process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError("Azurite did not start:\n" + "".join(seen[-20:]))
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{account};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{account};"
    )
    return Azurite(conn, process, workdir, seen)
