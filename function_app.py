"""Azure Functions app (Python v2 model): triggers → ``rotation.app.triggers``; no logic of its own.

Importing this module must stay cheap (cold start): only ``azure.functions`` is imported here;
the rotation package, the Azure SDKs and httpx load when a trigger first runs.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(status: int, body: dict[str, object]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _redacting_logs() -> None:
    from rotation import logs  # noqa: PLC0415

    logs.install()


@app.timer_trigger(schedule="%ROTATION_SCHEDULE%", arg_name="timer", use_monitor=True)
async def rotation_timer(timer: func.TimerRequest) -> None:
    """Rotate every target that is due; fan out through the queue when many are."""
    _redacting_logs()
    from rotation.app import timer_tick  # noqa: PLC0415

    await timer_tick(past_due=timer.past_due)


@app.route(route="rotations/{target}", methods=["POST"])
async def rotate_target(req: func.HttpRequest) -> func.HttpResponse:
    """Rotate one target now: ``{"force": bool, "dry_run": bool}`` → the run's report."""
    _redacting_logs()
    from rotation.app import guarded, http_rotate  # noqa: PLC0415

    target = req.route_params.get("target", "")
    return _json(*await guarded(http_rotate(target, dict(req.params), req.get_body())))


@app.route(route="rotations/{target}/doctor", methods=["GET"])
async def doctor_target(req: func.HttpRequest) -> func.HttpResponse:
    """Check, read-only, that one target can rotate: ``{"ok": bool, "checks": [...]}``."""
    _redacting_logs()
    from rotation.app import guarded, http_doctor  # noqa: PLC0415

    return _json(*await guarded(http_doctor(req.route_params.get("target", ""))))


@app.route(route="rotations", methods=["GET"])
async def rotation_status(req: func.HttpRequest) -> func.HttpResponse:
    """Report every target's state (token ids, expiry, stage, last result — never a value)."""
    del req
    _redacting_logs()
    from rotation.app import guarded, http_status  # noqa: PLC0415

    return _json(*await guarded(http_status()))


@app.event_grid_trigger(arg_name="event")
async def key_vault_events(event: func.EventGridEvent) -> None:
    """Rotate a managed secret that Key Vault says is near expiry or expired."""
    _redacting_logs()
    from rotation.app import key_vault_event  # noqa: PLC0415

    fields = _event_fields(event)
    await key_vault_event(**fields)


def _event_fields(event: object) -> dict[str, object]:
    """Read an Event Grid event or a CloudEvent (the host decodes either) defensively."""
    get = getattr
    try:
        data = event.get_json() if hasattr(event, "get_json") else get(event, "data", None)
    except ValueError:
        data = None
    return {
        "event_id": get(event, "id", None),
        "event_type": get(event, "event_type", None) or get(event, "type", None),
        "subject": get(event, "subject", None),
        "data": data,
    }


@app.queue_trigger(arg_name="msg", queue_name="%ROTATION_QUEUE%", connection="AzureWebJobsStorage")
async def rotate_queued(msg: func.QueueMessage) -> None:
    """Rotate the one target a fan-out message names; failures retry, then go to poison."""
    _redacting_logs()
    from rotation.app import queued_rotation  # noqa: PLC0415

    body = msg.get_body().decode("utf-8", errors="replace")
    await queued_rotation(body, dequeue_count=msg.dequeue_count or 1)


logging.getLogger("rotation").setLevel(logging.INFO)
