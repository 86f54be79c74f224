"""The crash matrix of credential rotation: every call of a credential rotation x every fault.

Modelled on ``test_crash_matrix`` (its helpers, fault modes and figure): a target whose PAT is
in place and whose credential is due runs with the fault injected at one call, then a run
without it follows. Afterwards: Key Vault's latest proven (non-pending) version of the
credential's secret holds a credential that authenticates — after the faulty run too — and after
the next run it is the principal's only credential (no orphan, the replaced one deleted, no
intent left); the Databricks quota is never exhausted; the PAT's invariants hold throughout. A
kill (SIGKILL of the CLI) right after the create and right after the store is the last part.
"""

from __future__ import annotations

import re
import signal
import time
from typing import TYPE_CHECKING

import pytest

from rotation.engine import Outcome
from tests import matrix
from tests.invariants import violations
from tests.test_crash_matrix import (
    FAULTED_TIMEOUT,
    FAULTS,
    HEX,
    Call,
    _cli,
    _finish,
    _retry_waits_pass_at_once,  # noqa: F401 - an autouse fixture, used here too
    _run,
)
from tests.test_credential_rotation import credential_name, live_credentials, near_expiry

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.harness import Emulators
    from emulators.keyvault_state import SecretVersion
    from emulators.scenario import SeededTarget
    from tests.world import World

CRED = "/secrets/{cred}"
SECRETS = r"/api/2.0/accounts/servicePrincipals/\d+/credentials/secrets"
ENTRA_TOKEN = "/{tenant}/oauth2/v2.0/token"
SHARED = [
    Call("list the credential's versions", "keyvault", "GET", CRED + "/versions"),
    Call("read the credential", "keyvault", "GET", CRED + "/"),
]
ENTRA_CALLS = [
    *SHARED,
    Call("Entra token for Databricks", "entra", "POST", ENTRA_TOKEN),
    Call("read the current version", "keyvault", "GET", CRED + "/{hex}"),
    Call("Entra token for Graph", "entra", "POST", ENTRA_TOKEN, 1),
    Call("Graph: list the passwords", "graph", "GET", r"/v1\.0/applications\(appId='.*'\)"),
    Call("record the intent", "keyvault", "PATCH", CRED + "/{hex}"),
    Call("Graph: addPassword", "graph", "POST", r"/v1\.0/applications/.*/addPassword"),
    Call("store as pending", "keyvault", "PUT", CRED),
    Call("verify (Entra token)", "entra", "POST", ENTRA_TOKEN, 2),
    Call("promote", "keyvault", "PATCH", CRED + "/{hex}", 1),
    Call("clear the intent", "keyvault", "PATCH", CRED + "/{hex}", 2),
    Call("Graph: removePassword", "graph", "POST", r"/v1\.0/applications/.*/removePassword"),
    Call("clear credential-replaced", "keyvault", "PATCH", CRED + "/{hex}", 3),
]
OAUTH_CALLS = [
    *SHARED,
    Call("OAuth token", "databricks", "POST", "/oidc/v1/token"),
    Call("read the current version", "keyvault", "GET", CRED + "/{hex}"),
    Call("OAuth token for the proxy", "databricks", "POST", "/oidc/v1/token", 1),
    Call("look up the SP's id", "databricks", "GET", "/api/2.0/preview/scim/v2/ServicePrincipals"),
    Call("list the secrets", "databricks", "GET", SECRETS),
    Call("record the intent", "keyvault", "PATCH", CRED + "/{hex}"),
    Call("create a secret", "databricks", "POST", SECRETS),
    Call("store as pending", "keyvault", "PUT", CRED),
    Call("verify: OAuth token", "databricks", "POST", "/oidc/v1/token", 2),
    Call("verify: SCIM Me", "databricks", "GET", "/api/2.0/preview/scim/v2/Me"),
    Call("promote", "keyvault", "PATCH", CRED + "/{hex}", 1),
    Call("clear the intent", "keyvault", "PATCH", CRED + "/{hex}", 2),
    Call("delete the old secret", "databricks", "DELETE", SECRETS + "/{hex}"),
    Call("clear credential-replaced", "keyvault", "PATCH", CRED + "/{hex}", 3),
]
CALLS = {"entra-client-secret": ENTRA_CALLS, "databricks-oauth": OAUTH_CALLS}
CASES = [(kind, call) for kind, calls in CALLS.items() for call in calls]
QUOTA = 5


def _regex(call: Call, seeded: SeededTarget, tenant: str) -> str:
    names = {"cred": credential_name(seeded), "tenant": tenant, "hex": HEX}
    return call.path.format(**names)


def _proven(emu: Emulators, seeded: SeededTarget) -> SecretVersion | None:
    """Return the credential's latest proven version (what readers use)."""
    versions = [
        v
        for v in emu.keyvault.versions(credential_name(seeded))
        if v.enabled and not (v.tags.get("stage") == "pending" and v.tags.get("credential-key-id"))
    ]
    versions.sort(key=lambda v: float(v.tags.get("written-at") or v.created))
    return versions[-1] if versions else None


