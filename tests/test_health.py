"""Between runs: a PAT revoked outside the rotator is found and healed; credentials are watched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rotation.engine import Outcome, Step
from tests.invariants import consumer_store, rotator_tokens, violations
from tests.test_cli import _cli, _config
from tests.world import World

HOUR = 3600.0
DAY = 86_400.0
CHECK_EVERY_RUN = {"health_check_hours": 0.25}  # due within the 15-minute slack: every run


def _current_token(world: World, secret_name: str) -> str:
    latest = world.emu.keyvault.latest(secret_name)
    assert latest is not None
    return latest.tags["token-id"]


async def test_a_healthy_pat_is_checked_without_using_it(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    first = await world.rotate_one(seeded)
    used = emu.databricks.last_used(first.token_id)
    emu.clock.advance(6 * HOUR)
    emu.requests.clear()
    checked = await world.rotate_one(seeded)
    assert checked.outcome is Outcome.HEALTHY
    assert checked.steps == [Step.CREDENTIALS, Step.HEALTH]
    calls = {s: emu.requests.count(s) for s in ("entra", "databricks", "keyvault", "prequel")}
    calls["keyvault"] -= emu.requests.count("keyvault", "GET", "/secrets")  # the listing's pages
    # latest version, credential, health tag; one Entra token; one token list
    assert calls == {"entra": 1, "databricks": 1, "keyvault": 3, "prequel": 0}, calls
    assert emu.requests.count("databricks", "GET", "/api/2.0/token/list") == 1
    assert emu.databricks.last_used(first.token_id) == used  # the check did not use the PAT
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert abs(float(latest.tags["health-checked-at"]) - emu.clock.now()) < 60
    emu.requests.clear()
    again = await world.rotate_one(seeded)  # checked within the cadence: listing only
    assert again.outcome is Outcome.NOT_DUE
    assert emu.requests.count("databricks") == 0


@pytest.mark.parametrize("how", ["revoked-by-admin", "unused-for-91-days"])
async def test_a_pat_that_died_between_runs_is_healed(
    world: World, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    emu = world.emu
    seeded = world.target(timing={"lifetime_days": 200, "rotate_before_days": 30})
    first = await world.rotate_one(seeded)
    token = emu.databricks.get(first.token_id)  # type: ignore[arg-type]
    assert token is not None
    if how == "revoked-by-admin":
        emu.databricks.revoke(first.token_id)
        emu.clock.advance(6 * HOUR)
    else:
        emu.clock.advance(91 * DAY)  # nobody used it: Azure Databricks revokes it
    assert not emu.databricks.is_live(token.value)
    healed = await world.rotate_one(seeded)
    assert healed.outcome is Outcome.HEALED, healed.error
    assert "revoked outside the rotator" in healed.reason
    assert any(r.levelname == "ERROR" and "step=health" in r.getMessage() for r in caplog.records)
    (live,) = rotator_tokens(emu, seeded)
    assert live.token_id == healed.token_id == _current_token(world, seeded.secret_name)
    for c in seeded.consumers:
        assert consumer_store(emu, c.kind)[c.id].access_token == live.value
    assert violations(emu, seeded) == []


async def test_without_can_use_healing_fails_with_missing_can_use(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    emu.databricks.set_can_use(seeded.application_id, False)  # revokes its tokens too
    emu.clock.advance(6 * HOUR)
    failed = await world.rotate_one(seeded)
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert failed.error.kind == "missing-can-use"
    assert rotator_tokens(emu, seeded) == []  # nothing was minted
    emu.databricks.set_can_use(seeded.application_id, True)
    healed = await world.rotate_one(seeded)
    assert healed.outcome is Outcome.HEALED
    assert violations(emu, seeded) == []


def test_the_cli_heals_and_status_shows_health_and_credential(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target(timing=CHECK_EVERY_RUN)
    config = _config(emu, seeded)
    first = _cli(emu, tmp_path, config, "rotate", "--json")
    assert first.returncode == 0, first.stderr
    emu.databricks.revoke(_current_token(world, seeded.secret_name))
    healed = _cli(emu, tmp_path, config, "rotate", "--json")
    assert healed.returncode == 0, healed.stderr
    (report,) = json.loads(healed.stdout)["targets"]
    assert report["outcome"] == "healed"
    in_20_days = int(time.time() + 20 * DAY)  # the CLI's clock is the real one
    emu.keyvault.update(f"{seeded.name}-sp-credential", None, {"exp": in_20_days})
    status = _cli(emu, tmp_path, config, "status", "--json")
    (row,) = json.loads(status.stdout)["targets"]
    assert row["credential_expires_at"] is not None
    assert 19 < row["credential_days_left"] < 21
    assert row["health_checked_at"] is not None

    emu.databricks.set_can_use(seeded.application_id, False)
    broken = _cli(emu, tmp_path, config, "rotate", "--json")
    assert broken.returncode == 1
    (report,) = json.loads(broken.stdout)["targets"]
    assert report["error"]["kind"] == "missing-can-use"


async def test_an_expiring_credential_warns_then_fails_after_the_work_is_done(
    world: World,
) -> None:
    emu = world.emu
    seeded = world.target()
    credential = f"{seeded.name}-sp-credential"
    emu.keyvault.update(credential, None, {"exp": int(emu.clock.now() + 20 * DAY)})
    warned = await world.rotate_one(seeded)
    assert warned.outcome is Outcome.ROTATED
    assert any("expires in 20.0 days" in n for n in warned.notes)
    assert warned.credential_expires_on is not None

    emu.keyvault.update(credential, None, {"exp": int(emu.clock.now() + 5 * DAY)})
    failed = await world.rotate_one(seeded, force=True)
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert (failed.error.kind, failed.error.step) == ("credential-expiring", Step.CREDENTIALS)
    assert credential in failed.error.message
    assert failed.token_id == _current_token(world, seeded.secret_name)  # it rotated all the same
    assert violations(emu, seeded) == []


async def test_configured_scopes_are_minted_and_verified_without_scim(world: World) -> None:
    emu = world.emu
    seeded = world.target(timing={"scopes": ["sql"]})
    emu.requests.clear()
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    token = emu.databricks.get(report.token_id)  # type: ignore[arg-type]
    assert token is not None
    assert tuple(token.scopes or ()) == ("sql",)
    assert (
        emu.requests.count("databricks", "GET", "/api/2.0/preview/scim/v2/Me")
        <= len(seeded.consumers) * 2
    )  # only the consumers' tests (they connect to the SQL warehouse), never ours
    assert any("do not allow SCIM Me" in n for n in report.notes)
    assert violations(emu, seeded) == []


async def test_without_configured_scopes_a_pat_keeps_its_predecessors(world: World) -> None:
    emu = world.emu
    seeded = world.target(timing={"scopes": ["sql", "scim"]})
    await world.rotate_one(seeded)
    unconfigured = dict(seeded.table)
    del unconfigured["scopes"]
    seeded.table = unconfigured
    second = await world.rotate_one(seeded, force=True)
    assert second.outcome is Outcome.ROTATED, second.error
    token = emu.databricks.get(second.token_id)  # type: ignore[arg-type]
    assert token is not None
    assert tuple(sorted(token.scopes or ())) == ("scim", "sql")
    seeded.table = {**unconfigured, "scopes": ["sql"]}
    third = await world.rotate_one(seeded, force=True)
    assert any("scopes change as configured" in n for n in third.notes)


def test_a_key_vault_only_target_that_outlives_inactivity_is_warned_about(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target(consumers=(), timing={"lifetime_days": 200, "rotate_before_days": 30})
    status = _cli(emu, tmp_path, _config(emu, seeded), "status")
    assert status.returncode == 0, status.stderr
    assert "revokes a PAT unused for 90 days" in status.stderr
    assert "healed" in status.stderr
