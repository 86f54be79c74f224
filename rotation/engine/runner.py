"""The rotation state machine for one target: carry out the plan, one step after another.

:mod:`rotation.engine.plan` decides what a run does; the steps carry it out and decide nothing
again. Every step has one shape — a function of the run's state (:class:`~rotation.engine.run.Run`)
that checks its own precondition and returns early when it has nothing to do — so a run reads as
the tuple :func:`steps` returns::

    credentials → health → versions → prove → revoke previous (grace over, or about to be
      replaced) → sweep → clear intent → preflight → adopt pending → verify → intent → mint
      → store → verify → test → push + confirm → promote → revoke replaced
      → rotate the principal's own credential (when due, and no PAT was rotated in this run)

The steps live by the part of the run they belong to: :mod:`~rotation.engine.checks` (what is
there and whether the records can be trusted), :mod:`~rotation.engine.minting` (a new PAT, made
or adopted, stored and verified), :mod:`~rotation.engine.finishing` (consumers, promotion, what it
replaced). Every revocation goes through :mod:`~rotation.engine.revoking` and the guard.

Nothing is ever revoked on the word of a tag: *prove* checks that the latest version's tags
agree with the principal's own token list (else the run destroys nothing and puts a fresh PAT in
place, outcome ``mismatch``). Every step checks state first and is safe to re-run: a failed run
leaves a ``pending`` version that the next run adopts instead of minting again. The lock's lease
is checked at each step boundary. Logs carry target, step, rotation id and token id — never a
value.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from rotation import errors
from rotation.engine import checks, credential, finishing, minting, revoking
from rotation.engine.report import Outcome, TargetReport
from rotation.engine.run import Run
from rotation.engine.tracker import Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rotation.config import Target
    from rotation.engine.plan import Plan
    from rotation.engine.runtime import Runtime

__all__ = ["run_target", "steps"]

log = logging.getLogger("rotation")


def steps() -> tuple[Callable[[Run], Awaitable[None]], ...]:
    """Return a run's steps, in order (looked up when a run starts)."""
    return (
        checks.check_health,
        checks.load_versions,
        checks.prove,
        checks.revoke_previous_first,
        checks.sweep,
        checks.clear_intent,
        minting.preflight,
        minting.adopt_pending,
        minting.verify,
        minting.intent,
        minting.mint,
        minting.store,
        minting.verify,
        finishing.test,
        finishing.push_and_confirm,
        finishing.promote,
        finishing.revoke_replaced,
        credential.rotate_credential,
    )


def _outcome(plan: Plan) -> Outcome:
    """Return how a run that carried out *plan* without an error ended."""
    if plan.mismatch:
        return Outcome.MISMATCH
    if plan.healing:
        return Outcome.HEALED
    if plan.rotate:
        return Outcome.ROTATED
    if plan.revoke_previous_first or plan.sweep:
        return Outcome.HOUSEKEEPING
    return Outcome.HEALTHY


async def run_target(
    rt: Runtime, target: Target, *, force: bool = False, dry_run: bool = False
) -> TargetReport:
    """Run *target*'s state machine once and report; errors become the report, never raise.

    Only cancellation (Ctrl-C, the host stopping) propagates; the next run resumes.
    """
    tracker = Tracker(TargetReport(target.name), rt.progress)
    run = Run(rt, target, tracker)
    try:
        if dry_run:
            await _rehearse(run, force=force)
        else:
            async with rt.lock.hold(target.name) as lease:
                tracker.lease = lease
                try:
                    await _execute(run, force=force)
                except errors.RotationError as exc:
                    tracker.fail(exc)
                    if not isinstance(exc, errors.LockLostError):  # still ours to write
                        await run.record_failure()
    except errors.RotationError as exc:
        tracker.fail(exc)
    except asyncio.CancelledError:
        log.warning("target=%s interrupted at step=%s", target.name, tracker.step)
        raise
    except Exception as exc:  # a bug or an untranslated library error: report, don't crash
        log.exception(
            "target=%s step=%s unexpected %s", target.name, tracker.step, type(exc).__name__
        )
        tracker.fail(
            errors.RotationError(f"unexpected {type(exc).__name__}; see the logs", transient=True)
        )
    tracker.finish()
    return tracker.report


async def _execute(run: Run, *, force: bool) -> None:
    """Carry out the plan for this target."""
    await run.load(force=force)
    if run.plan.idle:
        why = await credential.wanted(run)
        if why is None:
            run.report.outcome = Outcome.NOT_DUE
            return
        run.report.reason = f"{run.report.reason}; {why}"
    async with run.credentials():
        for step in steps():
            await step(run)
    run.report.outcome = _outcome(run.plan)
    await revoking.refuse_what_the_guard_refused(run)
    await run.refuse_expiring_credential()


async def _rehearse(run: Run, *, force: bool) -> None:
    """Say what a run would do, after its read-only checks, due or not; write nothing.

    The checks: the principal's credential is read and authenticates and its tokens can be
    listed; every consumer is reachable and accepts our credentials.
    """
    await run.load(force=force)
    async with run.credentials():
        tokens = await run.issuer.list()
    log.info("target=%s dry run: %d live tokens listed", run.target.name, len(tokens))
    await run.consumers().preflight()
    if await credential.wanted(run):
        run.report.credential_result = "would-rotate"
    if run.plan.idle:
        run.report.outcome = Outcome.NOT_DUE
    else:
        rotate = run.plan.rotate
        run.report.outcome = Outcome.WOULD_ROTATE if rotate else Outcome.HOUSEKEEPING
    await run.refuse_expiring_credential()
