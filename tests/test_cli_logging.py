"""The CLI's logging at its default level: one line per failure; the details with debug."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from rotation import logs
from tests.test_cli import _cli, _config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.world import World

LIST = "/api/2.0/token/list"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_credential_that_gets_no_token_is_one_line_and_debug_has_the_details(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    config = _config(emu, world.target())
    wrong = {"AZURE_CLIENT_SECRET": "not-the-secret-of-this-app"}
    done = _cli(emu, tmp_path, config, "status", env=wrong)
    assert done.returncode == 1
    (line,) = _lines(done.stderr)  # azure-identity's list of credentials and Entra's JSON: gone
    assert line.startswith("error: Key Vault")
    assert line.endswith("(details: --log-level debug)")

    info = _cli(emu, tmp_path, config, "--log-level", "info", "status", env=wrong)
    warning, error = _lines(info.stderr)  # at info: azure-identity's warning, in one line
    assert error.startswith("error: Key Vault")
    assert "EnvironmentCredential" in warning
    assert "AADSTS7000215" in warning
    assert '"error_codes"' not in warning

    debug = _cli(emu, tmp_path, config, "--log-level", "debug", "status", env=wrong)
    assert "Attempted credentials:" in debug.stderr
    assert '"error_codes"' in debug.stderr  # Entra's body, in full


def test_a_failed_target_is_said_once_in_the_report(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    emu.databricks.remove_from_workspace(seeded.application_id)
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate")
    assert done.returncode == 1
    assert "is not a user of" in done.stdout
    assert "is not a user of" not in done.stderr  # the log line said it a second time
    assert _lines(done.stderr) == [line for line in _lines(done.stderr) if "note:" in line]

    info = _cli(emu, tmp_path, _config(emu, seeded), "--log-level", "info", "rotate")
    assert "failed kind=principal-not-in-workspace" in info.stderr  # info keeps the run's lines


def test_a_retry_says_what_and_why_at_info_and_nothing_at_the_default_level(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    config = _config(emu, seeded)
    emu.faults.add("databricks", "GET", LIST, status=503)
    done = _cli(emu, tmp_path, config, "rotate")
    assert done.returncode == 0, done.stderr
    assert "retry" not in done.stderr  # a retry that worked is no failure
    assert "stamina" not in done.stderr

    emu.faults.add("databricks", "GET", LIST, status=503)
    info = _cli(emu, tmp_path, config, "--log-level", "info", "rotate", "--force")
    assert info.returncode == 0, info.stderr
    (retry,) = [line for line in _lines(info.stderr) if "rotation.retry" in line]
    assert "retry 1 of" in retry
    assert "DatabricksError: Databricks answered 503" in retry
    assert "stamina.retry_scheduled" not in info.stderr


def test_a_traceback_is_one_line_below_debug() -> None:
    formatter = logs.OneLineFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("the detail")
    except ValueError:
        record = logging.LogRecord("rotation", logging.ERROR, "f", 1, "boom", None, sys.exc_info())
    text = formatter.format(record)
    assert "\n" not in text
    assert text == "ERROR boom — ValueError: the detail (details: --log-level debug)"