def credential_violations(emu: Emulators, seeded: SeededTarget, *, settled: bool) -> list[str]:
    """Return how the credential's state breaks the matrix's promises (none, ideally)."""
    broken = []
    proven = _proven(emu, seeded)
    live = live_credentials(emu, seeded)
    if proven is None or proven.value not in live.values():
        broken.append("Key Vault's latest proven credential does not authenticate")
    elif settled and proven.tags.get("stage") != "current":  # it was due: rotated by now
        broken.append("the credential was not rotated after the next run")
    if seeded.kind == "databricks-oauth" and len(live) >= QUOTA:
        broken.append(f"the quota is exhausted ({len(live)} secrets)")
    if settled and len(live) != 1:
        broken.append(f"{len(live)} live credentials after the next run (an orphan or the old one)")
    versions = emu.keyvault.versions(credential_name(seeded))
    if settled and any(v.tags.get("credential-minting") for v in versions if v.enabled):
        broken.append("an intent is left on a version")
    return broken


async def _due(world: World, kind: str) -> SeededTarget:
    seeded = near_expiry(world, kind)
    first = await _run(world, seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    return seeded


@pytest.mark.parametrize("kind", list(CALLS))
async def test_the_baseline_makes_exactly_these_calls(world: World, kind: str) -> None:
    emu = world.emu
    seeded = await _due(world, kind)
    emu.requests.clear()
    report = await _run(world, seeded)
    assert report.credential_result == "rotated", report.error
    ours = credential_name(seeded)
    seen = [
        (e.service, e.method, e.path)
        for e in emu.requests.entries()
        if e.service != "keyvault" or ours in e.path
    ]
    expected = [(c.service, c.method, _regex(c, seeded, emu.tenant_id)) for c in CALLS[kind]]
    assert len(seen) == len(expected), seen
    for (service, method, path), (e_service, e_method, pattern) in zip(seen, expected, strict=True):
        assert (service, method) == (e_service, e_method), (path, pattern)
        assert re.fullmatch(pattern, path), (path, pattern)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("kind", "call"), CASES, ids=[f"{k}: {c.label}" for k, c in CASES])
async def test_fault_case(world: World, kind: str, call: Call, fault: str) -> None:
    emu = world.emu
    seeded = await _due(world, kind)
    emu.faults.add(
        call.service,
        call.method,
        _regex(call, seeded, emu.tenant_id),
        skip=call.occurrence,
        times=1,
        **FAULTS[fault],  # type: ignore[arg-type]
    )
    await _run(world, seeded, read_timeout=FAULTED_TIMEOUT)
    broken = [
        f"after the faulty run: {v}" for v in credential_violations(emu, seeded, settled=False)
    ]
    broken += [f"after the faulty run: {v}" for v in violations(emu, seeded)]
    emu.faults.clear()
    second = await _run(world, seeded)
    if not second.ok:
        broken.append(f"the run without the fault failed: {second.error}")
    broken += [f"after the next run: {v}" for v in credential_violations(emu, seeded, settled=True)]
    broken += [f"after the next run: {v}" for v in violations(emu, seeded)]
    matrix.record(f"credential {kind}: {call.label} x {fault}", broken)
    assert broken == []


KILL_POINTS = {"create": ("Graph: addPassword", "create a secret"), "store": ("store as pending",)}


def _kill_call(kind: str, point: str) -> Call:
    return next(c for c in CALLS[kind] if c.label in KILL_POINTS[point])


@pytest.mark.parametrize("point", list(KILL_POINTS))
@pytest.mark.parametrize("kind", list(CALLS))
def test_sigkill_right_after_a_call_then_rerun(
    world: World, tmp_path: Path, real_time: None, kind: str, point: str
) -> None:
    """The CLI runs on the machine's clock: so do the emulators here (others move theirs on)."""
    emu = world.emu
    seeded = near_expiry(world, kind)  # the CLI runs on the real clock: bootstrapped by it too
    real_exp = int(time.time() + 20 * 86_400)
    emu.keyvault.update(credential_name(seeded), None, {"exp": real_exp})
    assert _finish(_cli(world, tmp_path, seeded)) == 0
    call = _kill_call(kind, point)
    path = _regex(call, seeded, emu.tenant_id)
    fault = emu.faults.add(call.service, call.method, path, mode="hold")
    proc = _cli(world, tmp_path, seeded)
    assert fault.held.wait(60), "the CLI never reached the call"
    proc.send_signal(signal.SIGKILL)
    assert _finish(proc) == -signal.SIGKILL
    fault.release()  # the server finishes the call with nobody waiting for its answer
    assert fault.finished.wait(30)
    emu.faults.clear()
    if point == "create":  # made, its answer lost with the process: an orphan to sweep
        assert len(live_credentials(emu, seeded)) == 2
    broken = [f"after the kill: {v}" for v in credential_violations(emu, seeded, settled=False)]
    assert _finish(_cli(world, tmp_path, seeded)) == 0
    broken += [f"after the re-run: {v}" for v in credential_violations(emu, seeded, settled=True)]
    broken += [f"after the re-run: {v}" for v in violations(emu, seeded)]
    matrix.record(f"credential {kind}: SIGKILL after {point}", broken)
    assert broken == []
