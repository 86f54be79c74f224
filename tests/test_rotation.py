"""End to end: each principal kind x each updater, bootstrap then rotation, through the real SDKs."""

from __future__ import annotations

import pytest

from rotation.engine import Outcome
from tests.invariants import consumer_store, rotator_tokens, violations
from tests.world import World

KINDS = ["managed-identity", "entra-client-secret", "databricks-oauth", "databricks-obo", "self"]
CONSUMERS = [
    ("prequel-source",),
    ("prequel-destination",),
    ("prequel-import-source",),
    ("prequel-source", "prequel-destination"),
    (),
]


@pytest.mark.parametrize("consumers", CONSUMERS, ids=lambda c: "+".join(c) or "key-vault-only")
@pytest.mark.parametrize("kind", KINDS)
async def test_bootstrap_then_rotation(world: World, kind: str, consumers: tuple[str, ...]) -> None:
    emu = world.emu
    seeded = world.target(kind=kind, consumers=consumers)

    # A `self` target starts from the PAT a person placed in its secret: rotated when forced.
    first = await world.rotate_one(seeded, force=kind == "self")
    assert first.outcome is Outcome.ROTATED, first.error
    assert first.previous_token_id is None
    (minted,) = rotator_tokens(emu, seeded)
    assert first.token_id == minted.token_id
    assert emu.databricks.is_live(
        seeded_human_value(world, seeded)
    )  # a person's PAT is never touched
    assert all(c.confirmed for c in first.consumers)
    for c in seeded.consumers:
        assert consumer_store(emu, c.kind)[c.id].access_token == minted.value
    assert violations(emu, seeded) == []

    second = await world.rotate_one(seeded, force=True)
    assert second.outcome is Outcome.ROTATED, second.error
    assert second.previous_token_id == minted.token_id
    assert second.revoked == [minted.token_id]
    assert not emu.databricks.is_live(minted.value)
    (now_live,) = rotator_tokens(emu, seeded)
    assert now_live.token_id == second.token_id
    assert violations(emu, seeded) == []


def seeded_human_value(world: World, seeded) -> str:  # type: ignore[no-untyped-def]
    token = world.emu.databricks.get(seeded.human_token_id)
    assert token is not None
    return token.value


async def test_new_version_records_state_in_tags_and_expiry(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    report = await world.rotate_one(seeded, force=True)
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert latest.tags["stage"] == "current"
    assert latest.tags["token-id"] == report.token_id
    assert latest.tags["managed-by"] == "pat-rotator"
    assert latest.tags["target"] == seeded.name
    token = emu.databricks.get(report.token_id)
    assert token is not None
    assert latest.exp == token.expiry_ms // 1000
    assert f"rotation={latest.tags['rotation-id']}" in token.comment
    assert token.expiry_ms - token.creation_ms == 90 * 86_400_000


async def test_not_due_makes_only_one_key_vault_listing(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    await world.rotate_one(seeded)
    emu.requests.clear()
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.NOT_DUE
    assert "expires in 90.0 days" in report.reason
    assert emu.requests.count("databricks") == 0
    assert emu.requests.count("prequel") == 0
    assert emu.requests.count("keyvault", "GET", "/secrets") >= 1
    assert emu.requests.count("keyvault") == emu.requests.count("keyvault", "GET", "/secrets")


async def test_due_when_expiry_is_near(world: World) -> None:
    emu = world.emu
    seeded = world.target(timing={"lifetime_days": 10, "rotate_before_days": 3})
    first = await world.rotate_one(seeded)
    emu.clock.advance(8 * 86_400)
    second = await world.rotate_one(seeded)
    assert second.outcome is Outcome.ROTATED
    assert "expires in 2.0 days" in second.reason
    assert second.revoked == [first.token_id]


async def test_dry_run_changes_nothing(world: World) -> None:
    emu = world.emu
    seeded = world.target()
    before = emu.requests.count("databricks", "POST")
    report = await world.rotate_one(seeded, dry_run=True)
    assert report.outcome is Outcome.WOULD_ROTATE
    assert emu.keyvault.latest(seeded.secret_name) is None
    assert rotator_tokens(emu, seeded) == []
    assert emu.requests.count("databricks", "POST") == before


async def test_secret_names_match_the_vault_ignoring_case(world: World) -> None:
    seeded = world.target()
    await world.rotate_one(seeded)
    seeded.table["secret_name"] = seeded.secret_name.upper()
    again = await world.rotate_one(seeded)
    assert again.outcome is Outcome.NOT_DUE
