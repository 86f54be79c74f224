"""The Function App: HTTP, timer, Event Grid and queue triggers, called as the host calls them."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient
from azure.storage.queue import TextBase64DecodePolicy
from azure.storage.queue.aio import QueueClient

from emulators.scenario import SeededTarget
from rotation import errors
from rotation.engine import Step
from tests import hygiene
from tests.functions import Http, deliver, get_status, grid_event, post, tick
from tests.invariants import rotator_tokens, violations
from tests.world import World

CREATE = "/api/2.0/token/create"
NEAR = "Microsoft.KeyVault.SecretNearExpiry"


def _creates(world: World) -> int:
    return sum(1 for e in world.emu.requests.entries() if e.path == CREATE and e.status == 200)


def _seen(http: Http) -> Http:
    hygiene.record_text(f"http {http.status}", json.dumps(http.body))
    return http


def _event_data(
    world: World, seeded: SeededTarget, version: str, **over: object
) -> dict[str, object]:
    return {
        "Id": f"{world.emu.keyvault_url}/secrets/{seeded.secret_name}/{version}",
        "VaultName": "emulated",
        "ObjectType": "Secret",
        "ObjectName": seeded.secret_name,
        "Version": version,
        "NBF": None,
        "EXP": 1_900_000_000,
        **over,
    }


# --- HTTP ---------------------------------------------------------------------------------


async def test_http_rotate_then_status(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    done = _seen(await post(seeded.name))
    assert done.status == 200
    assert done.body["outcome"] == "rotated"
    (live,) = rotator_tokens(world.emu, seeded)
    assert done.body["token_id"] == live.token_id

    status = _seen(await get_status())
    assert status.status == 200
    (row,) = status.body["targets"]
    assert row["token_id"] == live.token_id
    assert row["stage"] == "current"


async def test_http_dry_run_and_force(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    dry = _seen(await post(seeded.name, params={"dry_run": "true"}))
    assert (dry.status, dry.body["outcome"]) == (200, "would-rotate")
    assert rotator_tokens(world.emu, seeded) == []
    assert (await post(seeded.name)).body["outcome"] == "rotated"
    assert (await post(seeded.name)).body["outcome"] == "not-due"
    forced = _seen(await post(seeded.name, b'{"force": true}'))
    assert forced.body["outcome"] == "rotated"
    assert len(forced.body["revoked"]) == 1


async def test_http_unknown_target_lists_the_known_ones(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    answer = _seen(await post("nope"))
    assert answer.status == 404
    assert answer.body["known_targets"] == [seeded.name]


@pytest.mark.parametrize(
    ("body", "params", "needle"),
    [
        (b"{", {}, "not JSON"),
        (b"[]", {}, "JSON object"),
        (b'{"force": "maybe"}', {}, "force must be true or false"),
        (b'{"forse": true}', {}, "unknown field 'forse'"),
        (b"\xff\xfe\x00", {}, "not JSON"),
        (b"", {"dry_run": "perhaps"}, "dry_run must be true or false"),
        (b"", {"target": "x"}, "unknown query parameter"),
        (b"x" * 20_000, {}, "too large"),
    ],
)
async def test_http_bad_requests_get_400_and_change_nothing(
    world: World, app, body: bytes, params: dict[str, str], needle: str
) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    answer = _seen(await post(seeded.name, body, params))
    assert answer.status == 400
    assert needle in answer.body["error"]
    assert rotator_tokens(world.emu, seeded) == []


async def test_http_with_broken_app_settings_is_503_not_500(
    world: World, app, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    app(world.target())
    monkeypatch.setenv("ROTATION_CONFIG", '{"targets": 1}')
    answer = _seen(await get_status())
    assert answer.status == 503
    assert "configuration is invalid" in answer.body["error"]


# --- timer --------------------------------------------------------------------------------


async def test_timer_rotates_only_what_is_due(
    world: World, app, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    fresh, done = world.target(), world.target()
    app(fresh, done)
    await post(done.name)
    creates = _creates(world)
    await tick()
    assert _creates(world) - creates == 1
    assert len(rotator_tokens(world.emu, fresh)) == 1
    assert any("timer: 1 targets: rotated 1; 1 not due" in r.getMessage() for r in caplog.records)


async def test_timer_with_nothing_due_calls_only_key_vault(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    await post(seeded.name)
    world.emu.requests.clear()
    await tick()
    assert world.emu.requests.count("databricks") == 0
    assert world.emu.requests.count("prequel") == 0


# --- Event Grid ---------------------------------------------------------------------------


async def _bootstrapped(world: World, app) -> tuple[SeededTarget, str]:  # type: ignore[no-untyped-def]
    seeded = world.target()
    app(seeded)
    assert (await post(seeded.name)).status == 200
    latest = world.emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    return seeded, latest.version


async def test_near_expiry_rotates_once_even_when_delivered_twice(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    _make_due(world, seeded)  # the event fires 30 days before exp: the target is due then
    creates = _creates(world)
    event = grid_event(NEAR, _event_data(world, seeded, version), subject=seeded.secret_name)
    await deliver(event)
    assert _creates(world) - creates == 1
    await deliver(event)  # a duplicate delivery: the version was already replaced
    assert _creates(world) - creates == 1
    assert violations(world.emu, seeded) == []


async def test_expired_as_cloud_event_with_camel_case_fields_rotates(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    creates = _creates(world)
    data = {
        k[0].lower() + k[1:]: v
        for k, v in _event_data(world, seeded, version, EXP="1900000000").items()
    }
    event = func.CloudEvent(
        id="c1",
        source="/vaults/x",
        type="Microsoft.KeyVault.SecretExpired",
        specversion="1.0",
        data=data,
        subject=seeded.secret_name,
    )
    await deliver(event)
    assert _creates(world) - creates == 1


def _published_sample(world: World, seeded: SeededTarget, version: str) -> dict[str, object]:
    """Microsoft's Key Vault event sample (Event Grid schema page), pointed at *seeded*.

    Its quirks are kept as published: a field name with a trailing space, a version with a
    leading space, camelCase names and NBF/EXP as strings.
    """
    vault = world.emu.keyvault_url.removeprefix("https://")
    return {
        "Id": f"https://{vault}/secrets/{seeded.secret_name}/{version}",
        "vaultName": vault.split(":")[0],
        "objectType": "Secret",
        "objectName ": seeded.secret_name,
        "version": f" {version}",
        "nbf": "1559081980",
        "exp": "1559082102",
    }


async def test_microsofts_published_event_sample_rotates(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    _make_due(world, seeded)
    creates = _creates(world)
    data = _published_sample(world, seeded, version.upper())
    await deliver(grid_event(NEAR, data, subject=seeded.secret_name))
    assert _creates(world) - creates == 1
    await deliver(grid_event(NEAR, data, subject=seeded.secret_name))  # redelivered: stale now
    assert _creates(world) - creates == 1


async def test_an_iso_exp_field_does_not_drop_a_real_event(world: World, app) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    _make_due(world, seeded)
    creates = _creates(world)
    data = _event_data(world, seeded, version, EXP="2026-12-01T00:00:00Z", NBF="yesterday")
    await deliver(grid_event(NEAR, data))
    assert _creates(world) - creates == 1


async def test_near_expiry_waits_for_rotate_before_days_but_expired_forces(
    world: World, app
) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)  # 90 days left; rotate when < 30
    creates = _creates(world)
    await deliver(grid_event(NEAR, _event_data(world, seeded, version)))
    assert _creates(world) == creates  # near expiry is not when the target asked to rotate
    await deliver(
        grid_event("Microsoft.KeyVault.SecretExpired", _event_data(world, seeded, version))
    )
    assert _creates(world) - creates == 1  # an expired latest PAT is replaced at once
    assert violations(world.emu, seeded) == []


def _make_due(world: World, seeded: SeededTarget) -> None:
    """Move the latest version's expiry to one day from now (inside rotate_before_days)."""
    world.emu.keyvault.update(seeded.secret_name, None, {"exp": int(time.time()) + 86_400})


