"""The crash matrix: every external call of a rotation x every fault, then a run without it.

For each case: a due rotation runs with the fault injected at one call, the invariants I1-I2 are
checked, the fault is removed, a second run follows, and I1-I3 must hold. The figure is printed
at the end of the session: "N of N fault cases end with I1-I4 held" (I4 is the suite-wide scan).
Nothing here sleeps on a fixed delay: a "timeout" is a stall the emulator keeps until the
rotator's client gives up (only the faulted run has a short read timeout; the others keep the
rotator's defaults), and the retry waits a ``Retry-After`` or a backoff asks for are computed as
ever but not slept (stamina's test mode; the Azure SDKs sleep through their transport).
A second part loses the lock at every call: the run is held there, its blob lease (Azurite) is
broken, a second run takes the lock and rotates, then the first goes on — it must stop at its
next step boundary (a minted PAT still stored) — and a third run must leave I1-I3 held. A third
part kills the CLI process (SIGKILL) while the emulator holds one of its calls, then
lets the server finish that call with nobody listening (a request whose body was fully read is
carried out; one the server still had to read is abandoned, as a real server would), and re-runs
the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import stamina
from azure.core.pipeline.transport import AioHttpTransport

from emulators.scenario import SeededTarget, config_table, rotator_env
from rotation.app import azure_transport
from rotation.engine import Outcome
from tests import hygiene, matrix
from tests.invariants import violations
from tests.world import World

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rotation.backends import Lock
    from rotation.engine import TargetReport

FAULTED_TIMEOUT = 0.5  # the rotator's HTTP and Azure read timeouts while a fault is planned
HEX = "[0-9a-f]{32}"


@dataclass(frozen=True)
class Call:
    """One external call of a due rotation with a previous PAT and one Prequel source."""

    label: str
    service: str
    method: str
    path: str  # a template: {pat} {cred} {key} {source} {tenant} {hex}
    occurrence: int = 0

    def regex(self, seeded: SeededTarget, tenant: str) -> str:
        names = {
            "pat": re.escape(seeded.secret_name),
            "cred": re.escape(f"{seeded.name}-sp-credential"),
            "key": re.escape(f"{seeded.name}-prequel-key"),
            "source": re.escape(seeded.consumers[0].id),
            "tenant": re.escape(tenant),
            "hex": HEX,
        }
        return self.path.format(**names)


ME = "/api/2.0/preview/scim/v2/Me"
CALLS = [
    Call("list the vault", "keyvault", "GET", "/secrets"),
    Call("read the target's state", "keyvault", "GET", "/secrets/{pat}/"),
    Call("read the SP credential", "keyvault", "GET", "/secrets/{cred}/"),
    Call("Entra token for the SP", "entra", "POST", "/{tenant}/oauth2/v2.0/token"),
    Call("list the target's versions", "keyvault", "GET", "/secrets/{pat}/versions"),
    Call("list PATs (sweep)", "databricks", "GET", "/api/2.0/token/list"),
    Call("read the Prequel API key", "keyvault", "GET", "/secrets/{key}/"),
    Call("Prequel preflight", "prequel", "GET", "/sources/{source}"),
    Call("record the intent to mint", "keyvault", "PATCH", "/secrets/{pat}/{hex}"),
    Call("mint", "databricks", "POST", "/api/2.0/token/create"),
    Call("store as pending", "keyvault", "PUT", "/secrets/{pat}"),
    Call("verify (SCIM Me)", "databricks", "GET", ME),
    Call("Prequel tests the new PAT on Databricks", "databricks", "GET", ME, 1),
    Call("Prequel test (unsaved)", "prequel", "POST", "/sources/{source}/test-connection"),
    Call("Prequel push", "prequel", "PATCH", "/sources/{source}"),
    Call("Prequel confirms on Databricks", "databricks", "GET", ME, 2),
    Call("Prequel confirm", "prequel", "POST", "/sources/{source}/test-connection", 1),
    Call("list the versions again (promote)", "keyvault", "GET", "/secrets/{pat}/versions", 1),
    Call("promote", "keyvault", "PATCH", "/secrets/{pat}/{hex}", 1),
    Call("revoke the previous PAT", "databricks", "POST", "/api/2.0/token/delete"),
    Call("mark the previous version revoked", "keyvault", "PATCH", "/secrets/{pat}/{hex}", 2),
    Call(
        "record the revoke on the current version", "keyvault", "PATCH", "/secrets/{pat}/{hex}", 3
    ),
]

ENTRA_TOKEN = "Entra token for the SP"
# A managed-identity target reads no credential and gets its token from the identity endpoint.
IDENTITY_CALLS = [
    Call("managed identity token", "identity", "GET", "/msi/token") if c.label == ENTRA_TOKEN else c
    for c in CALLS
    if c.label != "read the SP credential"
]
CASES = [("entra-client-secret", c) for c in CALLS] + [
    ("managed-identity", c) for c in IDENTITY_CALLS
]

FAULTS: dict[str, dict[str, object]] = {
    "500": {"status": 500},
    "503": {"status": 503},
    "429 Retry-After": {"status": 429, "headers": {"Retry-After": "1"}},
    "429": {"status": 429},
    "timeout": {"mode": "stall"},  # no answer until the client gives up, then dropped
    "dropped connection": {"mode": "drop"},
    "dies after success": {"mode": "drop_after"},
}


@pytest.fixture(autouse=True)
def _retry_waits_pass_at_once() -> Iterator[None]:
    """Run stamina in test mode: the policy's attempts, no waits (the CLI process is unaffected)."""
    with stamina.set_testing(True, attempts=1_000, cap=True):
        yield


