"""Grace periods and the orphan sweep: old PATs go when it is safe, a person's PATs never do."""

from __future__ import annotations

import pytest

from rotation.engine import Outcome, Step
from tests.invariants import rotator_tokens, violations
from tests.world import World, crash_leftover, marker

HOUR = 3600.0


@pytest.mark.parametrize("kind", ["entra-client-secret", "managed-identity", "self"])
async def test_grace_period_keeps_the_previous_pat_until_it_passes(world: World, kind: str) -> None:
    emu = world.emu
    seeded = world.target(kind=kind, timing={"grace_period_hours": 24})
    first = await world.rotate_one(seeded, force=kind == "self")
    second = await world.rotate_one(seeded, force=True)
    assert second.revoked == []
    assert emu.databricks.is_live(emu.databricks.get(first.token_id).value)  # type: ignore[union-attr]
    assert violations(emu, seeded, max_live=2) == []

    emu.clock.advance(23 * HOUR)
    early = await world.rotate_one(seeded)
    assert early.outcome is Outcome.HEALTHY  # its health was checked; the grace is not over
    assert emu.databricks.get(first.token_id) is not None

    emu.clock.advance(2 * HOUR)
    late = await world.rotate_one(seeded)
    assert late.outcome is Outcome.HOUSEKEEPING
    assert late.revoked == [first.token_id]
    assert violations(emu, seeded) == []
    versions = {v.tags.get("token-id"): v for v in emu.keyvault.versions(seeded.secret_name)}
    assert versions[first.token_id].tags["stage"] == "revoked"
    assert not versions[first.token_id].enabled


async def test_a_new_rotation_cuts_an_outstanding_grace_short(world: World) -> None:
    emu = world.emu
    seeded = world.target(timing={"grace_period_hours": 24})
    first = await world.rotate_one(seeded)
    await world.rotate_one(seeded, force=True)
    third = await world.rotate_one(seeded, force=True)
    assert first.token_id in third.revoked
    assert len(rotator_tokens(emu, seeded)) == 2
    assert violations(emu, seeded, max_live=2) == []


@pytest.mark.parametrize("kind", ["entra-client-secret", "managed-identity", "self"])
async def test_orphans_are_swept_and_a_persons_pat_is_not(world: World, kind: str) -> None:
    emu = world.emu
    seeded = world.target(kind=kind)
    await world.rotate_one(seeded, force=kind == "self")
    orphan = crash_leftover(emu, seeded, "crashed1")
    other_target = emu.databricks.mint(seeded.application_id, 86_400, marker(emu, "other", "x"))
    personal = emu.databricks.mint(seeded.application_id, 86_400, "pat-rotator is great")

    report = await world.rotate_one(seeded, force=True)
    assert report.swept == [orphan.token_id]
    assert emu.databricks.get(orphan.token_id) is None or not emu.databricks.is_live(orphan.value)
    assert emu.databricks.is_live(other_target.value)
    assert emu.databricks.is_live(personal.value)
    assert emu.databricks.is_live(emu.databricks.get(seeded.human_token_id).value)  # type: ignore[union-attr,arg-type]


async def test_young_orphans_wait_for_a_later_run(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    orphan = crash_leftover(emu, seeded, "young")
    report = await world.rotate_one(seeded, force=True, orphan_min_age_minutes=10)
    assert report.swept == []
    assert report.deferred == [orphan.token_id]
    emu.clock.advance(11 * 60)
    later = await world.rotate_one(seeded, force=True, orphan_min_age_minutes=10)
    assert later.swept == [orphan.token_id]


async def test_a_lost_create_answer_is_reconciled_by_rotation_id_at_once(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    first = await world.rotate_one(seeded)
    emu.faults.add("databricks", "POST", "/api/2.0/token/create", mode="drop_after", times=1)
    failed = await world.rotate_one(seeded, force=True)
    assert failed.error is not None
    assert failed.error.step is Step.MINT
    assert failed.error.transient
    assert emu.requests.count("databricks", "POST", "/api/2.0/token/create") >= 1
    (lost,) = failed.swept  # found by the rotation id in its comment, revoked: its value is lost
    assert emu.databricks.get(lost) is None
    assert emu.databricks.was_revoked(lost)
    (live,) = rotator_tokens(emu, seeded)
    assert live.token_id == first.token_id  # never retried blindly: no second PAT
    assert violations(emu, seeded) == []


async def test_an_interrupted_mint_is_swept_by_the_next_run_without_rotating(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    # The answer is lost and reconciling fails too (as if the process had died right there).
    emu.faults.add("databricks", "POST", "/api/2.0/token/create", mode="drop_after", times=1)
    emu.faults.add("databricks", "GET", "/api/2.0/token/list", status=503, skip=1, times=-1)
    failed = await world.rotate_one(seeded, force=True)
    assert failed.error is not None
    assert failed.error.step is Step.MINT
    assert len(rotator_tokens(emu, seeded)) == 2  # the lost one is live, known only by comment
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert "minting" in latest.tags
    emu.faults.clear()

    emu.requests.clear()
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.HOUSEKEEPING
    assert len(report.swept) == 1
    assert emu.requests.count("databricks", "POST", "/api/2.0/token/create") == 0
    assert "minting" not in emu.keyvault.latest(seeded.secret_name).tags  # type: ignore[union-attr]
    assert violations(emu, seeded) == []
