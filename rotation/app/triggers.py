"""What each Function App trigger does, independent of ``azure.functions`` types.

``function_app.py`` only adapts the host's objects to these coroutines, and imports this module
when a trigger first runs (indexing stays cheap). Each builds its clients from the app settings
(:func:`rotation.app.clients.open_app`), runs the rotation service and returns plain data.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from rotation import errors
from rotation.app import telemetry
from rotation.app.clients import App, open_app
from rotation.app.doctor import diagnose
from rotation.app.events import ACTIONABLE, EXPIRED, MalformedEventError, parse_event
from rotation.app.http_api import BadRequestError, parse_rotate_request
from rotation.app.service import needing_work, rotate, select, status
from rotation.backends import is_loopback
from rotation.engine import Outcome, run_target

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    from rotation.app.events import KeyVaultEvent
    from rotation.engine import Runtime, TargetReport

__all__ = [
    "guarded",
    "http_doctor",
    "http_rotate",
    "http_status",
    "key_vault_event",
    "queued_rotation",
    "require_storage",
    "summarize",
    "timer_tick",
]

log = logging.getLogger("rotation")
MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount
_UNAVAILABLE = frozenset({"secret-store", "app-storage"})  # Key Vault, AzureWebJobsStorage


def require_storage(app: App) -> None:
    """Refuse to write without the app's storage account: it holds the per-target locks (I5).

    ``AppStorageError`` (transient: the host retries a queue message, Event Grid redelivers an
    event, HTTP answers 503); nothing was written before it.
    """
    if app.storage is None:
        raise _no_storage()


def _no_storage() -> errors.AppStorageError:
    msg = (
        "The Function App does not rotate without its storage account: AzureWebJobsStorage "
        "(or AzureWebJobsStorage__accountName) is not set, and it holds the per-target locks "
        "that keep two rotations of one target apart. Set it; locally, start Azurite."
    )
    return errors.AppStorageError(msg)


def summarize(reports: list[TargetReport]) -> str:
    """Return a one-line summary such as ``3 targets: rotated 1, not-due 2``."""
    counts = Counter(r.outcome.value for r in reports)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{len(reports)} targets: {parts or 'none'}"


async def timer_tick(*, past_due: bool = False) -> str:
    """Rotate what is due; fan out through the queue when more is due than one run should do.

    Writes the timer's heartbeat and one telemetry record per target that it ran or found idle
    (idle targets cost nothing beyond the listing); fanned-out targets report from the queue.
    """
    telemetry.configure()
    async with open_app() as app:
        require_storage(app)
        for warning in app.rt.config.warnings():
            log.warning("config: %s", warning)
        listing, due = await needing_work(app.rt)
        telemetry.emit_timer(len(app.rt.config.targets), len(due))
        fan_out = app.storage is not None and len(due) > app.settings.fanout_threshold
        if fan_out and app.storage is not None:
            for target in due:
                await app.storage.queue.send_message(json.dumps({"target": target.name}))
        names = [t.name for t in app.rt.config.targets if not (fan_out and t in due)]
        reports = await rotate(app.rt, names, listing=listing) if names else []
        telemetry.emit_runs(reports, app.rt.clock(), "timer")
    if fan_out:
        summary = f"fanned out {len(due)} due targets to queue {app.settings.queue_name}"
        log.info("timer: %s (past_due=%s)", summary, past_due)
        return summary
    worked = [r for r in reports if r.outcome is not Outcome.NOT_DUE]
    idle = len(reports) - len(worked)
    summary = summarize(worked) + (f"; {idle} not due" if idle else "")
    failed = [r.target for r in worked if r.outcome is Outcome.FAILED]
    log.info("timer: %s (past_due=%s)", summary, past_due)
    if failed:
        msg = (
            f"timer: {len(failed)} target(s) failed: {', '.join(failed)}; see the log lines above."
        )
        raise RuntimeError(msg)
    return summary


async def queued_rotation(body: str, *, dequeue_count: int = 1) -> TargetReport:
    """Rotate the target one fan-out message names; raise so the host retries, then poisons.

    It reads only that target's secret (no vault-wide listing per message).
    """
    try:
        message = json.loads(body)
        name = message["target"]
        if not isinstance(name, str):
            raise TypeError  # noqa: TRY301
    except (ValueError, KeyError, TypeError):
        msg = (
            f"queue message is not {{'target': NAME}} (attempt {dequeue_count}); "
            "it will go to the poison queue"
        )
        log.error(msg)
        raise ValueError(msg) from None
    telemetry.configure()
    async with open_app() as app:
        require_storage(app)
        (target,) = select(app.rt.config, [name])
        report = await run_target(app.rt, target)
        telemetry.emit_runs([report], app.rt.clock(), "queue")
    if report.ok:
        return report
    reason = report.error.message if report.error else report.outcome.value
    final = (
        " — giving up: the host moves it to the poison queue"
        if dequeue_count >= MAX_DEQUEUE
        else ""
    )
    log.error("queue: target=%s attempt %d failed: %s%s", name, dequeue_count, reason, final)
    msg = f"rotation of {name} failed at attempt {dequeue_count}: {reason}"
    raise RuntimeError(msg)


async def key_vault_event(
    *, event_id: object, event_type: object, subject: object, data: object
) -> str:
    """Rotate the target whose secret is near expiry or expired; say what was done.

    Malformed and irrelevant events are acknowledged (returned) with a log line; transient
    failures and a busy target raise, so that Event Grid delivers the event again.
    """
    try:
        event = parse_event(event_id=event_id, event_type=event_type, subject=subject, data=data)
    except MalformedEventError as exc:
        return _ack(f"ignored a malformed event: {exc}")
    if event.event_type not in ACTIONABLE:
        return _ack(f"ignored {event.event_type} for secret {event.secret_name}")
    telemetry.configure()
    async with open_app() as app:
        return await _on_expiry(app.rt, event, locked=app.storage is not None)


async def _on_expiry(rt: Runtime, event: KeyVaultEvent, *, locked: bool = True) -> str:
    """Rotate the target an expiry event names: forced when its latest PAT expired, else if due.

    ``SecretExpired`` for the latest version is Key Vault's word that this PAT is dead: rotate
    now. An event naming an older version is stale (already replaced). Any other event —
    ``SecretNearExpiry``, or one naming no version — is a reason to look: the target's own plan
    decides, so a redelivered event never rotates twice and no event rotates earlier than
    ``rotate_before_days`` asks. Without the app's storage (*locked* False) an event that
    would run the target raises instead (redelivered): there is no writer without a lock.
    """
    if not _same_vault(rt.config.key_vault_url, event):
        return _ack(f"ignored an event from another vault ({event.vault_host or event.vault_name})")
    target = next(
        (t for t in rt.config.targets if t.secret_name.lower() == event.secret_name.lower()), None
    )
    if target is None:
        return _ack(f"ignored an event for secret {event.secret_name}, which no target manages")
    if event.version is not None:
        found = await rt.store.latest(target.secret_name)
        if found is None or found[0].version.lower() != event.version:
            return _ack(f"ignored {event.event_type} for {target.name}: version already replaced")
    # Only an expired latest PAT forces a rotation. SecretNearExpiry fires 30 days before `exp`,
    # which is not when the target asked to rotate (rotate_before_days), and with a lifetime of
    # 30 days or less every new version would be "near expiry" at once: the plan decides.
    force = event.event_type == EXPIRED and event.version is not None
    if not locked:
        raise _no_storage()
    report = await run_target(rt, target, force=force)
    telemetry.emit_runs([report], rt.clock(), "event")
    if report.outcome is Outcome.BUSY or (report.error and report.error.transient):
        msg = f"event for {target.name}: {report.outcome.value}; Event Grid will deliver it again"
        raise RuntimeError(msg)
    why = "" if force else f" ({report.reason})"
    return _ack(f"event {event.event_type} for {target.name}: {report.outcome.value}{why}")


def _same_vault(vault_url: str, event: KeyVaultEvent) -> bool:
    """Return whether *event* is about the vault at *vault_url* (never a loopback one by name)."""
    vault = vault_url.removeprefix("https://").split("/")[0].lower()
    if event.vault_host:
        return event.vault_host == vault
    return event.vault_name == vault.split(".")[0] and not is_loopback(vault_url)


def _ack(message: str) -> str:
    log.info("event: %s", message)
    return message


async def http_rotate(
    target: str, params: Mapping[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    """Handle ``POST /api/rotations/{target}``: (status code, JSON body)."""
    try:
        options = parse_rotate_request(params, body)
    except BadRequestError as exc:
        return 400, {"error": str(exc)}
    telemetry.configure()
    async with open_app() as app:
        found = app.rt.config.target(target)
        if found is None:
            known = [t.name for t in app.rt.config.targets]
            return 404, {"error": f"unknown target {target[:64]!r}", "known_targets": known}
        if not options.dry_run:  # a dry run writes nothing: it needs no lock
            require_storage(app)
        report = await run_target(app.rt, found, force=options.force, dry_run=options.dry_run)
        if not options.dry_run:
            telemetry.emit_runs([report], app.rt.clock(), "http")
    status = {Outcome.BUSY: 409, Outcome.FAILED: 502}.get(report.outcome, 200)
    if report.error and report.error.transient and report.error.kind in _UNAVAILABLE:
        status = 503  # as GET answers: the rotator's own services are down, not the target
    return status, report.to_json()


async def http_doctor(target: str) -> tuple[int, dict[str, Any]]:
    """Handle ``GET /api/rotations/{target}/doctor``: the read-only checks, ``ok`` if all pass.

    Admin checks use the target's ``admin_token_secret_name`` (the app has no admin login).
    """
    async with open_app(locking=False) as app:
        found = app.rt.config.target(target)
        if found is None:
            known = [t.name for t in app.rt.config.targets]
            return 404, {"error": f"unknown target {target[:64]!r}", "known_targets": known}
        checks = await diagnose(app.rt, found, admin=None)
    ok = not any(c.ok is False for c in checks)
    return 200, {"ok": ok, "checks": [c.to_json() for c in checks]}


async def http_status() -> tuple[int, dict[str, Any]]:
    """Handle ``GET /api/rotations``: every target's status (never a value)."""
    async with open_app() as app:
        rows = await status(app.rt)
    return 200, {"targets": [row.to_json() for row in rows]}


async def guarded(call: Awaitable[tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
    """Await an HTTP handler; map configuration and service errors to clear 4xx/5xx bodies."""
    try:
        return await call
    except errors.ConfigError as exc:
        log.error("http: the app's configuration is invalid: %s", exc)
        return 503, {"error": "the rotator's configuration is invalid; see the function's logs"}
    except errors.RotationError as exc:
        log.error("http: %s", exc)
        return 503, {"error": str(exc), "transient": exc.transient}
    except Exception:
        log.exception("http: unexpected error")
        return 500, {"error": "internal error; see the function's logs"}
