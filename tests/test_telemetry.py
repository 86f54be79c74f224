"""Telemetry: one record per target per run, with the fields the alert rules query."""

from __future__ import annotations

import logging
import time

import pytest

from rotation.app import RUN_EVENT, TIMER_EVENT, Field, telemetry
from tests.functions import post, tick
from tests.world import World


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "rotation.telemetry" and r.msg == message]


async def test_the_timer_writes_a_heartbeat_and_one_record_per_target(
    world: World,
    app,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rotation.telemetry")
    fresh, done = world.target(), world.target()
    app(fresh, done)
    await post(done.name)
    caplog.clear()
    await tick()
    (beat,) = _records(caplog, TIMER_EVENT)
    assert (beat.targets, beat.due) == (2, 1)  # type: ignore[attr-defined]
    runs = {r.target: r for r in _records(caplog, RUN_EVENT)}  # type: ignore[attr-defined]
    assert set(runs) == {fresh.name, done.name}
    rotated, idle = runs[fresh.name], runs[done.name]
    assert rotated.outcome == "rotated"  # type: ignore[attr-defined]
    assert rotated.trigger == "timer"  # type: ignore[attr-defined]
    latest = world.emu.keyvault.latest(fresh.secret_name)
    assert latest is not None
    assert latest.exp is not None
    expected = (latest.exp - time.time()) / 86_400  # the app's clock is the real one
    assert abs(rotated.pat_days_left - expected) < 0.1  # type: ignore[attr-defined]
    assert rotated.token_id  # type: ignore[attr-defined]
    (consumer,) = fresh.consumers
    assert rotated.consumers == f"{consumer.kind}:{consumer.id}=confirmed"  # type: ignore[attr-defined]
    assert idle.outcome == "not-due"  # type: ignore[attr-defined]
    assert not hasattr(idle, Field.CONSUMERS)  # a run that touched no consumer
    assert not hasattr(idle, Field.ERROR_KIND)  # absent values are left out


async def test_a_failed_http_rotation_records_its_error(
    world: World,
    app,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rotation.telemetry")
    seeded = world.target()
    world.emu.databricks.remove_from_workspace(seeded.application_id)
    app(seeded)
    answer = await post(seeded.name)
    assert answer.status == 502
    (run,) = _records(caplog, RUN_EVENT)
    assert run.outcome == "failed"  # type: ignore[attr-defined]
    assert run.error_kind == answer.body["error"]["kind"]  # type: ignore[attr-defined]
    assert run.error_step == answer.body["error"]["step"]  # type: ignore[attr-defined]
    assert run.trigger == "http"  # type: ignore[attr-defined]


async def test_a_consumer_given_the_previous_pat_back_is_recorded_as_restored(
    world: World,
    app,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rotation.telemetry")
    seeded = world.target(consumers=("prequel-source", "fivetran-destination"))
    app(seeded)
    assert (await post(seeded.name)).status == 200
    caplog.clear()
    world.emu.faults.add("fivetran", "POST", "/v1/destinations/[^/]+/test", status=400, times=-1)
    answer = await post(seeded.name, b'{"force": true}')
    assert answer.status == 502, answer.body
    (run,) = _records(caplog, RUN_EVENT)
    prequel, fivetran = (f"{c.kind}:{c.id}" for c in seeded.consumers)
    assert run.consumers == f"{prequel}=confirmed,{fivetran}=restored"  # type: ignore[attr-defined]


def test_the_exporter_is_attached_only_with_a_connection_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "_configured", [])
    assert telemetry.configure({}) is False
    monkeypatch.setattr(telemetry, "_configured", [])
    logger = logging.getLogger("rotation.telemetry")
    before = list(logger.handlers)
    try:
        connection = (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=https://127.0.0.1:9/"
        )
        assert telemetry.configure({telemetry.CONNECTION_SETTING: connection}) is True
        added = [h for h in logger.handlers if h not in before]
        assert [type(h).__name__ for h in added] == ["LoggingHandler"]
        assert telemetry.configure({}) is True  # idempotent: configured once per process
    finally:
        for handler in logger.handlers:
            if handler not in before:
                logger.removeHandler(handler)
