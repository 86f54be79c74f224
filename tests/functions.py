"""Call the Function App's functions directly, as the host would, with the app settings set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from emulators.scenario import config_table, rotator_env

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget

_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def function(name: str) -> Callable[..., Any]:
    """Return the user function *name* of ``function_app.app`` (indexed once per process)."""
    if not _FUNCTIONS:
        from function_app import app

        _FUNCTIONS.update(
            {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
        )
    return _FUNCTIONS[name]


def configure(
    monkeypatch: pytest.MonkeyPatch,
    emu: Emulators,
    storage: str | None,
    *seeded: SeededTarget,
    **settings: str,
) -> None:
    """Set the app settings the Function App reads, pointing at the emulators and Azurite."""
    env = rotator_env(emu, json.dumps(config_table(emu, *seeded))) | settings
    if storage:
        env["AzureWebJobsStorage"] = storage
    else:
        monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@dataclass
class Http:
    """The HTTP API's answer."""

    status: int
    body: dict[str, Any]


async def post(target: str, body: bytes = b"", params: dict[str, str] | None = None) -> Http:
    """POST /api/rotations/{target}."""
    req = func.HttpRequest(
        "POST",
        f"/api/rotations/{target}",
        route_params={"target": target},
        params=params or {},
        body=body,
    )
    resp = await function("rotate_target")(req)
    return Http(resp.status_code, json.loads(resp.get_body()))


async def get_status() -> Http:
    """GET /api/rotations."""
    resp = await function("rotation_status")(func.HttpRequest("GET", "/api/rotations", body=b""))
    return Http(resp.status_code, json.loads(resp.get_body()))


async def tick(*, past_due: bool = False) -> None:
    """Fire the timer."""
    await function("rotation_timer")(TimerRequest(past_due=past_due))


def grid_event(event_type: str, data: dict[str, Any], subject: str = "") -> func.EventGridEvent:
    """Build an Event Grid schema event."""
    return func.EventGridEvent(
        id="evt-" + event_type[-8:],
        data=data,
        topic="/subscriptions/x/vaults/v",
        subject=subject,
        event_type=event_type,
        event_time=None,
        data_version="1",
    )


async def deliver(event: object) -> None:
    """Deliver one event to the Event Grid function."""
    await function("key_vault_events")(event)
