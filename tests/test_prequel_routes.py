"""Prequel's inferred routes: on a 404, the documented ``/export/`` route, end to end.

The emulator's ``documented_only`` switch answers the inferred routes 404, as a Prequel without
them would; the rotation then goes through the documented routes, remembers them, and ``doctor``
says which route each consumer uses. A 404 from every route saves nothing and revokes nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from rotation.engine import Outcome, Step
from tests.invariants import rotator_tokens
from tests.test_cli import _cli, _config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from tests.world import World


@pytest.fixture
def documented_only(world: World) -> Iterator[Emulators]:
    """Serve only Prequel's documented routes (the emulators are shared: restored after)."""
    world.emu.prequel.documented_only = True
    yield world.emu
    world.emu.prequel.documented_only = False


def _prequel(emu: Emulators, ident: str, since: int = 0) -> list[tuple[str, str, int]]:
    return [
        (r.method, r.path.replace(ident, "{id}"), r.status)
        for r in emu.requests.entries()[since:]
        if r.service == "prequel" and ident in r.path
    ]


async def test_a_source_falls_back_to_the_export_routes_and_remembers_them(
    world: World, documented_only: Emulators
) -> None:
    emu = documented_only
    seeded = world.target()
    (consumer,) = seeded.consumers
    first = await world.rotate_one(seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    (live,) = rotator_tokens(emu, seeded)
    assert emu.prequel.sources[consumer.id].access_token == live.value
    calls = _prequel(emu, consumer.id)
    assert calls[:2] == [("GET", "/sources/{id}", 404), ("GET", "/export/sources/{id}", 200)]
    assert ("PATCH", "/export/sources/{id}", 200) in calls
    assert ("POST", "/export/sources/{id}/test-connection", 200) in calls
    assert not [c for c in calls if c[0] == "PATCH" and c[2] == 404]  # never a PATCH sent twice

    since = len(emu.requests.entries())
    second = await world.rotate_one(seeded, force=True)
    assert second.outcome is Outcome.ROTATED, second.error
    again = _prequel(emu, consumer.id, since)
    assert again, "the second rotation talked to Prequel"
    assert all(path.startswith("/export/") for _, path, _ in again)  # remembered: no 404s


async def test_a_destination_tests_on_the_route_prequels_client_uses(
    world: World, documented_only: Emulators
) -> None:
    emu = documented_only
    seeded = world.target(consumers=("prequel-destination",))
    (consumer,) = seeded.consumers
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    calls = _prequel(emu, consumer.id)
    assert ("POST", "/destinations/{id}/test-connection", 404) in calls
    assert ("POST", "/export/destinations/{id}/test-connection", 200) in calls
    assert ("PATCH", "/destinations/{id}", 200) in calls  # the documented update route


async def test_a_404_on_every_route_mints_nothing_and_changes_nothing(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    seeded.table["updaters"][0]["source_id"] = "no-such-source"
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.step == Step.PREFLIGHT
    assert "404 on /sources/no-such-source (source no-such-source not found) and " in (
        report.error.message
    )
    assert "/export/sources/no-such-source (source no-such-source not found)" in (
        report.error.message
    )
    assert rotator_tokens(emu, seeded) == []


async def test_a_test_route_404_everywhere_pushes_nothing_and_revokes_nothing(
    world: World, documented_only: Emulators
) -> None:
    emu = documented_only
    seeded = world.target()
    (consumer,) = seeded.consumers
    export_test = f"/export/sources/{consumer.id}/test-connection"
    emu.faults.add("prequel", "POST", export_test, status=404, times=-1)
    try:
        report = await world.rotate_one(seeded)
    finally:
        emu.faults.clear()
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.step == Step.TEST
    assert "404 on" in report.error.message
    assert not [c for c in _prequel(emu, consumer.id) if c[0] == "PATCH"]
    human = emu.databricks.get(str(seeded.human_token_id))
    assert human is not None
    assert emu.prequel.sources[consumer.id].access_token == human.value
    assert not emu.databricks.was_revoked(str(seeded.human_token_id))


async def test_doctor_says_which_route_each_consumer_uses_and_whether_it_is_documented(
    world: World, documented_only: Emulators, tmp_path: Path
) -> None:
    emu = documented_only
    seeded = world.target()
    before = _routes(emu, tmp_path, seeded)  # no PAT in Key Vault yet: nothing to test with
    assert "read and update: /export/sources/{id} (documented" in before
    assert "after /sources/{id} answered 404" in before
    assert "connection test: not called yet; will try /sources/{id}/test-connection" in before

    assert (await world.rotate_one(seeded)).outcome is Outcome.ROTATED
    after = _routes(emu, tmp_path, seeded)
    assert "connection test: /export/sources/{id}/test-connection (documented" in after
    assert "does not document" not in after

    emu.prequel.documented_only = False
    inferred = _routes(emu, tmp_path, seeded)
    assert "read and update: /sources/{id} (inferred" in inferred
    assert "a route Prequel does not document; it works here" in inferred


def _routes(emu: Emulators, tmp_path: Path, seeded: SeededTarget) -> str:
    done = _cli(emu, tmp_path, _config(emu, seeded), "doctor", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = json.loads(done.stdout)["checks"]
    (routes,) = [
        c
        for c in checks
        if c["check"] == f"consumer {seeded.consumers[0].kind}:{seeded.consumers[0].id}: routes"
    ]
    assert routes["ok"] is True
    return str(routes["detail"])
