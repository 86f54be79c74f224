"""The crash matrix for the GitHub Actions secret and webhook consumers: each of their calls x
each fault mode of ``tests/test_crash_matrix.py``, then a run without the fault.

As there: a due rotation runs with the fault at one call, I1-I2 are checked, the fault is removed,
a second run follows, and I1-I3 must hold; every case counts in the session's figure. Also: a
consumer that confirmed the new PAT is never left holding a revoked one. The calls of the target
itself (Key Vault, Entra, Databricks) are the main matrix's; here only the consumers' calls,
including the receiver's own tries of a PAT on Databricks.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from rotation.engine import Outcome
from tests import matrix
from tests.invariants import held_pat, violations
from tests.test_crash_matrix import (  # the matrix's own helpers and fault modes
    FAULTED_TIMEOUT,
    FAULTS,
    _cli,
    _finish,
    _retry_waits_pass_at_once,  # noqa: F401 — an autouse fixture: no waits, the policy's attempts
    _run,
)

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.scenario import ConsumerKind, SeededTarget
    from rotation.engine import TargetReport
    from tests.world import World

ME = "/api/2.0/preview/scim/v2/Me"


@dataclass(frozen=True)
class Call:
    """One call a due rotation makes for its consumer; templates: {repo} {hook} {target}."""

    label: str
    service: str
    method: str
    path: str
    occurrence: int = 0

    def regex(self, seeded: SeededTarget) -> str:
        return self.path.format(
            repo=re.escape(f"{seeded.name}-repo"),
            hook=re.escape(seeded.name),
            target=re.escape(seeded.name),
        )


SECRETS = "/repos/octo-org/{repo}/actions/secrets"
GITHUB_CALLS = [
    Call("read the GitHub token", "keyvault", "GET", "/secrets/{target}-github-token/"),
    Call("GitHub preflight: public key", "github", "GET", SECRETS + "/public-key"),
    Call("GitHub preflight: the secret", "github", "GET", SECRETS + "/DATABRICKS_TOKEN"),
    Call("GitHub push: the secret before", "github", "GET", SECRETS + "/DATABRICKS_TOKEN", 1),
    Call("GitHub push: public key", "github", "GET", SECRETS + "/public-key", 1),
    Call("GitHub push: PUT the sealed PAT", "github", "PUT", SECRETS + "/DATABRICKS_TOKEN"),
    Call("GitHub confirm: updated_at", "github", "GET", SECRETS + "/DATABRICKS_TOKEN", 2),
]
WEBHOOK_CALLS = [
    Call("read the signing secret", "keyvault", "GET", "/secrets/{target}-webhook-secret/"),
    Call("webhook preflight: pat.test (made-up)", "webhook", "POST", "/hooks/{hook}"),
    Call("receiver tries the made-up PAT", "databricks", "GET", ME),
    Call("webhook test: pat.test (new PAT)", "webhook", "POST", "/hooks/{hook}", 1),
    Call("receiver tries the new PAT", "databricks", "GET", ME, 2),
    Call("webhook push: pat.rotated", "webhook", "POST", "/hooks/{hook}", 2),
]
CASES: list[tuple[ConsumerKind, Call]] = [("github-actions-secret", c) for c in GITHUB_CALLS] + [
    ("webhook", c) for c in WEBHOOK_CALLS
]
SERVICES = {"github-actions-secret": "github", "webhook": "webhook"}


async def _due_target(world: World, consumer: ConsumerKind) -> SeededTarget:
    timing = {"lifetime_days": 10, "rotate_before_days": 3}
    seeded = world.target(consumers=(consumer,), timing=timing)
    first = await _run(world, seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    world.emu.clock.advance(8 * 86_400)  # 2 days left: due
    return seeded


def _confirmed_but_revoked(world: World, seeded: SeededTarget, report: TargetReport) -> list[str]:
    """A consumer that confirmed holds a live PAT (whatever the run did after)."""
    found: list[str] = []
    if not report.consumers:  # a run that had nothing to do (not due) touched no consumer
        return found
    for consumer, result in zip(seeded.consumers, report.consumers, strict=True):
        held = held_pat(world.emu, consumer.kind, consumer.id)
        if result.confirmed and not world.emu.databricks.is_live(held):
            found.append(f"{consumer.kind} confirmed, then its PAT was revoked")
    return found


def _holds_the_targets_pat(world: World, seeded: SeededTarget, when: str) -> list[str]:
    """The one consumer holds the PAT the target's secret holds (after a run that succeeded)."""
    (consumer,) = seeded.consumers
    latest = world.emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    if held_pat(world.emu, consumer.kind, consumer.id) != latest.value:
        return [f"{when}: the consumer does not hold the target's PAT"]
    return []


