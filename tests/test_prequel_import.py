"""The ``prequel-import-source`` updater, end to end: Prequel's import routes test the new PAT
unsaved, save only the token, test again; a bad API key or a refused PAT changes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from emulators.scenario import SeededTarget
from rotation.config import parse_config
from rotation.engine import Outcome
from rotation.errors import ConfigError
from rotation.updaters.registry import kinds, plugin
from tests.invariants import rotator_tokens
from tests.world import World

ROOT = Path(__file__).resolve().parent.parent


def _with_import_source(world: World) -> tuple[SeededTarget, str]:
    """Seed a target whose only consumer is an import source holding a person's PAT."""
    emu = world.emu
    seeded = world.target(consumers=())
    human = emu.databricks.get(str(seeded.human_token_id))
    assert human is not None
    source_id = emu.prequel.add_import_source(
        host=emu.databricks_url.removeprefix("https://"), access_token=human.value
    )
    seeded.table["updaters"].append(
        {
            "kind": "prequel-import-source",
            "base_url": emu.prequel_url,
            "source_id": source_id,
            "api_key_secret_name": f"{seeded.name}-prequel-key",
        }
    )
    return seeded, source_id


def _calls(world: World, source_id: str, since: int) -> list[tuple[str, str]]:
    """Return (method, route) of the Prequel requests for *source_id* since entry *since*."""
    prefix = f"/import/sources/{source_id}"
    return [
        (r.method, r.path.removeprefix(prefix) or "/")
        for r in world.emu.requests.entries()[since:]
        if r.service == "prequel" and r.path.startswith(prefix)
    ]


async def test_rotation_tests_the_new_pat_unsaved_then_saves_it_and_revokes_the_old(
    world: World,
) -> None:
    emu = world.emu
    seeded, source_id = _with_import_source(world)
    source = emu.prequel.import_source(source_id)
    first = await world.rotate_one(seeded)
    assert first.outcome is Outcome.ROTATED, first.error
    (old,) = rotator_tokens(emu, seeded)
    tests_before, requests_before = len(emu.prequel.tests()), len(emu.requests)

    second = await world.rotate_one(seeded, force=True)

    assert second.outcome is Outcome.ROTATED, second.error
    (new,) = rotator_tokens(emu, seeded)
    assert new.token_id == second.token_id != old.token_id
    assert source.access_token == new.value
    assert source.history[-2:] == [old.value, new.value]
    assert _calls(world, source_id, requests_before) == [
        ("GET", "/"),
        ("POST", "/test-source"),
        ("PATCH", "/"),
        ("POST", "/test-source"),
    ]
    tests = [t for t in emu.prequel.tests()[tests_before:] if t.connection_id == source_id]
    assert [(t.access_token == new.value, t.token_saved, t.ok) for t in tests] == [
        (True, False, True),  # the new PAT, before the PATCH saved it
        (True, True, True),  # the saved source, after it
    ]
    assert second.revoked == [old.token_id]
    assert not emu.databricks.is_live(old.value)
    (result,) = second.consumers
    assert (result.name, result.tested, result.pushed, result.confirmed) == (
        f"prequel-import-source:{source_id}",
        True,
        True,
        True,
    )
    prequel = [r.path for r in emu.requests.entries()[requests_before:] if r.service == "prequel"]
    assert all(path.startswith("/import/") for path in prequel), prequel


async def test_a_bad_api_key_fails_preflight_naming_its_secret_and_mints_nothing(
    world: World,
) -> None:
    emu = world.emu
    seeded, source_id = _with_import_source(world)
    key_secret = f"{seeded.name}-prequel-key"
    emu.keyvault.set_secret(key_secret, "sk_staging_wrongkey")
    held = emu.prequel.import_source(source_id).access_token
    creates = emu.requests.count("databricks", "POST", "/api/2.0/token/create")
    since = len(emu.requests)

    report = await world.rotate_one(seeded)

    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert (report.error.step, report.error.kind) == ("preflight", "consumer-auth")
    assert f"Prequel import source {source_id}" in report.error.message
    assert repr(key_secret) in report.error.message
    assert _calls(world, source_id, since) == [("GET", "/")]
    assert emu.requests.count("databricks", "POST", "/api/2.0/token/create") == creates
    assert rotator_tokens(emu, seeded) == []
    assert emu.keyvault.latest(seeded.secret_name) is None
    assert emu.prequel.import_source(source_id).access_token == held


async def test_a_refused_new_pat_stops_before_the_patch_and_the_old_pat_stays(
    world: World,
) -> None:
    emu = world.emu
    seeded, source_id = _with_import_source(world)
    await world.rotate_one(seeded)
    (old,) = rotator_tokens(emu, seeded)
    history = emu.prequel.import_source(source_id).history
    refusal = {
        "status": "success",
        "data": {"status": "failure", "message": "Could not connect to the SQL warehouse"},
        "message": "Connection test completed.",
    }
    emu.faults.add(
        "prequel", "POST", rf"/import/sources/{source_id}/test-source", status=200, body=refusal
    )
    since = len(emu.requests)

    report = await world.rotate_one(seeded, force=True)

    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert (report.error.step, report.error.kind) == ("test", "consumer-rejected-token")
    assert "Could not connect to the SQL warehouse" in report.error.message
    assert _calls(world, source_id, since) == [("GET", "/"), ("POST", "/test-source")]
    assert emu.prequel.import_source(source_id).history == history
    assert emu.prequel.import_source(source_id).access_token == old.value
    assert report.revoked == []
    assert emu.databricks.is_live(old.value)


def test_the_kind_is_built_in_and_registered_once_under_its_own_kind() -> None:
    assert plugin("prequel-import-source").kind == "prequel-import-source"
    assert {"prequel-source", "prequel-destination", "prequel-import-source"} <= set(kinds())
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = table["project"].get("entry-points", {}).get("pat_rotator.updaters", {})
    assert not set(declared) & set(kinds())  # the entry points are for other packages' kinds


def test_its_table_is_validated_like_a_prequel_source() -> None:
    updater = {
        "kind": "prequel-import-source",
        "api_key_secret_name": "k",
        "destination_id": "d1",
    }
    table = {
        "key_vault_url": "https://v.vault.azure.net",
        "targets": [
            {
                "name": "t1",
                "workspace_url": "https://adb-1.azuredatabricks.net",
                "secret_name": "t1-pat",
                "principal": {
                    "kind": "databricks-oauth",
                    "client_id": "22222222-2222-2222-2222-2222222222cc",
                    "client_secret_name": "n",
                },
                "updaters": [updater],
            }
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(table)
    assert "targets[0].updaters[0].source_id: Field required" in str(caught.value)
    assert "destination_id: Extra inputs are not permitted" in str(caught.value)
