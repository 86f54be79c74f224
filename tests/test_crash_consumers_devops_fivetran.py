"""The crash matrix for the Azure DevOps and Fivetran consumers: each of their calls x each fault.

As in ``tests/test_crash_matrix.py`` (whose runner, faults and timeouts this reuses): a due
rotation runs with the fault injected at one call of the consumer, I1-I2 are checked, the fault
is removed, a second run follows, and I1-I3 must hold; each case counts in the printed figure.
I1 here is "the consumer holds a PAT Databricks accepts": a consumer that confirmed is never left
with a revoked PAT. One more family: Fivetran's setup test fails (so the previous PAT is put
back) and the put-back itself meets each fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from rotation.engine import Outcome
from tests import matrix
from tests.invariants import held_pat, violations
from tests.test_crash_matrix import (  # noqa: F401 - the autouse fixture applies here too
    FAULTED_TIMEOUT,
    FAULTS,
    HEX,
    _retry_waits_pass_at_once,
    _run,
)

if TYPE_CHECKING:
    from emulators.scenario import SeededTarget
    from tests.world import World

DEVOPS, FIVETRAN = "azure-devops-variable-group", "fivetran-destination"
ME = "/api/2.0/preview/scim/v2/Me"


@dataclass(frozen=True)
class Call:
    """One call a due rotation makes for its one consumer (``occurrence``: which match)."""

    label: str
    service: str
    method: str
    path: str  # a template: {name} {tenant} {id} {hex}
    occurrence: int = 0

    def regex(self, seeded: SeededTarget, tenant: str) -> str:
        names = {
            "name": re.escape(seeded.name),
            "tenant": re.escape(tenant),
            "id": re.escape(seeded.consumers[0].id),
            "hex": HEX,
        }
        return self.path.format(**names)


GROUP = "/contoso/data/_apis/distributedtask/variablegroups/{id}"
DESTINATION = "/v1/destinations/{id}"
CALLS = {
    DEVOPS: [
        Call(
            "read the DevOps client secret", "keyvault", "GET", "/secrets/{name}-devops-credential/"
        ),
        Call("Entra token for DevOps", "entra", "POST", "/{tenant}/oauth2/v2.0/token", 1),
        Call("DevOps preflight read", "devops", "GET", GROUP),
        Call("DevOps read before the write", "devops", "GET", GROUP, 1),
        Call("DevOps write", "devops", "PUT", "/contoso/_apis/distributedtask/variablegroups/{id}"),
        Call("DevOps confirm read", "devops", "GET", GROUP, 2),
    ],
    FIVETRAN: [
        Call("read the Fivetran API key", "keyvault", "GET", "/secrets/{name}-fivetran-key/"),
        Call("read the Fivetran API secret", "keyvault", "GET", "/secrets/{name}-fivetran-secret/"),
        Call("Fivetran preflight", "fivetran", "GET", DESTINATION),
        Call("Fivetran save", "fivetran", "PATCH", DESTINATION),
        Call("Fivetran's setup test on Databricks", "databricks", "GET", ME, 1),
        Call("Fivetran setup test", "fivetran", "POST", DESTINATION + "/test"),
    ],
}
CASES = [(kind, call) for kind, calls in CALLS.items() for call in calls]


async def _due(world: World, kind: str) -> SeededTarget:
    seeded = world.target(consumers=(kind,), timing={"lifetime_days": 10, "rotate_before_days": 3})
    first = await _run(world, seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    world.emu.clock.advance(8 * 86_400)  # 2 days left: due
    return seeded


async def _second_run(world: World, seeded: SeededTarget, broken: list[str]) -> None:
    """Remove the faults, run again: it must succeed and leave I1-I3 held."""
    world.emu.faults.clear()
    second = await _run(world, seeded)
    if not second.ok:
        broken.append(f"the run without the fault failed: {second.error}")
    broken += [f"after the second run: {v}" for v in violations(world.emu, seeded)]


@pytest.mark.parametrize("kind", list(CALLS))
async def test_each_call_of_the_matrix_is_made_by_a_due_rotation(world: World, kind: str) -> None:
    """The matrix's list matches what a due rotation does (else a case would fault nothing)."""
    seeded = await _due(world, kind)
    world.emu.requests.clear()
    assert (await _run(world, seeded)).outcome is Outcome.ROTATED
    entries = world.emu.requests.entries()
    for call in CALLS[kind]:
        pattern = call.regex(seeded, world.emu.tenant_id)
        seen = [
            e
            for e in entries
            if (e.service, e.method) == (call.service, call.method)
            and re.fullmatch(pattern, e.path)
        ]
        assert len(seen) > call.occurrence, (call, [e.path for e in seen])


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("kind", "call"), CASES, ids=[f"{k}: {c.label}" for k, c in CASES])
async def test_fault_case(world: World, kind: str, call: Call, fault: str) -> None:
    emu = world.emu
    seeded = await _due(world, kind)
    planned = emu.faults.add(
        call.service,
        call.method,
        call.regex(seeded, emu.tenant_id),
        skip=call.occurrence,
        times=1,
        **FAULTS[fault],  # type: ignore[arg-type]
    )
    first = await _run(world, seeded, read_timeout=FAULTED_TIMEOUT)
    broken = [] if planned.hits == 1 else [f"the fault applied {planned.hits} times, not once"]
    broken += [f"after the faulty run: {v}" for v in violations(emu, seeded, settled=first.ok)]
    await _second_run(world, seeded, broken)
    matrix.record(f"{kind}: {call.label} x {fault}", broken)
    assert broken == []


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_putting_the_previous_pat_back_meets_a_fault(world: World, fault: str) -> None:
    """The setup test fails, then the PATCH that puts the previous PAT back meets *fault*."""
    emu = world.emu
    seeded = await _due(world, FIVETRAN)
    previous = held_pat(emu, FIVETRAN, seeded.consumers[0].id)
    save = Call("save", "fivetran", "PATCH", DESTINATION).regex(seeded, emu.tenant_id)
    emu.faults.add("databricks", "GET", ME, skip=1, times=1, status=401)  # 0: the rotator's verify
    put_back = emu.faults.add("fivetran", "PATCH", save, skip=1, times=1, **FAULTS[fault])  # type: ignore[arg-type]
    first = await _run(world, seeded, read_timeout=FAULTED_TIMEOUT)
    broken = [] if not first.ok else ["the run whose setup test failed succeeded"]
    if put_back.hits != 1:
        broken.append(f"the put-back's fault applied {put_back.hits} times, not once")
    held = held_pat(emu, FIVETRAN, seeded.consumers[0].id)
    if first.consumers[0].restored and held != previous:
        broken.append("reported restored, but the destination does not hold the previous PAT")
    broken += [f"after the faulty run: {v}" for v in violations(emu, seeded, settled=False)]
    await _second_run(world, seeded, broken)
    matrix.record(f"{FIVETRAN}: put the previous PAT back x {fault}", broken)
    assert broken == []
