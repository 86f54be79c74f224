"""The CLI as a new user meets it: every failure one clear line, fast, and the right exit code."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from emulators.scenario import SeededTarget
from rotation.report import Step
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


def test_ctrl_c_says_where_it_stopped_exits_130_and_the_next_run_resumes(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    fault = emu.faults.add("prequel", "PATCH", f"/sources/{seeded.consumers[0].id}", mode="hold")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotation", "rotate"],
        env=cli_env(emu, tmp_path, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fault.arrived.wait(60), "the CLI never reached the push"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        fault.release()
        if proc.poll() is None:
            proc.kill()
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
