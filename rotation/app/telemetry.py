"""One structured record per target per run, for Application Insights queries and alerts.

Each record is a log record of the ``rotation.app.telemetry`` logger whose message is
:data:`RUN_EVENT` and whose attributes are the :class:`Field` names (ids, times and counts —
never a value). With ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set, :func:`configure` exports that
logger through OpenTelemetry's Azure Monitor exporter, so each record lands in the ``traces``
table with the fields as ``customDimensions``. The timer also writes :data:`TIMER_EVENT` once per
run: the heartbeat an alert watches. The field names here are the one source of truth: the
alert rules in ``infra/`` are checked against them by the tests.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from typing import TYPE_CHECKING

from rotation.units import DAY

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rotation.engine import TargetReport

__all__ = ["RUN_EVENT", "TIMER_EVENT", "Field", "configure", "emit_runs", "emit_timer", "record"]

RUN_EVENT = "pat-rotator.run"
TIMER_EVENT = "pat-rotator.timer"
CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"

log = logging.getLogger("rotation.telemetry")


class Field(StrEnum):
    """The attributes of a :data:`RUN_EVENT` record (``customDimensions`` in App Insights).

    Names, not secrets: hence the S105/B105 waivers on the token id fields.
    """

    TARGET = "target"
    OUTCOME = "outcome"
    REASON = "reason"
    ERROR_KIND = "error_kind"
    ERROR_STEP = "error_step"
    PAT_DAYS_LEFT = "pat_days_left"
    CREDENTIAL_DAYS_LEFT = "credential_days_left"
    CREDENTIAL_RESULT = "credential_result"
    """The credential phase: rotated, not-due, deferred, off, tidied, failed: <kind>."""
    CONSUMERS = "consumers"
    """Each consumer's part: ``<name>=confirmed|restored|failed|pushed|tested|untouched``, comma
    separated (at most 512 characters)."""
    ROTATION_ID = "rotation_id"
    TOKEN_ID = "token_id"  # noqa: S105 # nosec B105
    PREVIOUS_TOKEN_ID = "previous_token_id"  # noqa: S105 # nosec B105
    TRIGGER = "trigger"


def _days(epoch: float | None, now: float) -> float | None:
    return None if epoch is None else round((epoch - now) / DAY, 2)


def record(report: TargetReport, now: float, trigger: str) -> dict[str, str | float]:
    """Return the telemetry attributes of one target's run (absent values are left out)."""
    error = report.error
    values: dict[Field, str | float | None] = {
        Field.TARGET: report.target,
        Field.OUTCOME: report.outcome.value,
        Field.REASON: report.reason[:256],
        Field.ERROR_KIND: error.kind if error else None,
        Field.ERROR_STEP: error.step.value if error else None,
        Field.PAT_DAYS_LEFT: _days(report.expires_on, now),
        Field.CREDENTIAL_DAYS_LEFT: _days(report.credential_expires_on, now),
        Field.CREDENTIAL_RESULT: report.credential_result,
        Field.CONSUMERS: _consumers(report),
        Field.ROTATION_ID: report.rotation_id,
        Field.TOKEN_ID: report.token_id,
        Field.PREVIOUS_TOKEN_ID: report.previous_token_id,
        Field.TRIGGER: trigger,
    }
    return {k.value: v for k, v in values.items() if v is not None}


def _consumers(report: TargetReport) -> str | None:
    """Return each consumer's part in the run, in one line (None: the run touched none)."""
    parts = []
    for c in report.consumers:
        state = "untouched"
        for flag, word in (
            (c.tested, "tested"),
            (c.pushed, "pushed"),
            (c.confirmed, "confirmed"),
            (c.error is not None, "failed"),
            (c.restored, "restored"),
        ):
            state = word if flag else state
        parts.append(f"{c.name}={state}")
    return ",".join(parts)[:512] or None


def emit_runs(reports: Iterable[TargetReport], now: float, trigger: str) -> None:
    """Write one :data:`RUN_EVENT` record per report."""
    for report in reports:
        log.info(RUN_EVENT, extra=record(report, now, trigger))


def emit_timer(targets: int, due: int) -> None:
    """Write the timer's heartbeat: it ran, over how many targets, how many needed work."""
    log.info(TIMER_EVENT, extra={"targets": targets, "due": due})


_configured: list[bool] = []


def configure(env: dict[str, str] | None = None) -> bool:
    """Export ``rotation.app.telemetry`` to Application Insights when a connection string is set.

    Idempotent; returns whether an exporter is attached. Imports OpenTelemetry only here, when a
    trigger first runs, so that indexing the Function App stays cheap.
    """
    if _configured:
        return _configured[0]
    connection = (env if env is not None else os.environ).get(CONNECTION_SETTING, "").strip()
    if not connection:
        _configured.append(False)
        return False
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter  # noqa: PLC0415
    from opentelemetry.instrumentation.logging.handler import LoggingHandler  # noqa: PLC0415
    from opentelemetry.sdk._logs import LoggerProvider  # noqa: PLC0415
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415

    provider = LoggerProvider()
    exporter = AzureMonitorLogExporter(connection_string=connection)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    log.setLevel(logging.INFO)
    _configured.append(True)
    return True
