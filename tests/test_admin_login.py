"""``--admin-login`` in the sandbox world: the environment's identity is the person's own login.

``rotator_env(..., workspace_admin=True)`` (what ``python -m emulators serve`` writes) makes the
identity ``DefaultAzureCredential`` finds a workspace admin, as ``az login`` as an admin would;
``grant`` and ``doctor``'s admin checks then run for real, and a login that is not an admin is
named as the person's login, never as "Service principal admin".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from azure.identity.aio import ClientSecretCredential

from emulators.scenario import config_table, rotator_env
from rotation.app import login_auth
from rotation.backends import BearerAuth
from rotation.errors import CredentialError
from tests import hygiene

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from tests.world import World


def _run(
    emu: Emulators, tmp_path: Path, seeded: SeededTarget, *args: str, admin: bool = True
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_table(emu, seeded)))
    env = {**os.environ, **rotator_env(emu, str(path), workspace_admin=admin)}
    env.pop("AzureWebJobsStorage", None)
    done = subprocess.run(
        [sys.executable, "-m", "rotation", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    hygiene.record_text(f"cli {' '.join(args)} stdout", done.stdout)
    hygiene.record_text(f"cli {' '.join(args)} stderr", done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_grant_with_the_sandbox_admin_login_grants_can_use_once(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    emu.databricks.set_can_use(seeded.application_id, False)
    args = ("grant", "--target", seeded.name, "--admin-login")
    done = _run(emu, tmp_path, seeded, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"granted CAN_USE on tokens to service principal {seeded.application_id}" in done.stdout
    principal = emu.databricks.principal(seeded.application_id)
    assert principal is not None
    assert principal.can_use
    again = _run(emu, tmp_path, seeded, *args)
    assert again.returncode == 0
    assert "nothing to do: CAN_USE already held" in again.stdout


def test_doctor_runs_the_admin_checks_with_the_sandbox_admin_login(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    done = _run(emu, tmp_path, seeded, "doctor", "--json", "--admin-login")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    for name in (
        "workspace: personal access tokens enabled",
        "workspace: lifetime within maxTokenLifetimeDays",
        "workspace: CAN_USE on tokens",
    ):
        assert checks[name]["ok"] is True, checks[name]
    assert not [c for c in checks.values() if c["ok"] is None]  # nothing "needs an admin"


def test_a_login_outside_the_workspace_is_named_as_your_login(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    args = ("grant", "--target", seeded.name, "--admin-login")
    done = _run(emu, tmp_path, seeded, *args, admin=False)
    assert done.returncode == 1
    assert "Service principal admin" not in done.stdout
    assert "Your own Entra login (--admin-login) is not a user of workspace" in done.stdout
    assert "az login" in done.stdout


def test_a_login_that_is_no_admin_is_told_so(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_table(emu, seeded)))
    env = rotator_env(emu, str(path))
    emu.databricks.add_service_principal(env["AZURE_CLIENT_ID"], "a user, no admin")
    done = subprocess.run(
        [sys.executable, "-m", "rotation", "doctor", "--admin-login"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    hygiene.record_text("cli doctor --admin-login stdout", done.stdout)
    hygiene.record_text("cli doctor --admin-login stderr", done.stderr)
    assert done.returncode == 1
    (line,) = [line for line in done.stdout.splitlines() if "workspace:" in line]
    assert line.startswith("✗")
    assert "Your own Entra login (--admin-login) is not a workspace admin" in line
    assert "Service principal" not in line


async def test_a_login_that_gets_no_token_is_one_clear_error(world: World) -> None:
    emu = world.emu
    credential = ClientSecretCredential(
        world.tenant_id,
        world.client_id,
        "not-the-secret",
        authority=emu.entra_url,
        connection_verify=str(emu.ca_path),
    )
    async with credential:
        admin = login_auth(credential)
        assert isinstance(admin.auth, BearerAuth)
        with pytest.raises(CredentialError) as caught:
            await admin.auth.token()
    message = str(caught.value)
    assert message.startswith("--admin-login: your own Entra login (--admin-login) got no token")
    assert "AADSTS7000215" in message
    assert "az login" in message
    assert "\n" not in message