@pytest.mark.parametrize("consumer", list(SERVICES))
async def test_the_baseline_makes_exactly_these_consumer_calls(
    world: World, consumer: ConsumerKind
) -> None:
    seeded = await _due_target(world, consumer)
    calls = GITHUB_CALLS if consumer == "github-actions-secret" else WEBHOOK_CALLS
    world.emu.requests.clear()
    report = await _run(world, seeded)
    assert report.outcome is Outcome.ROTATED
    own = [c for c in calls if c.service != "databricks"]  # the receiver's tries: counted below
    patterns = [(c.service, c.method, re.compile(c.regex(seeded))) for c in own]
    seen = [
        (e.service, e.method, e.path)
        for e in world.emu.requests.entries()
        if any(s == e.service and m == e.method and p.fullmatch(e.path) for s, m, p in patterns)
    ]
    assert len(seen) == len(patterns), seen
    for (service, method, path), (e_service, e_method, pattern) in zip(seen, patterns, strict=True):
        assert (service, method) == (e_service, e_method)
        assert pattern.fullmatch(path), (path, pattern)
    tries = 2 if consumer == "webhook" else 0  # the receiver's, beside the rotator's own verify
    assert world.emu.requests.count("databricks", "GET", ME) == 1 + tries


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("consumer", "call"), CASES, ids=[f"{k}: {c.label}" for k, c in CASES])
async def test_fault_case(world: World, consumer: ConsumerKind, call: Call, fault: str) -> None:
    emu = world.emu
    seeded = await _due_target(world, consumer)
    emu.faults.add(
        call.service,
        call.method,
        call.regex(seeded),
        skip=call.occurrence,
        times=1,
        **FAULTS[fault],  # type: ignore[arg-type]
    )
    first = await _run(world, seeded, read_timeout=FAULTED_TIMEOUT)
    broken = [f"after the faulty run: {v}" for v in violations(emu, seeded, settled=first.ok)]
    broken += _confirmed_but_revoked(world, seeded, first)
    emu.faults.clear()
    second = await _run(world, seeded)
    if not second.ok:
        broken.append(f"the run without the fault failed: {second.error}")
    broken += [f"after the second run: {v}" for v in violations(emu, seeded)]
    broken += _confirmed_but_revoked(world, seeded, second)
    if second.ok:
        broken += _holds_the_targets_pat(world, seeded, "after the second run")
    matrix.record(f"{consumer}: {call.label} x {fault}", broken)
    assert broken == []


# --- a real process kill while the consumer carries out the push ------------------------------

KILL_POINTS: dict[str, tuple[ConsumerKind, Call]] = {
    "GitHub PUT": ("github-actions-secret", GITHUB_CALLS[5]),
    "GitHub confirm": ("github-actions-secret", GITHUB_CALLS[6]),
    "webhook pat.rotated": ("webhook", WEBHOOK_CALLS[5]),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_a_consumer_call_then_rerun(
    world: World, tmp_path: Path, real_time: None, point: str
) -> None:
    emu = world.emu
    consumer, call = KILL_POINTS[point]
    seeded = world.target(consumers=(consumer,))
    assert _finish(_cli(world, tmp_path, seeded)) == 0  # a rotator PAT to replace
    path = call.regex(seeded)
    fault = emu.faults.add(call.service, call.method, path, mode="hold", skip=call.occurrence)
    proc = _cli(world, tmp_path, seeded, "--force")
    assert fault.held.wait(60), "the CLI never reached the call"
    proc.send_signal(signal.SIGKILL)
    assert _finish(proc) == -signal.SIGKILL
    fault.release()  # the server carries the call out with nobody waiting for its answer
    assert fault.finished.wait(30)
    emu.faults.clear()
    broken = [f"after the kill: {v}" for v in violations(emu, seeded, settled=False)]
    assert _finish(_cli(world, tmp_path, seeded)) == 0
    broken += [f"after the re-run: {v}" for v in violations(emu, seeded)]
    broken += _holds_the_targets_pat(world, seeded, "after the re-run")
    matrix.record(f"SIGKILL at {point}", broken)
    assert broken == []
