"""The long-horizon simulation (``tests/simulation.py``): the short form, and checks that can fail.

CI runs ``SIMULATION_DAYS`` (default 60) simulated days; ``SIMULATION_DAYS=730`` is the full form
(or ``scripts/simulate.py --days 730``). ``SIMULATION_SEED`` replays a schedule; the seed is in the
printed line. The self-tests below break the rotator on purpose (monkeypatched for one short
run) and require the simulation to say so: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from rotation.app import NEAR_EXPIRY, needing_work
from rotation.engine import checks, finishing, revoking, run, run_target
from tests import hygiene, simulation
from tests.simulation import CRASH_POINTS, Crash, Settings, simulate

if TYPE_CHECKING:
    from rotation.app import KeyVaultEvent
    from rotation.config import Target
    from rotation.engine import Runtime, TargetReport
    from tests.simulation import Simulation

SHORT = Settings(days=2, per_kind=1, random_events=False)
"""A self-test's world: one target of each kind, two days, only the events the test schedules."""


async def test_the_long_horizon_simulation_holds_every_invariant() -> None:
    settings = Settings.from_env()
    result = await simulate(settings, watch=lambda emu: hygiene.watch(emu.secrets))
    simulation.record(result)
    hygiene.record_text("simulation", "\n".join([result.line(), *result.details()]))
    story = "\n".join([result.line(), *result.details(), *result.violations[:40]])
    assert result.violations == [], story
    assert result.targets == 3 * settings.per_kind, story
    assert result.worst_heal <= settings.heal_bound, story
    assert result.scanned > 0 < result.secrets, story
    assert result.revocations > 0 < result.bystanders, story  # I6 judged real revocations
    if settings.health_check_hours > settings.timer_hours:  # with checks every run none is idle
        assert result.idle_ticks >= 3, story  # each one asserted to cost one paged vault listing
    if settings.days < 60:  # shorter runs need not see every kind of event
        return
    for kind in (
        "admin revoked the current PAT",
        "admin revoked the previous PAT",
        "CAN_USE removed and restored",
        *(f"{service} outage" for service in simulation.OUTAGE_EVERY_DAYS),
        "keyvault outage",
        "credential replaced",
        simulation.PAUSED,
        "revoked after 90 days unused",  # the bootstrap-idle PATs die within the first 10 days
        "another deployment minted",
        "tag edit: token-id",
        "tag edit: previous-token-id",
        "tag edit: stage",
        "tag edit: forged-pending",
        "lock lost mid-run",
        simulation.RIGHTS_OFF,
        simulation.TENANT_POLICY,
    ):
        assert result.outside[kind] > 0, (kind, story)
    assert sum(v for k, v in result.outside.items() if k.startswith("crash")) > 0, story
    for trigger in ("timer run", "timer fan-out", "manual rotation", "dry run"):
        assert result.triggers[trigger] > 0, (trigger, story)
    assert result.triggers["Key Vault event delivery"] > 0, story
    assert result.heals > 0, story
    assert result.credentials["rotated"] > 0, story  # no credential replaced by a person


def _revoke_current(sim: Simulation) -> None:
    sim.at(0.1, "admin-revoke", t=0, which="current")


async def test_a_rotator_whose_health_check_finds_nothing_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def blind(state: run.Run) -> None:
        del state

    monkeypatch.setattr(checks, "check_health", blind)
    result = await simulate(SHORT, script=_revoke_current)
    assert any("not healed within 24 h" in v for v in result.violations), result.violations
    assert any("no failed run says so" in v for v in result.violations), result.violations


async def test_a_rotator_that_revokes_what_consumers_still_hold_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def skip(state: run.Run) -> None:
        del state

    def script(sim: Simulation) -> None:  # broken after the bootstrap pushed the first PAT
        monkeypatch.setattr(finishing, "push_and_confirm", skip)
        sim.at(0.1, "manual", t=0, dry_run=False)

    result = await simulate(SHORT, script=script)
    assert any("that no outside event killed" in v for v in result.violations), result.violations


async def test_a_pat_in_a_log_record_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    take = run.Run.take

    def leaky(self: run.Run, state: object, pat: object) -> None:
        # A warning: always emitted, whatever level another test left the logger at.
        logging.getLogger("rotation").warning("holding %s", pat.reveal())  # type: ignore[attr-defined]
        take(self, state, pat)  # type: ignore[arg-type]

    def script(sim: Simulation) -> None:
        monkeypatch.setattr(run.Run, "take", leaky)
        sim.at(0.1, "manual", t=0, dry_run=False)

    result = await simulate(SHORT, script=script)
    assert any(v.endswith("I4: log rotation: contains an issued secret") for v in result.violations)


async def test_an_orphan_left_by_a_crash_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def find_nothing(*args: object, **kwargs: object) -> list[object]:
        del args, kwargs
        return []

    monkeypatch.setattr(checks, "orphans", find_nothing)
    mint = next(p for p in CRASH_POINTS if p.label == "mint")
    crash = Crash(mint, "killed after the call", 0)  # the PAT is made, its value lost

    def script(sim: Simulation) -> None:
        entra = next(t.index for t in sim.tracked if t.seeded.kind == "entra-client-secret")
        sim.at(0.1, "crash", t=entra, crash=crash)

    result = await simulate(SHORT, script=script)
    assert any("I3: live rotator PATs no version references" in v for v in result.violations)


async def test_a_rotator_that_revokes_on_a_tags_word_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def believe_the_tags(token_id: str, evidence: object, purpose: str) -> object:
        del evidence, purpose
        return token_id  # the release's rule: a tag naming a token is reason enough

    monkeypatch.setattr(revoking, "judge", believe_the_tags)

    def script(sim: Simulation) -> None:
        obo = next(t.index for t in sim.tracked if t.seeded.kind == "databricks-obo")
        sim.at(0.1, "manual", t=obo, dry_run=False)  # a current version with a PAT to replace
        sim.at(0.2, "tag-edit", t=obo, what="previous-token-id")

    result = await simulate(SHORT, script=script)
    assert any(v.split(": ", 1)[1].startswith("I6: PAT") for v in result.violations), (
        result.violations
    )


async def test_an_idle_tick_that_costs_more_than_a_listing_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def chatty(rt: Runtime) -> object:
        await rt.store.versions(rt.config.targets[0].secret_name)
        return await needing_work(rt)

    monkeypatch.setattr(simulation, "needing_work", chatty)
    result = await simulate(SHORT)
    assert any("an idle tick made" in v for v in result.violations), result.violations


async def test_a_dry_run_that_writes_and_a_stale_event_that_rotates_are_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def wet(rt: Runtime, target: Target, **kwargs: bool) -> TargetReport:
        return await run_target(rt, target, force=True)  # the dry run rotates

    async def eager(rt: Runtime, event: KeyVaultEvent) -> str:
        target = next(t for t in rt.config.targets if t.secret_name == event.secret_name)
        report = await run_target(rt, target, force=True)  # whatever version the event names
        return f"event {event.event_type} for {target.name}: {report.outcome.value}"

    monkeypatch.setattr(simulation, "run_target", wet)
    monkeypatch.setattr(simulation, "_on_expiry", eager)

    def script(sim: Simulation) -> None:
        sim.at(0.1, "manual", t=0, dry_run=True)  # a second version: the first is now stale
        sim.at(0.2, "kv-event", t=0, flavor="older", type=NEAR_EXPIRY, duplicate=False)

    result = await simulate(SHORT, script=script)
    assert any("a dry run of" in v for v in result.violations), result.violations
    assert any("an event naming a replaced version" in v for v in result.violations)