class _NoWaitTransport(AioHttpTransport):
    """The Azure SDKs' shared transport, on whose `sleep` their retry policies wait: it doesn't."""

    async def sleep(self, duration: float) -> None:
        del duration
        await asyncio.sleep(0)


async def _run(
    world: World,
    seeded: SeededTarget,
    *,
    read_timeout: float | None = None,
    lock: Lock | None = None,
    force: bool = False,
    orphan_min_age_minutes: int = 0,
) -> TargetReport:
    """Rotate *seeded* once; *read_timeout* is for every call (default: the rotator's own)."""
    from rotation.app import rotate

    timeouts: dict[str, float] = {}
    sdk: dict[str, float] = {}  # the SDK clients ignore theirs on a transport they did not build
    if read_timeout:
        timeouts = {"http_timeout": read_timeout, "azure_timeout": read_timeout}
        sdk = {"read_timeout": read_timeout, "connection_timeout": read_timeout}
    async with azure_transport(str(world.emu.ca_path)) as shared:
        transport = _NoWaitTransport(session=shared.session, session_owner=False, **sdk)
        config = world.config(seeded, orphan_min_age_minutes=orphan_min_age_minutes)
        async with world.runtime(config, transport=transport, lock=lock, **timeouts) as rt:
            (report,) = await rotate(rt, force=force)
    hygiene.record_text("crash-matrix report", json.dumps(report.to_json()))
    return report


async def _due_target(world: World, kind: str = "entra-client-secret") -> SeededTarget:
    seeded = world.target(kind=kind, timing={"lifetime_days": 10, "rotate_before_days": 3})
    first = await _run(world, seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    world.emu.clock.advance(8 * 86_400)  # 2 days left: due
    return seeded


async def test_the_baseline_makes_exactly_these_calls(world: World) -> None:
    seeded = await _due_target(world)
    world.emu.requests.clear()
    report = await _run(world, seeded)
    assert report.outcome is Outcome.ROTATED
    seen: list[tuple[str, str, str]] = []
    for e in world.emu.requests.entries():
        call = (e.service, e.method, e.path)
        if call == ("keyvault", "GET", "/secrets") and seen and seen[-1] == call:
            continue  # the listing's next page: the vault holds every test's secrets
        seen.append(call)
    expected = [(c.service, c.method, c.regex(seeded, world.emu.tenant_id)) for c in CALLS]
    assert len(seen) == len(expected), seen
    for (service, method, path), (e_service, e_method, pattern) in zip(seen, expected, strict=True):
        assert (service, method) == (e_service, e_method)
        assert re.fullmatch(pattern, path), (path, pattern)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("kind", "call"), CASES, ids=[f"{k}: {c.label}" for k, c in CASES])
async def test_fault_case(world: World, kind: str, call: Call, fault: str) -> None:
    emu = world.emu
    seeded = await _due_target(world, kind)
    emu.faults.add(
        call.service,
        call.method,
        call.regex(seeded, emu.tenant_id),
        skip=call.occurrence,
        times=1,
        **FAULTS[fault],  # type: ignore[arg-type]
    )
    first = await _run(world, seeded, read_timeout=FAULTED_TIMEOUT)
    broken = [f"after the faulty run: {v}" for v in violations(emu, seeded, settled=first.ok)]
    emu.faults.clear()
    second = await _run(world, seeded)
    if not second.ok:
        broken.append(f"the run without the fault failed: {second.error}")
    broken += [f"after the second run: {v}" for v in violations(emu, seeded)]
    matrix.record(f"{kind}: {call.label} x {fault}", broken)
    assert broken == []


