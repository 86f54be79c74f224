"""Every failure the manual procedure's troubleshooting names gets a clear error and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from emulators.harness import Emulators
from emulators.scenario import SeededTarget
from rotation.engine import Outcome
from tests.invariants import consumer_store, no_pat_stored, rotator_tokens
from tests.world import World


@contextmanager
def _conf(emu: Emulators, **changes: object) -> Iterator[None]:
    old = {k: getattr(emu.databricks.conf, k) for k in changes}
    for k, v in changes.items():
        setattr(emu.databricks.conf, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(emu.databricks.conf, k, v)


def _held(emu: Emulators, seeded: SeededTarget) -> list[str]:
    return [consumer_store(emu, c.kind)[c.id].access_token for c in seeded.consumers]


async def _fails(world: World, seeded: SeededTarget, kind: str, *hints: str) -> None:
    """The run fails with *kind* and *hints*; nothing is minted, stored or changed for consumers."""
    held = _held(world.emu, seeded)
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.kind == kind, report.error
    for hint in hints:
        assert hint in report.error.message
    assert rotator_tokens(world.emu, seeded) == []
    assert no_pat_stored(world.emu, seeded.secret_name)
    assert _held(world.emu, seeded) == held


async def test_pats_disabled_in_the_workspace(world: World) -> None:
    seeded = world.target()
    with _conf(world.emu, tokens_enabled=False):
        await _fails(world, seeded, "tokens-disabled", "enableTokensConfig", "Admin Settings")


async def test_missing_can_use(world: World) -> None:
    seeded = world.target()
    world.emu.databricks.set_can_use(seeded.application_id, False)
    await _fails(world, seeded, "missing-can-use", "CAN_USE", seeded.application_id)


async def test_bad_client_secret(world: World) -> None:
    seeded = world.target()
    world.emu.keyvault.set_secret(seeded.table["principal"]["client_secret_name"], "not-the-secret")
    await _fails(world, seeded, "credential", "AADSTS7000215", "not its ID")


async def test_wrong_scope(world: World) -> None:
    seeded = world.target()
    body = {
        "error": "invalid_scope",
        "error_description": "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
    }
    world.emu.faults.add(
        "entra", "POST", r"/.+/oauth2/v2\.0/token", status=400, body=body, times=-1
    )
    await _fails(world, seeded, "credential", "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default")


async def test_service_principal_not_in_workspace(world: World) -> None:
    seeded = world.target()
    world.emu.databricks.remove_from_workspace(seeded.application_id)
    await _fails(world, seeded, "principal-not-in-workspace", "Import", seeded.application_id)


async def test_token_quota(world: World) -> None:
    seeded = world.target()
    for i in range(599):
        world.emu.databricks.mint(seeded.application_id, 86_400, f"someone else's {i}")
    await _fails(world, seeded, "token-quota", "600")


async def test_lifetime_above_the_workspace_maximum(world: World) -> None:
    seeded = world.target()
    with _conf(world.emu, max_token_lifetime_days=30):
        await _fails(world, seeded, "lifetime-too-long", "lifetime_days", "maxTokenLifetimeDays")


async def test_on_behalf_of_not_enabled(world: World) -> None:
    seeded = world.target(kind="databricks-obo")
    with _conf(world.emu, obo_enabled=False):
        await _fails(world, seeded, "on-behalf-of-disabled", "databricks-oauth")


async def test_bad_databricks_oauth_secret(world: World) -> None:
    seeded = world.target(kind="databricks-oauth")
    world.emu.keyvault.set_secret(seeded.table["principal"]["client_secret_name"], "wrong-oauth")
    await _fails(world, seeded, "credential", "OAuth secret", seeded.application_id)


async def test_credential_secret_missing_from_key_vault(world: World) -> None:
    seeded = world.target()
    seeded.table["principal"]["client_secret_name"] = "no-such-secret"
    await _fails(world, seeded, "secret-missing", "no-such-secret")


async def test_prequel_rejects_the_api_key(world: World) -> None:
    seeded = world.target()
    world.emu.keyvault.set_secret(f"{seeded.name}-prequel-key", "sk_staging_wrongkey")
    await _fails(world, seeded, "consumer-auth", "API key", "sk_prod_")


async def test_prequel_unknown_source(world: World) -> None:
    seeded = world.target()
    seeded.table["updaters"][0]["source_id"] = "no-such-source"
    await _fails(world, seeded, "consumer", "does not exist", "source id")


async def test_prequel_rejects_the_new_token_then_the_next_run_resumes(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    held = consumer_store(emu, "prequel-source")[seeded.consumers[0].id].access_token
    body = {
        "status": "success",
        "data": {"status": "failure", "message": "Could not connect"},
        "message": "ok",
    }
    emu.faults.add(
        "prequel", "POST", r"/sources/.+/test-connection", status=200, body=body, times=-1
    )
    report = await world.rotate_one(seeded, force=True)
    assert report.error is not None
    assert report.error.kind == "consumer-rejected-token"
    assert "Could not connect" in report.error.message
    assert report.revoked == []
    assert consumer_store(emu, "prequel-source")[seeded.consumers[0].id].access_token == held
    emu.faults.clear()
    creates = emu.requests.count("databricks", "POST", "/api/2.0/token/create")
    finished = await world.rotate_one(seeded)
    assert finished.outcome is Outcome.ROTATED
    assert finished.token_id == report.token_id
    assert emu.requests.count("databricks", "POST", "/api/2.0/token/create") == creates


@pytest.mark.parametrize("error_code", [403, "PERMISSION_DENIED"])
async def test_error_code_may_be_an_integer_or_a_string(world: World, error_code: object) -> None:
    seeded = world.target()
    body = {"error_code": error_code, "message": "User does not have permission to use tokens."}
    world.emu.faults.add("databricks", "POST", "/api/2.0/token/create", status=403, body=body)
    await _fails(world, seeded, "missing-can-use", "CAN_USE")


@pytest.mark.parametrize(
    ("field", "hint"),
    [
        ("databricks.access_token", "accepted a made-up token"),  # Prequel silently ignores it
        ("databricks.access_token_auth.acess_token", "must be a non-empty string"),  # refuses
    ],
)
async def test_a_token_field_prequel_does_not_read_is_caught_before_minting(
    world: World, field: str, hint: str
) -> None:
    seeded = world.target()
    seeded.table["updaters"][0]["token_field"] = field
    await _fails(world, seeded, "consumer", hint)


async def test_a_managed_identity_not_in_the_workspace(world: World) -> None:
    seeded = world.target(kind="managed-identity")
    world.emu.databricks.remove_from_workspace(seeded.application_id)
    await _fails(world, seeded, "principal-not-in-workspace", "Import", seeded.application_id)


async def test_a_managed_identity_without_can_use(world: World) -> None:
    seeded = world.target(kind="managed-identity")
    world.emu.databricks.set_can_use(seeded.application_id, False)
    await _fails(world, seeded, "missing-can-use", "CAN_USE", seeded.application_id)


async def test_a_managed_identity_where_none_exists(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = world.target(kind="managed-identity")
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")  # never IMDS
    report = await world.rotate_one(seeded)
    assert report.error is not None
    assert report.error.kind == "credential"
    assert report.error.step == "credentials"
    assert "works only in Azure" in report.error.message
    assert rotator_tokens(world.emu, seeded) == []


async def test_a_self_target_without_its_first_pat(world: World) -> None:
    seeded = world.target(kind="self")
    world.emu.keyvault.delete(seeded.secret_name)
    world.emu.keyvault.purge(seeded.secret_name)
    report = await world.rotate_one(seeded)
    assert report.error is not None
    assert report.error.kind == "credential"
    assert "a first PAT must be in Key Vault secret" in report.error.message
    assert rotator_tokens(world.emu, seeded) == []


async def test_a_self_target_whose_pat_died_cannot_heal_itself(world: World) -> None:
    seeded = world.target(kind="self")
    first = await world.rotate_one(seeded, force=True)
    assert first.outcome is Outcome.ROTATED, first.error
    world.emu.databricks.revoke(first.token_id)
    report = await world.rotate_one(seeded, force=True)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert report.error.kind == "credential"
    assert "cannot heal itself" in report.error.message
    assert rotator_tokens(world.emu, seeded) == []
