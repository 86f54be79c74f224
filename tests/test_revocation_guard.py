"""Destroy only on proof (I6): the records lie, and nothing that is not ours is ever revoked.

Each case is one way the rotator's own bookkeeping can be wrong — a second deployment in the same
workspace, an edited tag, a forged version, a lost lease, no lock at all — driven through the
Function App (and Azurite for the lock) or the real CLI against the emulators. Every case failed
on the release before the revocation guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import sys
import threading
from typing import TYPE_CHECKING

import filelock
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from emulators.scenario import config_table
from rotation.state import comment_for, deployment_of
from tests import hygiene
from tests.functions import post, tick
from tests.invariants import rotator_tokens, violations
from tests.test_cli import cli_env

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from tests.world import World

CREATE = "/api/2.0/token/create"


def _tag(emu: Emulators, seeded: SeededTarget, **changes: str) -> None:
    """Edit the latest version's tags by hand, as a person (or a bad restore) would."""
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    tags = {**latest.tags, **{k.replace("_", "-"): v for k, v in changes.items()}}
    emu.keyvault.update(seeded.secret_name, latest.version, {"tags": tags})


def _persons_pat(emu: Emulators, user: str) -> tuple[str, str]:
    """Return (token id, value) of a PAT a person (a workspace user) made for themselves."""
    value = emu.databricks.add_admin_user(user)
    token = next(t for t in emu.databricks.all_tokens() if t.value == value)
    return token.token_id, value


def _alive(emu: Emulators, token_id: str | None) -> bool:
    token = emu.databricks.get(token_id or "")
    return token is not None and emu.databricks.is_live(token.value)


# --- a second deployment in the same workspace ----------------------------------------------


