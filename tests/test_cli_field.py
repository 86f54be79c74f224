"""The CLI as a new user meets it: every failure one clear line, fast, and the right exit code."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.harness import Emulators
from emulators.scenario import SeededTarget
from rotation.engine import Step
from tests import hygiene
from tests.invariants import rotator_tokens, violations
from tests.test_cli import _cli, _config, cli_env
from tests.world import World

CREATE = "/api/2.0/token/create"


def _dead_storage() -> str:
    """A connection string whose blob and queue endpoints are a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_unreachable_storage_fails_fast_in_one_line_and_status_needs_no_lock(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    started = time.monotonic()
    done = _cli(emu, tmp_path, config, "rotate", storage=_dead_storage())
    took = time.monotonic() - started
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "AzureWebJobsStorage" in line
    assert "start Azurite" in line
    assert took < 30, f"took {took:.0f} s"  # generous for a loaded machine; it was 88 s
    assert rotator_tokens(emu, seeded) == []

    status = _cli(emu, tmp_path, config, "status", storage=_dead_storage())
    assert status.returncode == 0, status.stderr
    assert seeded.name in status.stdout


def test_a_dry_run_checks_the_principal_even_when_nothing_is_due(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    assert _cli(emu, tmp_path, config, "rotate").returncode == 0
    dry = _cli(emu, tmp_path, config, "rotate", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    (report,) = json.loads(dry.stdout)["targets"]
    assert report["outcome"] == "not-due"
    assert report["steps"] == [Step.CREDENTIALS, Step.PREFLIGHT]

    emu.keyvault.delete(f"{seeded.name}-sp-credential")
    broken = _cli(emu, tmp_path, config, "rotate", "--dry-run", "--json")
    assert broken.returncode == 1
    (report,) = json.loads(broken.stdout)["targets"]
    assert report["outcome"] == "failed"
    assert report["error"]["step"] == Step.CREDENTIALS
    assert report["error"]["kind"] == "secret-missing"


def test_a_wrong_client_secret_fails_at_the_credentials_step(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    emu.keyvault.set_secret(f"{seeded.name}-sp-credential", "not-the-secret-at-all")
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 1
    (report,) = json.loads(done.stdout)["targets"]
    assert report["error"]["step"] == Step.CREDENTIALS
    assert report["error"]["kind"] == "credential"
    assert rotator_tokens(emu, seeded) == []


def _interrupted_at_push(
    emu: Emulators,
    tmp_path: Path,
    seeded: SeededTarget,
    config: dict[str, object],
    sig: signal.Signals,
    *args: str,
) -> tuple[subprocess.Popen[str], str, str]:
    """Run ``rotate`` in a subprocess, send *sig* while Prequel holds its push; return its output."""
    fault = emu.faults.add("prequel", "PATCH", f"/sources/{seeded.consumers[0].id}", mode="hold")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotation", "rotate", *args],
        env=cli_env(emu, tmp_path, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fault.arrived.wait(60), "the CLI never reached the push"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        fault.release()
        if proc.poll() is None:
            proc.kill()
    return proc, stdout, stderr


def test_ctrl_c_says_where_it_stopped_exits_130_and_the_next_run_resumes(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    proc, stdout, stderr = _interrupted_at_push(emu, tmp_path, seeded, config, signal.SIGINT)
    hygiene.record_text("cli ctrl-c stdout", stdout)
    hygiene.record_text("cli ctrl-c stderr", stderr)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"interrupted: target {seeded.name} at step push" in stderr
    assert "resumes" in stderr
    emu.faults.clear()
    again = _cli(emu, tmp_path, config, "rotate", "--json")
    assert again.returncode == 0, again.stderr
    (report,) = json.loads(again.stdout)["targets"]
    assert report["outcome"] == "rotated"
    assert violations(emu, seeded) == []


def test_a_missing_ca_file_is_one_line_naming_it(world: World, tmp_path: Path) -> None:
    emu = world.emu
    missing = str(tmp_path / "no-such-ca.pem")
    done = _cli(
        emu, tmp_path, _config(emu, world.target()), "status", env={"ROTATION_CA_FILE": missing}
    )
    assert done.returncode == 2
    assert missing in _one_line(done.stderr)


def test_a_url_that_is_not_key_vault_says_so(world: World, tmp_path: Path) -> None:
    emu = world.emu
    config = _config(emu, world.target()) | {"key_vault_url": emu.databricks_url}
    done = _cli(emu, tmp_path, config, "status")
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "does not answer like Key Vault" in line
    assert "key_vault_url" in line


def test_status_shows_why_and_due_agrees_after_an_interrupted_mint(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    assert _cli(emu, tmp_path, config, "rotate").returncode == 0
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    emu.keyvault.update(seeded.secret_name, None, {"tags": latest.tags | {"minting": "abc"}})
    status = _cli(emu, tmp_path, config, "status", "--json")
    (row,) = json.loads(status.stdout)["targets"]
    assert "sweep" in row["reason"]
    assert row["due"] is True
    table = _cli(emu, tmp_path, config, "status")
    assert "REASON" in table.stdout.splitlines()[0]
    assert "an interrupted mint was recorded" in table.stdout


def test_the_bootstrap_note_names_the_hand_made_pats(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded: SeededTarget = world.target()
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    (report,) = json.loads(done.stdout)["targets"]
    (note,) = [n for n in report["notes"] if "none will be revoked" in n]
    assert seeded.human_token_id in note


def test_info_logging_shows_rotation_lines_not_http_dumps(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    done = _cli(emu, tmp_path, _config(emu, seeded), "--log-level", "info", "rotate")
    assert done.returncode == 0, done.stderr
    assert "step=mint done" in done.stderr
    assert "Request headers" not in done.stderr
    assert "Response headers" not in done.stderr
    assert "HTTP Request:" not in done.stderr
    debug = _cli(emu, tmp_path, _config(emu, seeded), "--log-level", "debug", "rotate", "--force")
    assert "Request headers" in debug.stderr  # the SDKs' HTTP logging is there when asked for


def test_sigterm_mid_run_stops_like_ctrl_c_exits_143_and_the_next_run_resumes(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    proc, stdout, stderr = _interrupted_at_push(
        emu, tmp_path, seeded, config, signal.SIGTERM, "--json"
    )
    hygiene.record_text("cli sigterm stdout", stdout)
    hygiene.record_text("cli sigterm stderr", stderr)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert f"interrupted by SIGTERM: target {seeded.name} at step push" in stderr
    error = json.loads(stdout)["error"]
    assert (error["kind"], error["signal"]) == ("interrupted", "SIGTERM")
    emu.faults.clear()
    again = _cli(emu, tmp_path, config, "rotate", "--json")
    assert again.returncode == 0, again.stderr
    (report,) = json.loads(again.stdout)["targets"]
    assert report["outcome"] == "rotated"
    assert violations(emu, seeded) == []


class _CtrlCWhilePrinting(io.StringIO):
    """The output a Ctrl-C arrives during: the rotation is done, its table is being printed."""

    def write(self, text: str) -> int:
        if not self.getvalue():
            os.kill(os.getpid(), signal.SIGINT)  # handled before the next bytecode
        return super().write(text)


def test_ctrl_c_after_the_work_is_done_keeps_the_runs_result(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rotation.cli import main

    emu = world.emu
    seeded = world.target()
    for key, value in cli_env(emu, tmp_path, _config(emu, seeded)).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    out = _CtrlCWhilePrinting()
    assert main(["rotate", "--json"], out=out) == 0
    (report,) = json.loads(out.getvalue())["targets"]
    assert report["outcome"] == "rotated"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_in_the_sandbox_says_so_and_leaves_no_ca_folder(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "sandbox"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the emulators are up; the rotations have not run
        assert first.startswith("Emulators on loopback"), first
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    hygiene.record_text("sandbox ctrl-c stdout", stdout)
    hygiene.record_text("sandbox ctrl-c stderr", stderr)
    assert "Traceback" not in stderr
    assert proc.returncode in {0, 130}, stderr
    if proc.returncode == 130:
        assert "sandbox: stopped by SIGINT" in stdout
    assert list(tmp_path.glob("emulators-tls-*")) == []


def test_a_ca_file_that_is_not_pem_is_one_line_naming_it(world: World, tmp_path: Path) -> None:
    emu = world.emu
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    done = _cli(
        emu,
        tmp_path,
        _config(emu, world.target()),
        "status",
        env={"ROTATION_CA_FILE": str(not_pem)},
    )
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert str(not_pem) in line
    assert "PEM" in line


def test_a_malformed_storage_setting_is_one_line_without_its_value(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    malformed = "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0LWtleQ=="  # no account name
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", storage=malformed)
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert "AzureWebJobsStorage" in line
    assert "c2VjcmV0LWtleQ" not in line
    assert rotator_tokens(emu, seeded) == []


def test_an_untrusted_certificate_says_so_and_that_retrying_cannot_help(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    done = _cli(emu, tmp_path, _config(emu, world.target()), "status", env={"ROTATION_CA_FILE": ""})
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "certificate is not trusted" in line
    assert "retrying cannot help" in line
    assert "unreachable" not in line
    assert "'*'" not in line  # "list secret '*'" was no phrase a user knows
    assert "(list the secrets)" in line


def test_no_credentials_at_all_says_az_login(world: World, tmp_path: Path) -> None:
    emu = world.emu
    env = cli_env(emu, tmp_path, _config(emu, world.target()))
    for key in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        del env[key]
    done = subprocess.run(
        [sys.executable, "-m", "rotation", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    hygiene.record_text("cli no credentials stderr", done.stderr)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "`az login`" in line


def test_a_config_path_with_an_equals_sign_is_read_as_the_file(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    folder = tmp_path / "env=prod"
    folder.mkdir()
    path = folder / "rotation.json"
    path.write_text(json.dumps(_config(emu, world.target())))
    done = _cli(emu, tmp_path, {}, "status", env={"ROTATION_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    missing = _cli(emu, tmp_path, {}, "status", env={"ROTATION_CONFIG": str(folder / "nope.toml")})
    assert missing.returncode == 2
    line = _one_line(missing.stderr)
    assert "names no existing file" in line
    assert "read as inline TOML" in line


def test_pip_install_gets_the_runtime_dependencies_within_the_apps_pins() -> None:
    import tomllib

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parent.parent
    declared = {
        (r := Requirement(line)).name.lower(): r
        for line in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    pinned = {}
    for raw in (root / "requirements.txt").read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[name.lower()] = version
    assert set(declared) == set(pinned)
    for name, version in pinned.items():
        assert declared[name].specifier.contains(version, prereleases=True), (name, version)
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert "pat-rotator contributors" in (root / "LICENSE").read_text()


async def test_rotation_ca_file_is_trusted_besides_the_public_roots(world: World) -> None:
    """The README calls ROTATION_CA_FILE an extra CA bundle: it must not replace the roots."""
    from rotation.app import azure_transport
    from rotation.app import http_client as _http_client

    ca = str(world.emu.ca_path)
    config = world.config(world.target())
    async with _http_client(config, ca, 5) as client:
        context = client._transport._ssl_context  # type: ignore[attr-defined]
        assert context.cert_store_stats()["x509_ca"] > 1
    async with azure_transport(ca) as transport:
        context = transport.session.connector._ssl  # type: ignore[union-attr]
        assert context.cert_store_stats()["x509_ca"] > 1


@contextlib.contextmanager
def _untrusted_tls_server() -> Iterator[str]:
    """Yield the URL of a loopback HTTPS server whose certificate nobody trusts."""
    import http.server
    import ssl
    import threading

    import trustme

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)  # a CA nobody trusts
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _says_the_certificate_is_not_trusted(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1
    (report,) = json.loads(done.stdout)["targets"]
    error = report["error"]
    assert "TLS certificate is not trusted" in error["message"]
    assert "retrying cannot help" in error["message"]
    assert error["transient"] is False
    return str(error["message"])


def test_a_consumer_with_an_untrusted_certificate_says_so(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    with _untrusted_tls_server() as url:
        config["targets"][0]["updaters"][0]["base_url"] = url  # type: ignore[index]
        done = _cli(emu, tmp_path, config, "rotate", "--dry-run", "--json")
    assert "Prequel" in _says_the_certificate_is_not_trusted(done)
    assert rotator_tokens(emu, seeded) == []


def test_a_workspace_with_an_untrusted_certificate_says_so(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    with _untrusted_tls_server() as url:
        config["targets"][0]["workspace_url"] = url  # type: ignore[index]
        done = _cli(emu, tmp_path, config, "rotate", "--dry-run", "--json")
    assert "Databricks workspace" in _says_the_certificate_is_not_trusted(done)
    assert rotator_tokens(emu, seeded) == []
