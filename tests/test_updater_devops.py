"""The ``azure-devops-variable-group`` updater end to end: the real CLI against the emulators.

Whether Azure DevOps keeps a secret sent back as ``null`` is unconfirmed, so the emulator runs
both readings (``null_keeps_secret``): the default refusal must hold in each, and the opt-in
(``other_secrets = "kept-by-null"``) shows what it risks when the reading is wrong.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.scenario import DEVOPS_ORGANIZATION, DEVOPS_VARIABLE, SeededTarget
from rotation.errors import RotationError
from tests import hygiene
from tests.consumers import fails_then_heals, refused_table, rotate_cli
from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config, cli_env
from tests.test_fuzz import SLOW_FUZZ, json_values
from tests.world import FAST, World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from emulators.devops_state import VariableGroup

KIND = "azure-devops-variable-group"
OTHER = "WAREHOUSE_PASSWORD"


def _seed(world: World) -> tuple[SeededTarget, VariableGroup]:
    seeded = world.target(consumers=(KIND,))
    return seeded, world.emu.devops.group(int(seeded.consumers[0].id))


def _other_secret(world: World, group: VariableGroup) -> str:
    value = f"pw-{secrets.token_hex(12)}"
    world.emu.secrets.add(value, "devops_secret")
    group.set(OTHER, value, secret=True)
    return value


def _opt_in(seeded: SeededTarget) -> None:
    seeded.table["updaters"][0]["other_secrets"] = "kept-by-null"


@pytest.fixture
def null_keeps(world: World) -> Iterator[None]:
    world.emu.devops.null_keeps_secret = True
    yield
    world.emu.devops.null_keeps_secret = False


def test_rotation_puts_the_new_pat_in_the_group_and_keeps_the_rest(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded, group = _seed(world)
    first = rotate_cli(world, tmp_path, seeded)
    assert first["exit"] == 0, first["error"]
    (minted,) = rotator_tokens(emu, seeded)
    assert held_pat(emu, KIND, seeded.consumers[0].id) == minted.value
    assert group.is_secret(DEVOPS_VARIABLE)
    assert group.value("DATABRICKS_HOST") == emu.databricks_url  # the plain variable is kept
    (consumer,) = first["consumers"]
    assert consumer["name"] == f"{KIND}:{DEVOPS_ORGANIZATION}/{group.id}/{DEVOPS_VARIABLE}"
    assert (consumer["tested"], consumer["confirmed"]) == (False, True)
    assert group.puts[-1].wiped == ()

    second = rotate_cli(world, tmp_path, seeded, "--force")
    assert second["exit"] == 0, second["error"]
    assert second["revoked"] == [minted.token_id]
    (live,) = rotator_tokens(emu, seeded)
    assert group.value(DEVOPS_VARIABLE) == live.value
    assert violations(emu, seeded) == []


def test_the_apps_managed_identity_can_write_the_group(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded, group = _seed(world)
    identity = emu.add_managed_identity(name=f"{seeded.name}-devops-mi")
    emu.devops.add_member(DEVOPS_ORGANIZATION, identity)
    table = seeded.table["updaters"][0]
    for key in ("tenant_id", "client_secret_name", "authority_host"):
        table.pop(key)
    table |= {"auth": "managed-identity", "client_id": identity}
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 0, report["error"]
    assert group.puts[-1].client_id == identity
    assert violations(emu, seeded) == []


def test_a_sign_in_page_is_an_auth_error_before_anything_is_minted(
    world: World, tmp_path: Path
) -> None:
    """The token dies while the preflight read is on its way: the service answers 203 + HTML."""
    emu = world.emu
    seeded, group = _seed(world)
    app_id = seeded.table["updaters"][0]["client_id"]
    path = f"/{DEVOPS_ORGANIZATION}/.*/variablegroups/{group.id}"
    hold = threading.Event()
    fault = emu.faults.add("devops", "GET", path, mode="hold", hold=hold)
    env = cli_env(emu, tmp_path, _config(emu, seeded))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotation", "rotate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert fault.held.wait(60), "the CLI never read the group"
    emu.entra.expire_tokens(app_id)
    hold.set()
    out, err = proc.communicate(timeout=120)
    hygiene.record_text("cli devops 203 stdout", out)
    hygiene.record_text("cli devops 203 stderr", err)
    assert proc.returncode == 1
    assert "answered 203 with a sign-in page" in out
    assert f"Add that identity to organisation {DEVOPS_ORGANIZATION}" in out
    assert "Traceback" not in out + err
    assert rotator_tokens(emu, seeded) == []
    assert group.puts == []


def test_a_group_with_another_secret_is_refused_before_anything_is_minted(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded, group = _seed(world)
    other = _other_secret(world, group)
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 1
    error = report["error"]["message"]
    assert "\n" not in error
    assert f"holds other secret variables ({OTHER})" in error
    assert 'other_secrets = "kept-by-null"' in error
    assert report["error"]["step"] == "preflight"
    assert rotator_tokens(emu, seeded) == []
    assert group.puts == []
    assert group.value(OTHER) == other


def test_a_group_linked_to_key_vault_is_refused(world: World, tmp_path: Path) -> None:
    seeded, group = _seed(world)
    group.type = "AzureKeyVault"
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 1
    assert report["error"]["step"] == "preflight"
    assert "is linked to AzureKeyVault" in report["error"]["message"]
    assert rotator_tokens(world.emu, seeded) == []
    assert group.puts == []


def test_the_opt_in_rotates_and_the_other_secret_survives_where_null_keeps_it(
    world: World, tmp_path: Path, null_keeps: None
) -> None:
    del null_keeps
    emu = world.emu
    seeded, group = _seed(world)
    other = _other_secret(world, group)
    _opt_in(seeded)
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 0, report["error"]
    (live,) = rotator_tokens(emu, seeded)
    assert group.value(DEVOPS_VARIABLE) == live.value
    assert group.value(OTHER) == other
    assert group.puts[-1].kept_by_null == (OTHER,)
    assert group.puts[-1].wiped == ()


def test_the_opt_in_is_exactly_the_risk_the_default_refuses(world: World, tmp_path: Path) -> None:
    """Where ``null`` wipes a secret, the opt-in loses it: what the default refusal prevents."""
    seeded, group = _seed(world)
    other = _other_secret(world, group)
    assert rotate_cli(world, tmp_path, seeded)["exit"] == 1  # the default: refused, kept
    assert group.value(OTHER) == other
    _opt_in(seeded)
    report = rotate_cli(world, tmp_path, seeded)
    assert report["exit"] == 0, report["error"]
    assert group.puts[-1].wiped == (OTHER,)  # sent as null, never as a value read back
    assert other not in group.history.get(OTHER, [])[1:]


def test_a_5xx_on_the_write_leaves_the_old_pat_and_the_next_run_heals(
    world: World, tmp_path: Path
) -> None:
    seeded, group = _seed(world)
    path = f"/{DEVOPS_ORGANIZATION}/_apis/distributedtask/variablegroups/{group.id}"
    world.emu.faults.add("devops", "PUT", path, status=503, times=-1)
    fails_then_heals(world, tmp_path, seeded, "answered 503")


def _doctor(world: World, tmp_path: Path, seeded: SeededTarget) -> dict[str, Any]:
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "doctor", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    checks = json.loads(done.stdout)["checks"]
    (found,) = [c for c in checks if c["check"] == "consumers: endpoint, id and API key"]
    return found  # type: ignore[no-any-return]


def test_doctor_reads_the_group_and_says_why_it_would_refuse_it(
    world: World, tmp_path: Path
) -> None:
    seeded, group = _seed(world)
    good = _doctor(world, tmp_path, seeded)
    assert good["ok"] is True
    assert f"{KIND}:{DEVOPS_ORGANIZATION}/{group.id}/{DEVOPS_VARIABLE}" in good["detail"]
    _other_secret(world, group)
    bad = _doctor(world, tmp_path, seeded)
    assert bad["ok"] is False
    assert f"holds other secret variables ({OTHER})" in bad["detail"]
    assert group.puts == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"organization_url": "https://dev.azure.com"}, "one path part"),
        ({"organization_url": "http://dev.azure.com/x"}, "https://host"),
        ({"tenant_id": None}, "needs tenant_id, client_id and client_secret_name"),
        ({"auth": "managed-identity"}, "takes only client_id"),
        ({"group_id": 0}, "group_id"),
        ({"variable": "has space"}, "variable"),
        ({"other_secrets": "yes"}, "other_secrets"),
        ({"client_secret_name": "no_underscores"}, "client_secret_name"),
    ],
)
def test_bad_tables_are_refused_offline_in_one_line(
    world: World, tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    assert needle in refused_table(world, tmp_path, KIND, change)


async def test_bad_answers_never_crash_and_never_write(world: World) -> None:
    """Whatever the group read answers, preflight raises a RotationError or passes; no PUT."""
    from rotation.updaters import UpdaterContext
    from rotation.updaters.registry import plugin

    emu = world.emu
    seeded, group = _seed(world)
    spec = world.config(seeded).targets[0].updaters[0]
    answers: list[tuple[int, Any]] = []

    @SLOW_FUZZ
    @given(st.sampled_from([200, 203, 400, 401, 403, 404, 409, 429, 500]), json_values)
    def collect(status: int, body: Any) -> None:
        answers.append((status, body))

    collect()
    path = f"/{DEVOPS_ORGANIZATION}/.*/variablegroups/{group.id}"
    puts = emu.requests.count("devops", "PUT")
    async with world.runtime(world.config(seeded)) as rt:
        ctx = UpdaterContext(rt.http, rt.store, FAST, rt.azure)
        updater = plugin(KIND).build(spec.settings, ctx)
        for status, body in answers:
            shaped = body if isinstance(body, dict) else {"variables": body}
            emu.faults.add("devops", "GET", path, status=status, body=shaped, times=-1)
            try:
                await updater.preflight()
            except RotationError as exc:
                hygiene.record_text("devops bad answer", str(exc))
            emu.faults.clear()
    assert emu.requests.count("devops", "PUT") == puts
    assert group.puts == []