@pytest.mark.parametrize("shape", ["empty-version", "no-version-field", "no-id"])
@pytest.mark.parametrize("due", [True, False], ids=["due", "not-due"])
async def test_an_event_without_a_version_rotates_only_when_due_and_only_once(
    world: World, app, shape: str, due: bool, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    if due:
        _make_due(world, seeded)
    data = _event_data(world, seeded, version, Version="")
    data["Id"] = f"{world.emu.keyvault_url}/secrets/{seeded.secret_name}"
    if shape == "no-version-field":
        del data["Version"]
    elif shape == "no-id":
        del data["Id"]
        data["VaultName"] = world.emu.keyvault_url.removeprefix("https://").split(".")[0]
    creates = _creates(world)
    event = grid_event(NEAR, data, subject=seeded.secret_name)
    await deliver(event)
    await deliver(event)  # Event Grid delivers at least once
    if shape == "no-id":  # a loopback vault is never matched by its name alone
        assert _creates(world) == creates
        assert any("from another vault" in r.getMessage() for r in caplog.records)
        return
    assert _creates(world) - creates == (1 if due else 0)
    assert violations(world.emu, seeded) == []


async def test_a_bare_vault_name_never_matches_a_loopback_vault(world: World, app) -> None:  # type: ignore[no-untyped-def]
    from rotation.app import key_vault_event

    seeded, version = await _bootstrapped(world, app)
    _make_due(world, seeded)
    creates = _creates(world)
    data = {"VaultName": "127", "ObjectName": seeded.secret_name, "Version": version}
    answer = await key_vault_event(event_id="e", event_type=NEAR, subject="", data=data)
    assert "another vault" in answer
    assert _creates(world) == creates


async def test_unreachable_storage_is_503_over_http_and_redelivered_for_events(
    world: World, app, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import socket

    seeded = world.target()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app(seeded, storage=False)
    monkeypatch.setenv(
        "AzureWebJobsStorage",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )
    answer = _seen(await post(seeded.name))
    assert answer.status == 503
    assert "AzureWebJobsStorage" in answer.body["error"]
    assert "start Azurite" in answer.body["error"]
    data = _event_data(world, seeded, "0" * 32)
    with pytest.raises(errors.AppStorageError):
        await deliver(grid_event(NEAR, data))
    assert rotator_tokens(world.emu, seeded) == []


@pytest.mark.parametrize(
    "case", ["new-version", "foreign-vault", "unmanaged-secret", "other-type", "not-a-secret"]
)
async def test_irrelevant_events_are_acknowledged_and_ignored(world: World, app, case: str) -> None:  # type: ignore[no-untyped-def]
    seeded, version = await _bootstrapped(world, app)
    creates = _creates(world)
    data = _event_data(world, seeded, version)
    kind = NEAR
    if case == "new-version":
        kind = "Microsoft.KeyVault.SecretNewVersionCreated"
    elif case == "foreign-vault":
        data["Id"] = f"https://other.vault.azure.net/secrets/{seeded.secret_name}/{version}"
    elif case == "unmanaged-secret":
        data["Id"] = f"{world.emu.keyvault_url}/secrets/someone-elses/{version}"
        data["ObjectName"] = "someone-elses"
    elif case == "other-type":
        kind = "Microsoft.Storage.BlobCreated"
    else:
        data["ObjectType"] = "Key"
    await deliver(grid_event(kind, data))
    assert _creates(world) == creates


@pytest.mark.parametrize(
    "data",
    [
        "not json at all",
        [1, 2],
        {"Id": 5},
        {},
        None,
        {"ObjectName": True},
    ],
    ids=["text", "list", "id-number", "empty", "none", "name-bool"],
)
async def test_garbage_events_are_acknowledged_with_a_log_line(
    world: World, app, data: object, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    await _bootstrapped(world, app)
    creates = _creates(world)
    event = func.EventGridEvent(
        id="g",
        data=data,
        topic="t",
        subject="",
        event_type=NEAR,
        event_time=None,
        data_version="1",  # type: ignore[arg-type]
    )
    await deliver(event)
    assert _creates(world) == creates
    assert any("ignored a malformed event" in r.getMessage() for r in caplog.records)


# --- the lock -----------------------------------------------------------------------------


async def test_ten_overlapping_triggers_mint_exactly_one_pat(
    world: World, app, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    person = emu.databricks.get(seeded.human_token_id)
    assert person is not None
    emu.keyvault.set_secret(seeded.secret_name, person.value)  # made by hand: no expiry → due
    app(seeded)
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    creates = _creates(world)
    hold = threading.Event()
    fault = emu.faults.add("databricks", "POST", CREATE, mode="hold", hold=hold)
    first = asyncio.create_task(post(seeded.name, b'{"force": true}'))
    assert await asyncio.to_thread(fault.arrived.wait, 30)
    event = grid_event(NEAR, _event_data(world, seeded, latest.version))
    others = [post(seeded.name, b'{"force": true}') for _ in range(3)]
    others += [tick() for _ in range(3)] + [deliver(event) for _ in range(3)]
    results = await asyncio.gather(*others, return_exceptions=True)
    hold.set()
    winner = await first
    assert winner.status == 200
    assert _creates(world) - creates == 1
    assert [r.status for r in results[:3]] == [409, 409, 409]  # type: ignore[union-attr]
    assert results[3:6] == [None, None, None]  # the timer raises only for failed targets
    busy_ticks = [
        r for r in caplog.records if r.getMessage().startswith("timer: 1 targets: busy 1")
    ]
    assert len(busy_ticks) == 3  # each timer run found the target busy, and said so
    assert all(isinstance(r, RuntimeError) and "busy" in str(r) for r in results[6:])
    assert violations(emu, seeded) == []


async def test_a_lost_lease_stops_the_rotation_at_the_next_step(world: World, app, azurite) -> None:  # type: ignore[no-untyped-def]
    emu = world.emu
    seeded = world.target()
    app(seeded)
    hold = threading.Event()
    fault = emu.faults.add(
        "prequel", "PATCH", f"/sources/{seeded.consumers[0].id}", mode="hold", hold=hold
    )
    run = asyncio.create_task(post(seeded.name))
    assert await asyncio.to_thread(fault.arrived.wait, 30)
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        blob = blobs.get_blob_client("pat-rotator-locks", f"{seeded.name}.lock")
        await BlobLeaseClient(blob).break_lease(lease_break_period=0)
    hold.set()
    stopped = _seen(await run)
    assert stopped.status == 502
    assert stopped.body["error"]["kind"] == "lock-lost"
    assert stopped.body["error"]["step"] == Step.CONFIRM
    assert violations(emu, seeded, settled=False) == []
    resumed = await post(seeded.name)
    assert resumed.body["outcome"] == "rotated"
    assert resumed.body["token_id"] == stopped.body["token_id"]
    assert violations(emu, seeded) == []


# --- fan-out ------------------------------------------------------------------------------


async def test_fan_out_enqueues_one_message_per_due_target(world: World, app, azurite) -> None:  # type: ignore[no-untyped-def]
    targets = [world.target() for _ in range(3)]
    queue_name = f"fanout-{targets[0].name}"
    app(*targets, ROTATION_FANOUT_THRESHOLD="2", ROTATION_QUEUE=queue_name)
    creates = _creates(world)
    await tick()
    assert _creates(world) == creates  # nothing rotated inline
    async with QueueClient.from_connection_string(
        azurite.connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
    ) as queue:
        messages = [m async for m in queue.receive_messages(max_messages=32)]
        assert sorted(json.loads(m.content)["target"] for m in messages) == sorted(
            t.name for t in targets
        )
        world.emu.requests.clear()
        creates = 0
        for m in messages:
            msg = QueueMessage(id=m.id, body=m.content.encode(), dequeue_count=m.dequeue_count)
            await _function("rotate_queued")(msg)
            await queue.delete_message(m)
    assert _creates(world) - creates == 3
    assert world.emu.requests.count("keyvault", "GET", "/secrets") == 0  # no listing per message
    for t in targets:
        assert violations(world.emu, t) == []


async def test_a_failing_queue_message_raises_and_says_it_goes_to_poison(
    world: World, app, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    seeded = world.target()
    world.emu.databricks.remove_from_workspace(seeded.application_id)
    app(seeded)
    msg = QueueMessage(id="m", body=json.dumps({"target": seeded.name}).encode(), dequeue_count=5)
    with pytest.raises(RuntimeError, match="failed at attempt 5"):
        await _function("rotate_queued")(msg)
    assert any("poison queue" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="poison queue"):
        await _function("rotate_queued")(QueueMessage(id="m2", body=b"garbage", dequeue_count=1))


def _function(name: str):  # type: ignore[no-untyped-def]
    from tests.functions import function

    return function(name)


async def test_even_under_the_blob_lock_a_young_orphan_waits_for_a_later_run(
    world: World, app, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from emulators.scenario import config_table
    from tests.world import crash_leftover

    seeded = world.target()
    app(seeded)
    monkeypatch.setenv(
        "ROTATION_CONFIG", json.dumps(config_table(world.emu, seeded, orphan_min_age_minutes=15))
    )
    assert (await post(seeded.name)).status == 200
    orphan = crash_leftover(world.emu, seeded, "crashed")
    answer = _seen(await post(seeded.name, b'{"force": true}'))
    # A run that lost its lease may be between this PAT's mint and its store: not swept yet.
    assert answer.body["swept"] == []
    assert answer.body["deferred"] == [orphan.token_id]  # said, and left for a later run
    assert world.emu.databricks.is_live(orphan.value)
    latest = world.emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert "crashed" in latest.tags["minting"].split()  # a later run still knows it is ours
    assert violations(world.emu, seeded, settled=False) == []


async def test_http_rotate_with_key_vault_unreachable_is_503_as_status_is(
    world: World, app, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import socket

    from emulators.scenario import config_table

    seeded = world.target()
    app(seeded)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}"
    table = config_table(world.emu, seeded) | {"key_vault_url": dead}
    monkeypatch.setenv("ROTATION_CONFIG", json.dumps(table))
    answer = _seen(await post(seeded.name, b'{"force": true}'))
    assert answer.status == 503
    assert answer.body["error"]["kind"] == "secret-store"
    assert dead in answer.body["error"]["message"]
    assert _seen(await get_status()).status == 503
    assert rotator_tokens(world.emu, seeded) == []


@pytest.mark.parametrize(
    ("env", "blob", "queue"),
    [
        (  # a sovereign cloud / Azurite: the service URIs as given, never the public suffix
            {
                "AzureWebJobsStorage__accountName": "acct",
                "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.chinacloudapi.cn",
                "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.chinacloudapi.cn",
            },
            "https://acct.blob.core.chinacloudapi.cn",
            "https://acct.queue.core.chinacloudapi.cn",
        ),
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://127.0.0.1:10000/devstoreaccount1",
                "AzureWebJobsStorage__queueServiceUri": "https://127.0.0.1:10001/devstoreaccount1",
            },
            "https://127.0.0.1:10000/devstoreaccount1",
            "https://127.0.0.1:10001/devstoreaccount1",
        ),
        (
            {"AzureWebJobsStorage__accountName": "acct"},
            "https://acct.blob.core.windows.net",
            "https://acct.queue.core.windows.net",
        ),
    ],
)
async def test_identity_based_storage_uses_the_service_uris_when_set(
    world: World, env: dict[str, str], blob: str, queue: str
) -> None:
    from rotation.app.storage import _storage_clients
    from rotation.config import AppSettings

    settings = AppSettings.from_env(env)
    blobs, queued = _storage_clients(settings, world.credential)
    async with blobs, queued:
        assert blobs.url.rstrip("/") == blob
        assert queued.url.startswith(f"{queue}/")
