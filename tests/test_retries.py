"""Retries: bounded, honouring Retry-After, idempotent calls only; token/create never blindly."""

from __future__ import annotations

from rotation.backends import RetryPolicy
from rotation.engine import Outcome, Step
from tests.invariants import rotator_tokens, violations
from tests.world import World

LIST = "/api/2.0/token/list"
CREATE = "/api/2.0/token/create"


def _calls(world: World, path: str) -> int:
    return world.emu.requests.count("databricks", path=path)


async def _rotate(world: World, seeded, retry: RetryPolicy | None = None):  # type: ignore[no-untyped-def]
    from rotation.app import rotate

    kw = {"retry": retry} if retry else {}
    async with world.runtime(world.config(seeded), **kw) as rt:
        (report,) = await rotate(rt, force=True)
    return report


async def test_retry_after_is_honoured_on_an_idempotent_call(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    world.emu.faults.add("databricks", "GET", LIST, status=429, headers={"Retry-After": "0"})
    report = await _rotate(world, seeded)
    assert report.outcome is Outcome.ROTATED
    assert _calls(world, LIST) == 2


async def test_a_retry_after_beyond_the_cap_fails_the_run_instead_of_waiting(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    world.emu.faults.add("databricks", "GET", LIST, status=429, headers={"Retry-After": "3600"})
    report = await _rotate(world, seeded)
    assert report.error is not None
    assert report.error.transient
    assert _calls(world, LIST) == 1


async def test_retries_are_bounded(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    world.emu.faults.add("databricks", "GET", LIST, status=503, times=-1)
    policy = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)
    report = await _rotate(world, seeded, policy)
    assert report.error is not None
    assert _calls(world, LIST) == 3


async def test_create_is_not_retried_after_a_5xx(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    world.emu.faults.add("databricks", "POST", CREATE, status=503)
    report = await _rotate(world, seeded)
    assert report.error is not None
    assert report.error.step is Step.MINT
    assert _calls(world, CREATE) == 1


async def test_create_is_retried_after_429_which_surely_did_nothing(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    world.emu.faults.add("databricks", "POST", CREATE, status=429)
    report = await _rotate(world, seeded)
    assert report.outcome is Outcome.ROTATED
    assert _calls(world, CREATE) == 2
    assert len(rotator_tokens(world.emu, seeded)) == 1
    assert violations(world.emu, seeded) == []


async def test_prequel_push_is_retried_it_is_idempotent(world: World) -> None:
    seeded = world.target()
    world.emu.requests.clear()
    source = seeded.consumers[0].id
    world.emu.faults.add("prequel", "PATCH", f"/sources/{source}", mode="drop_after")
    report = await _rotate(world, seeded)
    assert report.outcome is Outcome.ROTATED
    assert world.emu.requests.count("prequel", "PATCH", f"/sources/{source}") == 2


async def test_a_create_answer_without_a_token_is_reconciled_not_crashed(world: World) -> None:
    seeded = world.target()
    world.emu.faults.add("databricks", "POST", CREATE, status=200, body={"token_info": "?"})
    report = await _rotate(world, seeded)
    assert report.error is not None
    assert report.error.step is Step.MINT
    assert "without a usable token" in report.error.message
    assert violations(world.emu, seeded, settled=False) == []
