"""A failure at any step leaves every consumer working; the next run finishes the same rotation."""

from __future__ import annotations

import pytest

from emulators.scenario import SeededTarget
from rotation.engine import Outcome, Step
from tests.invariants import rotator_tokens, violations
from tests.world import World

CREATE = "/api/2.0/token/create"
ME = "/api/2.0/preview/scim/v2/Me"


def _fault(world: World, seeded: SeededTarget, step: Step, old_version: str) -> None:
    source = seeded.consumers[0].id if seeded.consumers else "-"
    secret = seeded.secret_name
    where = {
        Step.MINT: ("databricks", "POST", CREATE),
        Step.STORE: ("keyvault", "PUT", f"/secrets/{secret}"),
        Step.VERIFY: ("databricks", "GET", "/api/2.0/preview/scim/v2/Me"),
        Step.TEST: ("prequel", "POST", f"/sources/{source}/test-connection"),
        Step.PUSH: ("prequel", "PATCH", f"/sources/{source}"),
        Step.CONFIRM: ("prequel", "POST", f"/sources/{source}/test-connection"),
        Step.PROMOTE: ("keyvault", "PATCH", f"/secrets/{secret}/(?!{old_version}).+"),
        Step.REVOKE: ("databricks", "POST", "/api/2.0/token/delete"),
    }[step]
    skip = 1 if step is Step.CONFIRM else 0  # the first test-connection is the test step's
    world.emu.faults.add(*where, status=503, times=-1, skip=skip)


def _successful_creates(world: World) -> int:
    return sum(
        1
        for e in world.emu.requests.entries()
        if e.service == "databricks" and e.path == CREATE and e.status == 200
    )


STEPS = [
    Step.MINT,
    Step.STORE,
    Step.VERIFY,
    Step.TEST,
    Step.PUSH,
    Step.CONFIRM,
    Step.PROMOTE,
    Step.REVOKE,
]


@pytest.mark.parametrize("kind", ["entra-client-secret", "managed-identity", "self"])
@pytest.mark.parametrize("step", STEPS)
async def test_failure_at_a_step_is_finished_by_the_next_run(
    world: World, step: Step, kind: str
) -> None:
    emu = world.emu
    seeded = world.target(kind=kind, timing={"lifetime_days": 10, "rotate_before_days": 3})
    first = await world.rotate_one(seeded, force=kind == "self")  # `self` starts from a PAT
    old = emu.keyvault.latest(seeded.secret_name)
    assert old is not None
    creates = _successful_creates(world)
    emu.clock.advance(8 * 86_400)  # now due: 2 days left

    _fault(world, seeded, step, old.version)
    failed = await world.rotate_one(seeded)
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert failed.error.step == step
    assert failed.error.transient
    assert violations(emu, seeded, settled=False) == []
    if step != "revoke":
        assert emu.databricks.is_live(emu.databricks.get(first.token_id).value)  # type: ignore[union-attr]

    emu.faults.clear()
    finished = await world.rotate_one(seeded)
    assert finished.error is None, finished.error
    expected = Outcome.HOUSEKEEPING if step is Step.REVOKE else Outcome.ROTATED
    assert finished.outcome is expected
    assert first.token_id in finished.revoked
    # One PAT per rotation; a PAT whose value could not be stored is revoked at once instead.
    assert _successful_creates(world) - creates == (2 if step is Step.STORE else 1)
    assert violations(emu, seeded) == []
    (live,) = rotator_tokens(emu, seeded)
    assert emu.keyvault.latest(seeded.secret_name).tags["token-id"] == live.token_id  # type: ignore[union-attr]


async def test_a_dead_pending_pat_is_abandoned_and_replaced(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    emu.faults.add("prequel", "PATCH", f"/sources/{seeded.consumers[0].id}", status=503, times=-1)
    failed = await world.rotate_one(seeded, force=True)
    assert failed.error is not None
    emu.faults.clear()
    emu.databricks.revoke(failed.token_id)  # someone revoked the pending PAT by hand

    finished = await world.rotate_one(seeded)
    assert finished.outcome is Outcome.ROTATED
    assert finished.token_id != failed.token_id
    assert any("abandoned" in n for n in finished.notes)
    abandoned = [
        v for v in emu.keyvault.versions(seeded.secret_name) if v.tags.get("stage") == "abandoned"
    ]
    assert [v.enabled for v in abandoned] == [False]
    assert violations(emu, seeded) == []


async def test_an_abandoned_latest_version_never_triggers_a_revoke(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    first = await world.rotate_one(seeded)
    source = seeded.consumers[0].id if seeded.consumers else "-"
    emu.faults.add("prequel", "PATCH", f"/sources/{source}", status=503, times=-1)
    failed = await world.rotate_one(seeded, force=True)  # leaves a pending version
    emu.faults.clear()
    emu.databricks.revoke(failed.token_id)  # the pending PAT dies
    emu.faults.add("databricks", "POST", CREATE, status=400, times=-1)
    abandoned = await world.rotate_one(seeded)  # abandons it, then cannot mint
    assert abandoned.error is not None
    assert abandoned.error.step is Step.MINT
    emu.faults.clear()
    emu.faults.add("prequel", "PATCH", f"/sources/{source}", status=503, times=-1)
    again = await world.rotate_one(seeded)  # the latest version is the abandoned one
    assert again.error is not None
    assert first.token_id not in again.revoked
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    finished = await world.rotate_one(seeded)
    assert finished.outcome is Outcome.ROTATED
    assert first.token_id in finished.revoked
    assert violations(emu, seeded) == []


async def test_a_pat_stored_twice_by_a_retried_put_is_disabled_everywhere_once_revoked(
    world: World,
) -> None:
    emu = world.emu
    seeded = world.target()
    emu.faults.add("keyvault", "PUT", f"/secrets/{seeded.secret_name}", mode="drop_after")
    first = await world.rotate_one(seeded)  # the SDK re-sends the PUT: two versions, one PAT
    assert first.outcome is Outcome.ROTATED
    holding = [
        v
        for v in emu.keyvault.versions(seeded.secret_name)
        if v.tags.get("token-id") == first.token_id
    ]
    assert len(holding) == 2
    await world.rotate_one(seeded, force=True)
    holding = [
        v
        for v in emu.keyvault.versions(seeded.secret_name)
        if v.tags.get("token-id") == first.token_id
    ]
    assert [v.enabled for v in holding] == [False, False]
    assert violations(emu, seeded) == []


async def test_a_resumed_rotation_verifies_its_pat_once(world: World) -> None:
    emu = world.emu
    seeded = world.target(consumers=())  # Key Vault only: every SCIM Me call is the rotator's
    await world.rotate_one(seeded)
    emu.requests.clear()
    assert (await world.rotate_one(seeded, force=True)).outcome is Outcome.ROTATED
    fresh = emu.requests.count("databricks", "GET", ME)
    old = emu.keyvault.latest(seeded.secret_name)
    assert old is not None
    _fault(world, seeded, Step.PROMOTE, old.version)
    failed = await world.rotate_one(seeded, force=True)
    assert failed.error is not None
    assert failed.error.step is Step.PROMOTE
    emu.faults.clear()
    emu.requests.clear()
    resumed = await world.rotate_one(seeded)
    assert resumed.outcome is Outcome.ROTATED
    assert "resumed the pending PAT of an unfinished rotation" in resumed.notes
    assert emu.requests.count("databricks", "GET", ME) == fresh == 1