async def test_a_second_deployment_with_the_same_target_name_keeps_its_pat(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    ours = world.target(kind="databricks-obo")
    theirs = world.target(kind="databricks-obo")
    theirs.table["name"] = ours.name  # staging beside prod: the same name, its own secret
    theirs_view = dataclasses.replace(theirs, name=ours.name)
    app(theirs)
    assert (await post(ours.name, b'{"force": true}')).status == 200
    their_pat = emu.keyvault.latest(theirs.secret_name)
    assert their_pat is not None
    app(ours)
    for _ in range(2):
        answer = await post(ours.name, b'{"force": true}')
        assert answer.status == 200, answer.body
        assert answer.body["swept"] == []
    assert emu.databricks.is_live(their_pat.value)
    assert violations(emu, theirs_view, settled=False) == []
    assert violations(emu, ours) == []


async def test_another_deployments_pat_with_a_recorded_rotation_id_is_refused(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    assert (await post(seeded.name)).status == 200
    foreign = emu.databricks.mint(
        seeded.application_id,
        86_400,
        f"pat-rotator target={seeded.name} rotation=feedfacefeedface vault=other.vault.azure.net",
    )
    _tag(emu, seeded, minting="feedfacefeedface")  # even if our vault recorded its rotation id
    answer = await post(seeded.name, b'{"force": true}')
    assert answer.status == 200, answer.body
    assert foreign.token_id not in answer.body["swept"]
    assert emu.databricks.is_live(foreign.value)


# --- edited tags ------------------------------------------------------------------------------


async def test_previous_token_id_edited_to_a_persons_pat_is_refused_loudly(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target(kind="databricks-obo", timing={"grace_period_hours": 1})
    app(seeded)
    assert (await post(seeded.name)).status == 200
    assert (await post(seeded.name, b'{"force": true}')).status == 200
    person_id, person_value = _persons_pat(emu, f"person-{seeded.name}@example.com")
    # ... and the grace period is over: the run revokes "the previous PAT".
    _tag(emu, seeded, previous_token_id=person_id, revoke_previous_at="1")
    answer = await post(seeded.name)
    assert answer.status == 502, answer.body["reason"]
    assert answer.body["error"]["kind"] == "revocation-refused"
    assert person_id in answer.body["error"]["message"]
    assert emu.databricks.is_live(person_value)


async def test_a_current_token_id_naming_another_live_pat_destroys_nothing_then_heals(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    first = await post(seeded.name)
    assert first.status == 200
    real = first.body["token_id"]
    other = seeded.human_token_id  # another live PAT of the same principal
    _tag(emu, seeded, token_id=other or "")
    source = f"/sources/{seeded.consumers[0].id}"
    emu.faults.add("prequel", "GET", source, status=503, times=-1)  # Prequel is down
    failed = await post(seeded.name, b'{"force": true}')
    assert failed.status == 502
    assert failed.body["revoked"] == failed.body["swept"] == []
    assert _alive(emu, real)
    assert _alive(emu, other)
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    _tag(emu, seeded, health_checked_at="1")  # the next timer run's health check sees the lie
    await tick()
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert latest.tags["stage"] == "current"
    assert latest.tags["token-id"] not in {real, other}
    assert _alive(emu, other)  # never revoked: not ours
    assert _alive(emu, real)  # nothing destroyed in the mismatch run itself
    await tick()  # the next run sweeps the PAT the untrusted version held, with proof
    assert not _alive(emu, real)
    assert _alive(emu, other)
    assert violations(emu, seeded) == []


async def test_a_forged_pending_version_holding_a_persons_pat_is_not_abandoned(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target(kind="databricks-obo")
    app(seeded)
    assert (await post(seeded.name)).status == 200
    person_id, person_value = _persons_pat(emu, f"forger-{seeded.name}@example.com")
    emu.keyvault.set_secret(
        seeded.secret_name,
        person_value,
        tags={
            "managed-by": "pat-rotator",
            "target": seeded.name,
            "stage": "pending",
            "token-id": person_id,
            "rotation-id": "0000000000000000",
            "written-at": f"{emu.clock.now() - 1:.6f}",
        },
    )
    answer = await post(seeded.name)
    assert answer.status == 200, answer.body
    assert answer.body["outcome"] == "mismatch"
    assert person_id not in answer.body["revoked"]
    assert emu.databricks.is_live(person_value)
    assert violations(emu, seeded, settled=False) == []


async def test_an_unknown_stage_is_a_mismatch_not_an_unmanaged_secret(world: World, app) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    assert (await post(seeded.name)).status == 200
    _tag(emu, seeded, stage="curent")
    answer = await post(seeded.name)
    assert answer.status == 200, answer.body
    assert answer.body["outcome"] == "mismatch"
    assert answer.body["revoked"] == []
    assert violations(emu, seeded, settled=False) == []


# --- a lost lease -----------------------------------------------------------------------------


async def test_after_a_lost_lease_promotion_revokes_what_is_current_then(
    world: World, app, azurite
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    assert (await post(seeded.name)).status == 200
    hold = threading.Event()
    fault = emu.faults.add("databricks", "POST", CREATE, mode="hold", hold=hold)
    slow = asyncio.create_task(post(seeded.name, b'{"force": true}'))
    assert await asyncio.to_thread(fault.arrived.wait, 30)
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        blob = blobs.get_blob_client("pat-rotator-locks", f"{seeded.name}.lock")
        await BlobLeaseClient(blob).break_lease(lease_break_period=0)
    second = await post(seeded.name, b'{"force": true}')
    assert second.status == 200, second.body
    hold.set()
    stopped = await slow
    # It stored its PAT as pending (its value must not be lost), then stopped.
    assert stopped.body["error"]["kind"] == "lock-lost"
    resumed = await post(seeded.name, b'{"force": true}')
    assert resumed.status == 200, resumed.body
    assert resumed.body["token_id"] == stopped.body["token_id"]
    assert second.body["token_id"] in resumed.body["revoked"]  # what was current at promotion
    assert len(rotator_tokens(emu, seeded)) == 1
    assert violations(emu, seeded) == []


# --- no lock at all ---------------------------------------------------------------------------


async def test_the_function_app_refuses_to_rotate_without_its_storage(world: World, app) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded, storage=False)
    creates = emu.requests.count("databricks", "POST", CREATE)
    refused = await post(seeded.name, b'{"force": true}')
    assert refused.status == 503
    assert "AzureWebJobsStorage" in refused.body["error"]
    dry = await post(seeded.name, b'{"dry_run": true}')
    assert dry.status == 200  # a dry run writes nothing: no lock needed
    try:
        await tick()
    except Exception as exc:  # noqa: BLE001 — the host records the failed invocation
        assert "AzureWebJobsStorage" in str(exc)
    else:
        raise AssertionError("the timer rotated without a lock")
    assert emu.requests.count("databricks", "POST", CREATE) == creates


async def test_concurrent_cli_runs_without_storage_mint_one_pat(
    world: World, tmp_path: Path
) -> None:
    emu = world.emu
    seeded = world.target()
    env = cli_env(emu, tmp_path, config_table(emu, seeded)) | {
        "PAT_ROTATOR_LOCK_DIR": str(tmp_path / "locks")
    }
    creates = emu.requests.count("databricks", "POST", CREATE)
    hold = threading.Event()
    fault = emu.faults.add("databricks", "POST", CREATE, mode="hold", hold=hold)
    args = [sys.executable, "-m", "rotation", "rotate", "--force", "--json"]
    first = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert await asyncio.to_thread(fault.arrived.wait, 60)
    others = [
        await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [await p.communicate() for p in others]
    hold.set()
    winner = await first.communicate()
    for out, err in [*outputs, winner]:
        hygiene.record_text("cli concurrent stdout", out.decode())
        hygiene.record_text("cli concurrent stderr", err.decode())
    assert first.returncode == 0, winner[1].decode()
    for p, (out, _) in zip(others, outputs, strict=True):
        body = json.loads(out)
        assert p.returncode == 1
        assert body["targets"][0]["outcome"] == "busy"
        assert body["lock"]["across_machines"] is False
        assert "no lock across machines" in body["lock"]["description"]
    assert emu.requests.count("databricks", "POST", CREATE) - creates == 1
    assert violations(emu, seeded) == []


async def test_the_cli_file_lock_says_busy_when_held(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target()
    env = cli_env(emu, tmp_path, config_table(emu, seeded)) | {
        "PAT_ROTATOR_LOCK_DIR": str(tmp_path / "locks")
    }
    (tmp_path / "locks").mkdir()
    vault = deployment_of(emu.keyvault_url).replace(":", "_")
    held = filelock.FileLock(tmp_path / "locks" / f"{vault}--{seeded.name}.lock")
    with held:
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rotation", "rotate", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await done.communicate()
    hygiene.record_text("cli busy stdout", out.decode())
    hygiene.record_text("cli busy stderr", err.decode())
    assert done.returncode == 1
    assert "busy" in out.decode()
    assert "no lock across machines" in err.decode()
    assert emu.keyvault.latest(seeded.secret_name) is None  # nothing was written


# --- found by review: records that lie must never block, leak or break ---------------------


async def test_a_token_id_naming_no_listed_pat_never_sweeps_the_live_one(world: World, app) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    real = (await post(seeded.name)).body["token_id"]
    _tag(emu, seeded, token_id="0" * 64, health_checked_at="1")  # a typo; the check is due
    emu.faults.add("prequel", "GET", f"/sources/{seeded.consumers[0].id}", status=503, times=-1)
    with contextlib.suppress(RuntimeError):  # the timer reports the failed target
        await tick()
    assert _alive(emu, real)  # not swept as an "orphan" before a replacement exists
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    await tick()  # mismatch: a fresh PAT, nothing revoked
    await tick()  # the next run sweeps the PAT the untrusted version held, with proof
    assert not _alive(emu, real)
    assert violations(emu, seeded) == []


async def test_the_health_check_sweeps_an_orphan_whose_intent_an_older_version_holds(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    """A late write (a run that lost its lock) can leave the intent off the latest version."""
    emu = world.emu
    seeded = world.target(timing={"grace_period_hours": 48})
    app(seeded)
    assert (await post(seeded.name)).status == 200
    assert (await post(seeded.name, b'{"force": true}')).status == 200
    older = emu.keyvault.versions(seeded.secret_name)[-2]
    rid = secrets.token_hex(8)
    ours = deployment_of(emu.keyvault_url)
    comment = comment_for(seeded.name, rid, ours, seeded.secret_name)
    orphan = emu.databricks.mint(seeded.application_id, 86_400, comment).token_id
    other = comment_for(seeded.name, rid, "other.vault.azure.net", seeded.secret_name)
    bystander = emu.databricks.mint(seeded.application_id, 86_400, other).token_id
    tags = {**older.tags, "minting": rid}
    emu.keyvault.update(seeded.secret_name, older.version, {"tags": tags})
    _tag(emu, seeded, health_checked_at="1")  # the health check is due; nothing else is
    checked = await post(seeded.name)
    assert checked.status == 200, checked.body
    assert checked.body["swept"] == [orphan]
    assert not _alive(emu, orphan)
    assert _alive(emu, bystander)  # another deployment's: never even a candidate
    assert violations(emu, seeded, max_live=3) == []


async def test_a_refused_previous_is_said_once_and_never_blocks_a_rotation(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target(timing={"grace_period_hours": 1})
    app(seeded)
    assert (await post(seeded.name)).status == 200
    current = (await post(seeded.name, b'{"force": true}')).body["token_id"]
    _tag(emu, seeded, previous_token_id=current, revoke_previous_at="1")  # names itself
    refused = await post(seeded.name)
    assert refused.status == 502
    assert refused.body["error"]["kind"] == "revocation-refused"
    assert _alive(emu, current)
    again = await post(seeded.name)
    assert again.body["outcome"] == "not-due"  # said once, not on every run
    rotated = await post(seeded.name, b'{"force": true}')
    assert rotated.status == 200, rotated.body
    assert rotated.body["outcome"] == "rotated"
    assert violations(emu, seeded, max_live=2) == []


async def test_an_enabled_latest_version_marked_revoked_is_a_mismatch(world: World, app) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    real = (await post(seeded.name)).body["token_id"]
    _tag(emu, seeded, stage="revoked")
    answer = await post(seeded.name)
    assert answer.status == 200, answer.body
    assert answer.body["outcome"] == "mismatch"
    assert _alive(emu, real)
    assert (await post(seeded.name)).status == 200  # the sweep: no refusal, no block
    assert violations(emu, seeded) == []


async def test_a_store_whose_answer_was_lost_is_finished_not_revoked(world: World, app) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target(kind="self")  # its credential is the latest version's PAT
    app(seeded)
    assert (await post(seeded.name, b'{"force": true}')).status == 200
    put = f"/secrets/{seeded.secret_name}"
    emu.faults.add("keyvault", "PUT", put, mode="drop_after", times=1)  # stored, answer lost
    emu.faults.add("keyvault", "PUT", put, status=500, skip=0, times=-1)  # and every retry fails
    failed = await post(seeded.name, b'{"force": true}')
    assert failed.status == 503  # Key Vault failed: a service error
    assert failed.body["error"]["step"] == "store"
    emu.faults.clear()
    pending = emu.keyvault.latest(seeded.secret_name)
    assert pending is not None
    assert pending.tags["stage"] == "pending"
    assert violations(emu, seeded, settled=False) == []  # the pending version's PAT lives
    finished = await post(seeded.name)
    assert finished.status == 200, finished.body
    assert finished.body["token_id"] == pending.tags["token-id"]  # adopted, not minted again
    assert violations(emu, seeded) == []


async def test_a_pending_version_stored_after_the_listing_is_replaced_at_promotion(
    world: World, app, azurite
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    assert (await post(seeded.name)).status == 200
    first_hold, second_hold = threading.Event(), threading.Event()
    first_fault = emu.faults.add("databricks", "POST", CREATE, mode="hold", hold=first_hold)
    slow = asyncio.create_task(post(seeded.name, b'{"force": true}'))
    assert await asyncio.to_thread(first_fault.arrived.wait, 30)
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        blob = blobs.get_blob_client("pat-rotator-locks", f"{seeded.name}.lock")
        await BlobLeaseClient(blob).break_lease(lease_break_period=0)
    second_fault = emu.faults.add("databricks", "POST", CREATE, mode="hold", hold=second_hold)
    fast = asyncio.create_task(post(seeded.name, b'{"force": true}'))
    assert await asyncio.to_thread(second_fault.arrived.wait, 30)  # it listed the versions
    first_hold.set()
    stopped = await slow  # stores its PAT as pending after the other run's listing, then stops
    assert stopped.body["error"]["kind"] == "lock-lost"
    second_hold.set()
    done = await fast
    assert done.status == 200, done.body
    assert stopped.body["token_id"] in done.body["revoked"]
    assert len(rotator_tokens(emu, seeded)) == 1
    assert violations(emu, seeded) == []
