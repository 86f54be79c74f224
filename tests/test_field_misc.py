"""Field-test fixes outside the CLI and the triggers: DNS failures, ``emulators serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from azure.core.exceptions import ServiceRequestError

from rotation.backends.keyvault import _name_not_resolved


def test_a_dns_failure_is_found_anywhere_in_the_cause_chain() -> None:
    # aiohttp raises ClientConnectorDNSError(os_error=gaierror); azure-core wraps it as the
    # inner exception of a ServiceRequestError, raised `from` it.
    dns = socket.gaierror(-2, "Name or service not known")
    inner = ConnectionError("Cannot connect to host no-such-vault.invalid:443")
    inner.__cause__ = dns
    outer = ServiceRequestError("Cannot connect", error=inner)
    assert _name_not_resolved(outer)
    refused = ServiceRequestError("Cannot connect", error=ConnectionRefusedError(111, "refused"))
    assert not _name_not_resolved(refused)


def test_emulators_serve_names_this_python_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "serve", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C to stop" in line:
                break
        text = "".join(seen)
        assert f"{sys.executable} -m rotation rotate" in text, text
        env = (tmp_path / "env.sh").read_text()
        ca = Path(next(v for v in env.split() if v.startswith("ROTATION_CA_FILE=")).split("=")[1])
        assert ca.is_file()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert not ca.parent.exists()  # the temporary TLS folder went with the emulators