# --- the lock lost at every call ---------------------------------------------------------------

LEASE_CASES = [(k, c) for k, c in CASES if c.label != "list the vault"]  # the lock comes after it


@pytest.mark.parametrize(
    ("kind", "call"), LEASE_CASES, ids=[f"{k}: {c.label}" for k, c in LEASE_CASES]
)
async def test_lease_lost_case(world: World, azurite, kind: str, call: Call) -> None:  # type: ignore[no-untyped-def]
    from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

    from rotation.backends import BlobLeaseLock

    emu = world.emu
    seeded = await _due_target(world, kind)
    hold = threading.Event()
    path = call.regex(seeded, emu.tenant_id)
    fault = emu.faults.add(
        call.service, call.method, path, skip=call.occurrence, mode="hold", hold=hold
    )
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        lock = BlobLeaseLock(blobs, container="crash-matrix-locks")
        first = asyncio.create_task(_run(world, seeded, lock=lock, orphan_min_age_minutes=15))
        try:
            assert await asyncio.to_thread(fault.arrived.wait, 60), "the run never made the call"
            blob = blobs.get_blob_client("crash-matrix-locks", f"{seeded.name}.lock")
            await BlobLeaseClient(blob).break_lease(lease_break_period=0)
            # Takes the lock and rotates; the first run's PAT may be in flight: not swept.
            second = await _run(world, seeded, lock=lock, force=True, orphan_min_age_minutes=15)
        finally:
            hold.set()
        stopped = await first
        emu.faults.clear()
        broken = [] if second.ok else [f"the run holding the lock failed: {second.error}"]
        if stopped.error is not None and stopped.error.kind not in {"lock-lost", "busy"}:
            broken.append(f"the run that lost its lock failed otherwise: {stopped.error}")
        broken += [f"after both runs: {v}" for v in violations(emu, seeded, settled=False)]
        third = await _run(world, seeded, lock=lock)
    if not third.ok:
        broken.append(f"the next run failed: {third.error}")
    broken += [f"after the next run: {v}" for v in violations(emu, seeded)]
    matrix.record(f"{kind}: lease lost at {call.label}", broken)
    assert broken == []


# --- a real process kill --------------------------------------------------------------------

KILL_POINTS = {
    "mint": ("databricks", "POST", "/api/2.0/token/create", False),
    "store": ("keyvault", "PUT", "/secrets/{pat}", False),
    "push": ("prequel", "PATCH", "/sources/{source}", False),
    "promote": ("keyvault", "PATCH", "/secrets/{pat}/{hex}", False),
    "revoke": ("databricks", "POST", "/api/2.0/token/delete", True),
}


def _cli(world: World, tmp_path: Path, seeded: SeededTarget, *args: str) -> subprocess.Popen[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(config_table(world.emu, seeded)))
    env = {**os.environ, **rotator_env(world.emu, str(config))}
    env.pop("AzureWebJobsStorage", None)
    return subprocess.Popen(
        [sys.executable, "-m", "rotation", "rotate", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> int:
    out, err = proc.communicate(timeout=120)
    hygiene.record_text("cli stdout", out)
    hygiene.record_text("cli stderr", err)
    return proc.returncode


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_right_after_a_call_then_rerun(world: World, tmp_path: Path, point: str) -> None:
    emu = world.emu
    service, method, template, forced = KILL_POINTS[point]
    seeded = world.target()
    if forced:  # revoke happens only when replacing a rotator-made PAT
        assert _finish(_cli(world, tmp_path, seeded)) == 0
    path = Call(point, service, method, template).regex(seeded, emu.tenant_id)
    emu.requests.clear()  # other tests hold calls on the same routes (token/create, delete)
    fault = emu.faults.add(service, method, path, mode="hold")
    proc = _cli(world, tmp_path, seeded, *(["--force"] if forced else []))
    assert fault.held.wait(60), "the CLI never reached the call"  # sent whole, now waiting
    proc.send_signal(signal.SIGKILL)
    assert _finish(proc) == -signal.SIGKILL
    fault.release()  # the server now finishes the call with nobody waiting for its answer
    assert fault.finished.wait(30)
    (done,) = [e for e in emu.requests.find(service, method, path) if e.faulted == "hold"]
    assert 200 <= done.status < 300, done  # it was carried out: its answer was lost, not the call
    emu.faults.clear()
    broken = [f"after the kill: {v}" for v in violations(emu, seeded, settled=False)]
    assert _finish(_cli(world, tmp_path, seeded)) == 0
    broken += [f"after the re-run: {v}" for v in violations(emu, seeded)]
    matrix.record(f"SIGKILL after {point}", broken)
    assert broken == []
