"""``python -m rotation`` in a real subprocess: exit codes, JSON, tables, DefaultAzureCredential."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.harness import Emulators
from emulators.scenario import SeededTarget, config_table, rotator_env
from tests import hygiene
from tests.invariants import rotator_tokens
from tests.world import World


def cli_env(
    emu: Emulators, tmp_path: Path, config: object, storage: str | None = None
) -> dict[str, str]:
    """The environment of a CLI run against the emulators: config file, identity, CA."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, **rotator_env(emu, str(path))}
    env.pop("AzureWebJobsStorage", None)
    if storage:
        env["AzureWebJobsStorage"] = storage
    return env


def _cli(
    emu: Emulators,
    tmp_path: Path,
    config: object,
    *args: str,
    storage: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "rotation", *args],
        env=cli_env(emu, tmp_path, config, storage) | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    hygiene.record_text(f"cli {' '.join(args)} stdout", done.stdout)
    hygiene.record_text(f"cli {' '.join(args)} stderr", done.stderr)
    return done


def _config(emu: Emulators, *seeded: SeededTarget) -> dict[str, object]:
    return config_table(emu, *seeded)


def test_rotate_json_then_status_json(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    assert report["outcome"] == "rotated"
    assert report["target"] == seeded.name
    (live,) = rotator_tokens(emu, seeded)
    assert report["token_id"] == live.token_id
    assert report["consumers"][0]["confirmed"] is True
    assert set(report) >= {"rotation_id", "expires_at", "revoked", "swept", "steps", "error"}

    status = _cli(emu, tmp_path, _config(emu, seeded), "status", "--json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["targets"]
    assert row["token_id"] == live.token_id
    assert row["stage"] == "current"
    assert row["last_result"].startswith("rotated ")
    assert row["due"] is False


def test_human_output_is_a_table(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--target", seeded.name)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header[:3] == ["TARGET", "OUTCOME", "TOKEN"]
    assert f"{seeded.name}  rotated" in done.stdout
    assert "no lock" in done.stderr


def test_a_failed_target_exits_1_with_the_reason(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    emu.databricks.remove_from_workspace(seeded.application_id)
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate")
    assert done.returncode == 1
    assert "failed at step" in done.stdout
    assert "Import" in done.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("rotate", "--target", "nope"), "Unknown target(s) 'nope'"),
        (("frobnicate",), "invalid choice"),
        (("rotate", "--bogus"), "usage: python -m rotation rotate"),
        (("status", "--force"), "unrecognized arguments: --force"),
    ],
)
def test_usage_errors_exit_2(
    world: World, tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    emu = world.emu
    done = _cli(emu, tmp_path, _config(emu, world.target()), *args)
    assert done.returncode == 2
    assert needle in done.stderr


def test_bad_configuration_exits_2_and_lists_problems(world: World, tmp_path: Path) -> None:
    done = _cli(world.emu, tmp_path, {"key_vault_url": "http://x", "targets": []}, "status")
    assert done.returncode == 2
    assert "key_vault_url" in done.stderr
    assert "targets" in done.stderr


def test_the_cli_takes_the_blob_lock_when_storage_is_configured(
    world: World, tmp_path: Path, azurite
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", storage=azurite.connection_string)
    assert done.returncode == 0, done.stderr
    assert "blob-lease lock" in done.stderr
    assert "no lock" not in done.stderr


def test_version_prints_the_release(world: World, tmp_path: Path) -> None:
    from rotation import __version__

    done = _cli(world.emu, tmp_path, {}, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"python -m rotation {__version__}"


def _offline_env() -> dict[str, str]:
    """No credentials and a proxy that answers nothing: any network call would fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))}
    env.pop("ROTATION_KEY_VAULT_URL", None)
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    return env | {"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ROTATION_CONFIG": ""}


def _validate(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "rotation", "--config", str(path), "validate", *args],
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    hygiene.record_text("cli validate stdout", done.stdout)
    hygiene.record_text("cli validate stderr", done.stderr)
    return done


def test_validate_checks_the_configuration_offline_one_line_per_problem(tmp_path: Path) -> None:
    good = tmp_path / "rotation.toml"
    good.write_text(Path("rotation.sample.toml").read_text())
    done = _validate(good)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: 1 target(s): prequel-prod\n"
    assert "ROTATION_KEY_VAULT_URL" in done.stderr  # the sample leaves the vault to the app setting
    assert "Traceback" not in done.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(
        good.read_text()
        .replace("adb-1234567890123456.7.azuredatabricks.net", "adb-1.azuredatabricks.net/x")
        .replace('source_id = "your-source-id"', 'source_id = "s"\nupdate_path = "sources"')
    )
    done = _validate(bad)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"error: {bad}: targets[0].")
    assert any("workspace_url" in line for line in lines)
    assert any("update_path" in line for line in lines)
    assert done.stdout == ""

    as_json = json.loads(_validate(bad, "--json").stdout)
    assert as_json["ok"] is False
    assert len(as_json["error"]["problems"]) == 2


def test_status_shows_only_the_targets_asked_for(world: World, tmp_path: Path) -> None:
    emu = world.emu
    one, two = world.target(), world.target()
    config = _config(emu, one, two)
    done = _cli(emu, tmp_path, config, "status", "--target", two.name, "--json")
    assert done.returncode == 0, done.stderr
    assert [row["target"] for row in json.loads(done.stdout)["targets"]] == [two.name]
    unknown = _cli(emu, tmp_path, config, "status", "--target", "nope")
    assert unknown.returncode == 2
    assert "Unknown target(s) 'nope'" in unknown.stderr


def test_json_mode_prints_an_error_object_for_run_level_failures(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    bad = _cli(emu, tmp_path, {"key_vault_url": "http://x", "targets": []}, "rotate", "--json")
    assert bad.returncode == 2
    error = json.loads(bad.stdout)["error"]
    assert error["kind"] == "config"
    assert any("key_vault_url" in p for p in error["problems"])

    with socket.socket() as s:  # a port nothing listens on: Key Vault is down
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}"
    config = _config(emu, world.target()) | {"key_vault_url": dead}
    down = _cli(emu, tmp_path, config, "status", "--json")
    assert down.returncode == 1
    error = json.loads(down.stdout)["error"]
    assert error["kind"] == "secret-store"
    assert error["transient"] is True
    assert dead in error["message"]
