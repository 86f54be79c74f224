"""Credential rotation (issue 19): the principal's own client secret / OAuth secret.

Through the real SDKs and clients against the emulators: Graph (addPassword, removePassword)
shares its directory with Entra ID, the secrets proxy shares its state with Databricks OAuth, so
a rotated credential really changes what authenticates.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING

import pytest
import stamina

from emulators.scenario import grant_credential_rights
from rotation.engine import Outcome
from rotation.state import comment_for
from tests.invariants import violations
from tests.test_cli import _cli, _config
from tests.test_doctor import _doctor

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from tests.world import World

DAY = 86_400


def credential_name(seeded: SeededTarget) -> str:
    return str(seeded.table["principal"]["client_secret_name"])


def stored(emu: Emulators, seeded: SeededTarget) -> str:
    latest = emu.keyvault.latest(credential_name(seeded))
    assert latest is not None
    return latest.value


def entra_passwords(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    """Return key id -> value of the app's client secrets."""
    return {p.key_id: p.secret_text for p in emu.entra.passwords(seeded.application_id)}


def oauth_secrets(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    return {s.secret_id: s.value for s in emu.databricks.oauth_secrets_of(seeded.application_id)}


def live_credentials(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    if seeded.kind == "entra-client-secret":
        return entra_passwords(emu, seeded)
    return oauth_secrets(emu, seeded)


def near_expiry(world: World, kind: str, days: float = 20) -> SeededTarget:
    seeded = world.target(kind=kind)
    grant_credential_rights(world.emu, seeded, expires_in=days * DAY)
    return seeded


@pytest.mark.parametrize("kind", ["entra-client-secret", "databricks-oauth"])
async def test_a_credential_near_expiry_is_rotated_and_the_old_one_deleted(
    world: World, kind: str
) -> None:
    emu = world.emu
    seeded = near_expiry(world, kind)
    first = await world.rotate_one(seeded)  # bootstrap: the PAT rotates, the credential waits
    assert first.outcome is Outcome.ROTATED, first.error
    assert first.credential_result == "deferred"
    (old_key,) = live_credentials(emu, seeded)
    old_value = stored(emu, seeded)

    second = await world.rotate_one(seeded)
    assert second.error is None, second.error
    assert second.credential_result == "rotated"
    assert second.credential_deleted == [old_key]
    assert not [n for n in second.notes if n.startswith("the principal's credential")]
    live = live_credentials(emu, seeded)
    (new_key,) = live
    assert new_key != old_key
    assert stored(emu, seeded) == live[new_key] != old_value
    latest = emu.keyvault.latest(credential_name(seeded))
    assert latest is not None
    assert latest.tags["stage"] == "current"
    assert latest.tags["credential-key-id"] == new_key
    assert latest.exp is not None
    assert latest.exp > emu.clock.now() + 300 * DAY
    assert second.credential_expires_on == latest.exp
    for version in emu.keyvault.versions(credential_name(seeded)):  # nothing left to finish
        assert "credential-minting" not in version.tags
        assert "credential-replaced" not in version.tags

    third = await world.rotate_one(seeded, force=True)  # a PAT rotation with the new credential
    assert third.outcome is Outcome.ROTATED, third.error
    assert third.credential_result == "not-due"
    assert violations(emu, seeded) == []


async def ready(world: World, kind: str = "entra-client-secret", **kw: object) -> SeededTarget:
    """A target whose PAT is in place and whose credential has 20 days left (rights granted)."""
    seeded = near_expiry(world, kind)
    seeded.table.update(kw)
    first = await world.rotate_one(seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    return seeded


async def test_entra_replication_delay_is_waited_out(world: World) -> None:
    emu = world.emu
    seeded = await ready(world)
    token_calls = emu.requests.count("entra", "POST")
    emu.graph.replication_delay = 2.5
    try:
        report = await world.rotate_one(seeded)
    finally:
        emu.graph.replication_delay = 0.0
    assert report.credential_result == "rotated", report.error
    # the new secret was refused (AADSTS7000215, "not yet") at least once before it worked
    assert emu.requests.count("entra", "POST") - token_calls >= 3
    (key,) = entra_passwords(emu, seeded)
    assert entra_passwords(emu, seeded)[key] == stored(emu, seeded)


@pytest.mark.parametrize(
    ("kind", "service", "path"),
    [
        ("entra-client-secret", "graph", ".*/addPassword"),
        ("databricks-oauth", "databricks", "/api/2.0/accounts/servicePrincipals/.*/secrets"),
    ],
)
async def test_a_create_whose_answer_was_lost_is_swept_by_the_next_run(
    world: World, kind: str, service: str, path: str
) -> None:
    emu = world.emu
    seeded = await ready(world, kind)
    before = live_credentials(emu, seeded)
    emu.faults.add(service, "POST", path, mode="drop_after")
    crashed = await world.rotate_one(seeded)
    assert crashed.outcome is Outcome.FAILED
    assert crashed.credential_result == "failed: credential-rotation"
    orphans = set(live_credentials(emu, seeded)) - set(before)
    assert len(orphans) == 1  # made, its value lost
    assert stored(emu, seeded) in before.values()  # Key Vault still holds a working one

    healed = await world.rotate_one(seeded)
    assert healed.credential_result == "rotated", healed.error
    assert orphans <= set(healed.credential_deleted)
    live = live_credentials(emu, seeded)
    assert list(live.values()) == [stored(emu, seeded)]
    assert violations(emu, seeded) == []


async def test_databricks_quota_nearly_full_is_refused_with_nothing_created(world: World) -> None:
    emu = world.emu
    seeded = await ready(world, "databricks-oauth")
    for _ in range(3):  # 4 of 5 slots used: a rotation needs 2 free
        emu.databricks.add_oauth_secret(seeded.application_id)
    before = oauth_secrets(emu, seeded)
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.kind == "credential-quota"
    assert "holds 4 of its 5 credentials" in report.error.message
    assert "\n" not in report.error.message
    assert oauth_secrets(emu, seeded) == before


@pytest.mark.parametrize("kind", ["entra-client-secret", "databricks-oauth"])
async def test_a_missing_right_is_one_clear_line_and_nothing_is_created(
    world: World, kind: str
) -> None:
    emu = world.emu
    seeded = await ready(world, kind)
    if kind == "entra-client-secret":
        emu.graph.revoke(seeded.application_id, "Application.ReadWrite.OwnedBy")
        right = "Application.ReadWrite.OwnedBy"
    else:
        emu.databricks.set_admin(seeded.application_id, False)
        right = "workspace admin"
    before = live_credentials(emu, seeded)
    report = await world.rotate_one(seeded)
    assert report.error is not None
    assert report.error.kind == "credential-rights"
    assert right in report.error.message
    assert "\n" not in report.error.message
    assert live_credentials(emu, seeded) == before


async def test_a_tenant_lifetime_policy_is_one_clear_line(world: World) -> None:
    emu = world.emu
    seeded = await ready(world)
    before = entra_passwords(emu, seeded)
    emu.graph.max_password_lifetime = 90 * DAY
    try:
        report = await world.rotate_one(seeded)
    finally:
        emu.graph.max_password_lifetime = None
    assert report.error is not None
    assert report.error.kind == "credential-policy"
    assert "lower credential_lifetime_days" in report.error.message
    assert entra_passwords(emu, seeded) == before

    seeded.table["credential_lifetime_days"] = 90  # what the line says to do heals it
    emu.graph.max_password_lifetime = 90 * DAY
    try:
        healed = await world.rotate_one(seeded)
    finally:
        emu.graph.max_password_lifetime = None
    assert healed.credential_result == "rotated", healed.error


async def test_opting_out_keeps_watch_and_warn(world: World) -> None:
    emu = world.emu
    seeded = await ready(world, rotate_credential=False)
    calls = emu.requests.count("graph")
    report = await world.rotate_one(seeded, force=True)
    assert report.outcome is Outcome.ROTATED, report.error
    assert report.credential_result == "off"
    assert any("expires in 20.0 days" in n for n in report.notes)
    assert emu.requests.count("graph") == calls


async def test_a_persons_unrelated_secret_is_never_deleted(world: World) -> None:
    emu = world.emu
    seeded = await ready(world)
    (original,) = entra_passwords(emu, seeded)
    emu.entra.add_client_secret(seeded.application_id)  # a person's, for something else
    (unrelated,) = set(entra_passwords(emu, seeded)) - {original}
    hints = {p.key_id: p.hint for p in emu.entra.passwords(seeded.application_id)}
    report = await world.rotate_one(seeded)
    assert report.credential_result == "rotated", report.error
    live = entra_passwords(emu, seeded)
    assert unrelated in live
    if hints[original] != hints[unrelated]:  # the stored one is known by its hint: replaced
        assert original not in live
        assert report.credential_deleted == [original]
    again = await world.rotate_one(seeded, force=True)
    assert again.outcome is Outcome.ROTATED, again.error
    assert unrelated in entra_passwords(emu, seeded)


async def test_another_deployments_marked_secret_on_the_same_app_is_never_deleted(
    world: World,
) -> None:
    """A second rotator (another vault) marks its secrets for the same target and secret name."""
    emu = world.emu
    seeded = await ready(world)
    name = credential_name(seeded)
    theirs = comment_for(seeded.name, secrets.token_hex(8), "other.vault.azure.net", name)
    other = emu.entra.add_password(seeded.application_id, display_name=theirs).key_id
    report = await world.rotate_one(seeded)
    assert report.credential_result == "rotated", report.error
    assert other not in report.credential_deleted
    again = await world.rotate_one(seeded, force=True)
    assert again.outcome is Outcome.ROTATED, again.error
    assert other in entra_passwords(emu, seeded)


def test_the_cli_rotates_the_credential_and_prints_no_secret(
    world: World, tmp_path: Path, real_time: None
) -> None:
    emu = world.emu
    seeded = near_expiry(world, "databricks-oauth")
    (old_key,) = oauth_secrets(emu, seeded)
    # The CLI runs on the real clock (the emulators' may have been moved on by other tests).
    real_exp = int(time.time() + 20 * DAY)
    emu.keyvault.update(credential_name(seeded), None, {"exp": real_exp})
    boot = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert boot.returncode == 0, boot.stderr
    assert json.loads(boot.stdout)["targets"][0]["credential_result"] == "deferred"
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    assert report["credential_result"] == "rotated"
    assert report["credential_deleted"] == [old_key]
    assert report["credential_expires_at"] is not None
    assert list(oauth_secrets(emu, seeded).values()) == [stored(emu, seeded)]
    for value in [stored(emu, seeded), *oauth_secrets(emu, seeded).values()]:
        assert value not in done.stdout + done.stderr  # hygiene scans it all again at the end


@pytest.mark.parametrize("kind", ["entra-client-secret", "databricks-oauth"])
async def test_doctor_checks_the_rights_read_only_and_says_how_to_grant(
    world: World, tmp_path: Path, kind: str
) -> None:
    emu = world.emu
    seeded = await ready(world, kind)
    check = "principal may rotate its own credential"
    code, checks = _doctor(world, tmp_path, seeded)
    (found,) = [c for c in checks if c["check"] == check]
    assert found["ok"] is True, found
    if kind == "entra-client-secret":
        emu.graph.revoke(seeded.application_id, "Application.ReadWrite.OwnedBy")
        needed = "Application.ReadWrite.OwnedBy"
    else:
        emu.databricks.set_admin(seeded.application_id, False)
        needed = "workspace admin"
    before = live_credentials(emu, seeded)
    emu.requests.clear()
    code, checks = _doctor(world, tmp_path, seeded)
    (found,) = [c for c in checks if c["check"] == check]
    assert found["ok"] is False
    assert needed in found["detail"]
    assert code == 1
    assert live_credentials(emu, seeded) == before
    writes = [
        e
        for e in emu.requests.entries()
        if (e.service == "graph" and e.method != "GET")
        or (e.service == "keyvault" and e.method in {"PUT", "PATCH"})
        or ("/credentials/secrets" in e.path and e.method != "GET")
    ]
    assert writes == []


async def test_status_and_telemetry_show_the_credential(world: World) -> None:
    from rotation.app import status
    from rotation.app.telemetry import record

    emu = world.emu
    seeded = await ready(world)
    async with world.runtime(world.config(seeded)) as rt:
        (row,) = await status(rt)
    before = row.to_json()
    assert before["credential_days_left"] == pytest.approx(20, abs=0.1)
    assert before["credential_rotation_at"] is not None  # already due: 10 days ago
    assert row.credential_rotation_at is not None
    assert row.credential_rotation_at < emu.clock.now()
    report = await world.rotate_one(seeded)
    fields = record(report, emu.clock.now(), "timer")
    assert fields["credential_result"] == "rotated"
    assert float(fields["credential_days_left"]) > 300
    seeded.table["rotate_credential"] = False
    async with world.runtime(world.config(seeded)) as rt:
        (row,) = await status(rt)
    assert row.to_json()["credential_rotation_at"] is None


async def test_a_dry_run_says_the_credential_would_rotate_and_changes_nothing(
    world: World,
) -> None:
    emu = world.emu
    seeded = await ready(world)
    before = entra_passwords(emu, seeded)
    versions = len(emu.keyvault.versions(credential_name(seeded)))
    report = await world.rotate_one(seeded, dry_run=True)
    assert report.credential_result == "would-rotate"
    assert entra_passwords(emu, seeded) == before
    assert len(emu.keyvault.versions(credential_name(seeded))) == versions


async def test_a_pat_is_minted_with_the_proven_credential_while_a_new_one_is_unproven(
    world: World,
) -> None:
    emu = world.emu
    seeded = await ready(world)
    (old_key,) = entra_passwords(emu, seeded)
    emu.graph.replication_delay = 10 * DAY  # Entra will say "not yet" for a long while
    try:
        with stamina.set_testing(True, attempts=3):  # poll three times, without waiting
            unproven = await world.rotate_one(seeded)
    finally:
        emu.graph.replication_delay = 0.0
    assert unproven.credential_result == "failed: credential-rotation"
    assert unproven.error is not None
    assert "AADSTS7000215" in unproven.error.message
    latest = emu.keyvault.latest(credential_name(seeded))
    assert latest is not None
    assert latest.tags["stage"] == "pending"  # stored at once, not yet proven

    pat = await world.rotate_one(seeded, force=True)  # reads the proven (old) secret
    assert pat.outcome is Outcome.ROTATED, pat.error
    assert pat.credential_result == "deferred"

    emu.entra.replicate(seeded.application_id)
    resumed = await world.rotate_one(seeded)
    assert resumed.credential_result == "rotated", resumed.error
    assert resumed.credential_deleted == [old_key]
    (new_key,) = entra_passwords(emu, seeded)
    assert new_key == latest.tags["credential-key-id"]
    assert violations(emu, seeded) == []


async def test_a_young_orphan_waits_and_so_does_the_rotation(world: World) -> None:
    emu = world.emu
    seeded = await ready(world, "databricks-oauth")
    before = set(oauth_secrets(emu, seeded))
    emu.faults.add(
        "databricks", "POST", "/api/2.0/accounts/servicePrincipals/.*/secrets", mode="drop_after"
    )
    crashed = await world.rotate_one(seeded, orphan_min_age_minutes=15)
    assert crashed.credential_result == "failed: credential-rotation"
    (orphan,) = set(oauth_secrets(emu, seeded)) - before

    young = await world.rotate_one(seeded, orphan_min_age_minutes=15)
    assert young.credential_result == "deferred", young.error
    assert young.deferred == [orphan]
    assert set(oauth_secrets(emu, seeded)) == before | {orphan}  # nothing new made meanwhile

    emu.clock.advance(16 * 60)
    later = await world.rotate_one(seeded, orphan_min_age_minutes=15)
    assert later.credential_result == "rotated", later.error
    assert orphan in later.credential_deleted
    assert list(oauth_secrets(emu, seeded).values()) == [stored(emu, seeded)]


async def test_targets_sharing_a_credential_rotate_it_once(world: World) -> None:
    emu = world.emu
    first = near_expiry(world, "entra-client-secret")
    second = world.target()
    second.table["principal"] = first.table["principal"]  # the same SP mints both targets' PATs
    boot = await world.rotate(first, second)
    assert [r.credential_result for r in boot] == ["deferred", "off"]
    (old_key,) = entra_passwords(emu, first)
    reports = await world.rotate(first, second)
    assert [r.credential_result for r in reports] == ["rotated", None], reports  # idle: no run
    live = entra_passwords(emu, first)
    assert old_key not in live
    assert list(live.values()) == [stored(emu, first)]

    first.table["rotate_credential"] = False  # the first opts out: the next one rotates it
    name = credential_name(first)
    emu.keyvault.update(name, None, {"exp": int(emu.clock.now() + 20 * DAY)})
    again = await world.rotate(first, second)
    assert again[1].credential_result == "rotated", again[1].error
    latest = emu.keyvault.latest(name)
    assert latest is not None
    assert list(entra_passwords(emu, first)) == [latest.tags["credential-key-id"]], again
