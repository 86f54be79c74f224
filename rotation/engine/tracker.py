"""The tracker every step of a run reports through.

A :class:`Tracker` is the one place a step starts and ends: ``enter`` checks the lock's lease
(a lost lease stops the run before its next write) and records where the run is; ``done``
appends the step to the report and logs it. The engine and the consumers both use it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rotation import errors
from rotation.engine.report import ErrorInfo, Outcome, Step
from rotation.logs import REPORTED

if TYPE_CHECKING:
    from rotation.backends import Lease
    from rotation.engine.report import TargetReport

__all__ = ["Tracker"]

log = logging.getLogger("rotation")


class Tracker:
    """Where one target's run is: lease checks at step boundaries, the report's steps, logs.

    *progress* is shared with the caller (target → step), so that an interrupt can say where
    each running target stopped.
    """

    def __init__(
        self, report: TargetReport, progress: dict[str, str], lease: Lease | None = None
    ) -> None:
        self.report = report
        self.step = Step.LOAD
        self.lease = lease
        self._progress = progress
        progress[report.target] = self.step

    async def enter(self, step: Step, *, check_lease: bool = True) -> None:
        """Start *step*; first check the lock is still held (unless *check_lease* is False)."""
        self.step = step
        self._progress[self.report.target] = step
        if check_lease and self.lease is not None:
            await self.lease.check()

    def done(self, step: Step, **fields: object) -> None:
        """Record *step* as completed and log it with *fields* (ids and counts, never values)."""
        self.report.steps.append(step)
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        log.info("target=%s step=%s done %s", self.report.target, step, extra)

    def fail(self, exc: errors.RotationError) -> None:
        """Record *exc* as the run's failure at the current step."""
        busy = isinstance(exc, errors.BusyError)
        self.report.outcome = Outcome.BUSY if busy else Outcome.FAILED
        self.report.error = ErrorInfo(self.step, exc.kind, str(exc), exc.transient)
        log.warning(  # the report says it too: the CLI leaves this out at its default level
            "target=%s step=%s failed kind=%s: %s",
            self.report.target,
            self.step,
            exc.kind,
            exc,
            extra={REPORTED: True},
        )

    def finish(self) -> None:
        """Forget the run in the shared progress (it ended, one way or another)."""
        self._progress.pop(self.report.target, None)
