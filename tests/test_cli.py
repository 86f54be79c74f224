"""``python -m rotation`` in a real subprocess: exit codes, JSON, tables, DefaultAzureCredential."""

from __future__ import annotations

import json
import os
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
