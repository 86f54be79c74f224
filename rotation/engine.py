"""The rotation state machine for one target: carry out the plan, one step after another.

:mod:`rotation.plan` decides what a run does; this module does it and decides nothing again.
Every step has one shape — a method without arguments that checks its own precondition and
returns early when it has nothing to do — so a run reads as the tuple in :meth:`_Rotation.execute`::

    credentials → revoke previous (grace over, or about to be replaced) → sweep → clear intent
      → preflight → adopt pending → verify → intent → mint → store → verify
      → test → push + confirm → promote → revoke replaced

Every step checks state first and is safe to re-run: a failed run leaves a ``pending`` version
that the next run adopts instead of minting again (verified once, in the verify step). The
lock's lease is checked at each step boundary. Logs carry target, step, rotation id and token
id — never a value.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING

from rotation import errors
from rotation.auth import StaticBearerAuth
from rotation.plan import HEAL_REASON, Plan, heal
from rotation.report import Outcome, Step, TargetReport, format_time
from rotation.run import Run, best_effort, bootstrap_note, same_principal
from rotation.state import Stage, Tag, comment_for, current_version, version_with_token
from rotation.sweep import sweep_orphans
from rotation.tracker import Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rotation.config import Target
    from rotation.runtime import Runtime

__all__ = ["run_target"]

log = logging.getLogger("rotation")


def _may_call_scim(scopes: tuple[str, ...] | None) -> bool:
    """Return whether a PAT with *scopes* may call SCIM ``Me`` (an unscoped PAT may)."""
    return scopes is None or "scim" in scopes


def _outcome(plan: Plan) -> Outcome:
    """Return how a run that carried out *plan* without an error ended."""
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
    run = _Rotation(rt, target, tracker)
    try:
        if dry_run:
            await run.dry_run(force=force)
        else:
            async with rt.lock.hold(target.name) as lease:
                tracker.lease = lease
                try:
                    await run.execute(force=force)
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


class _Rotation(Run):
    """One run of one target, as the steps the plan calls for."""

    # --- the run ----------------------------------------------------------------------------

    async def execute(self, *, force: bool) -> None:
        """Carry out the plan for this target."""
        await self.load(force=force)
        if self.plan.idle:
            self.report.outcome = Outcome.NOT_DUE
            return
        async with self.credentials():
            steps: tuple[Callable[[], Awaitable[None]], ...] = (
                self.check_health,
                self.load_versions,
                self.revoke_previous_first,
                self.sweep,
                self.clear_intent,
                self.preflight,
                self.adopt_pending,
                self.verify,
                self.intent,
                self.mint,
                self.store,
                self.verify,
                self.test,
                self.push_and_confirm,
                self.promote,
                self.revoke_replaced,
            )
            for step in steps:
                await step()
        self.report.outcome = _outcome(self.plan)
        await self.refuse_expiring_credential()

    async def dry_run(self, *, force: bool) -> None:
        """Say what a run would do, after its read-only checks, due or not; write nothing.

        The checks: the principal's credential is read and authenticates and its tokens can be
        listed; every consumer is reachable and accepts our credentials.
        """
        await self.load(force=force)
        async with self.credentials():
            tokens = await self.issuer.list()
        log.info("target=%s dry run: %d live tokens listed", self.target.name, len(tokens))
        await self.consumers().preflight()
        if self.plan.idle:
            self.report.outcome = Outcome.NOT_DUE
        else:
            rotate = self.plan.rotate
            self.report.outcome = Outcome.WOULD_ROTATE if rotate else Outcome.HOUSEKEEPING
        await self.refuse_expiring_credential()

    # --- the steps, in order ------------------------------------------------------------------

    async def check_health(self) -> None:
        """Look for the current PAT among the principal's live tokens; if it is gone, heal.

        The list is read with the principal's credential, never with the PAT: a call with the
        PAT would count as use and keep an otherwise unused PAT alive.
        """
        latest = self.latest
        if not self.plan.check_health or latest is None:
            return
        await self.tracker.enter(Step.HEALTH)
        now = self.rt.clock()
        tokens = await self.issuer.list()
        if any(t.token_id == latest.token_id and t.alive_at(now) for t in tokens):
            tags = latest.with_tags(health_checked_at=f"{now:.0f}")
            self.latest = await self.rt.store.update(latest, tags=tags)
            self.tracker.done(Step.HEALTH, token_id=latest.token_id)
            return
        self.plan = heal(self.target, latest)
        self.report.reason = self.plan.reason
        log.error(
            "target=%s step=health token_id=%s is gone: %s; its consumers are broken until it "
            "is replaced — rotating now",
            self.target.name,
            latest.token_id,
            HEAL_REASON,
        )

    async def load_versions(self) -> None:
        """Read every version of the target's secret (a health check alone needs none)."""
        plan = self.plan
        if plan.revoke_previous_first or plan.sweep or plan.rotate:
            self.versions = await self.rt.store.versions(self.target.secret_name)

    async def revoke_previous_first(self) -> None:
        """Revoke the PAT the latest version replaced (its grace is over, or it is replaced)."""
        if self.plan.revoke_previous_first and self.latest is not None:
            self.latest = await self.revoke_replaced_by(self.latest)

    async def sweep(self) -> None:
        """Revoke this target's rotator-made PATs that no version references (orphans)."""
        if not self.plan.sweep:
            return
        await self.tracker.enter(Step.SWEEP)
        # Under an exclusive lock no other run can be between its mint and its store.
        exclusive = self.rt.lock.exclusive
        min_age = 0.0 if exclusive else self.rt.config.orphan_min_age_minutes * 60
        self.tokens = await self.issuer.list()
        swept, self.deferred = await sweep_orphans(
            self.issuer,
            self.target.name,
            self.tokens,
            self.versions,
            now=self.rt.clock(),
            min_age_seconds=min_age,
        )
        self.report.swept += swept
        self.tracker.done(Step.SWEEP, swept=len(swept), deferred=self.deferred or None)

    async def clear_intent(self) -> None:
        """Remove an interrupted mint's ``minting`` tag once the sweep left nothing for later."""
        latest = self.latest
        if not self.plan.clear_intent or self.deferred or latest is None:
            return
        if latest.tag(Tag.MINTING) is not None:
            self.latest = await self.rt.store.update(latest, tags=latest.with_tags(minting=None))

    async def preflight(self) -> None:
        """Prove every consumer is reachable and accepts our credentials; change nothing."""
        if self.plan.rotate:
            await self.consumers().preflight()

    async def adopt_pending(self) -> None:
        """Take the pending version of an unfinished rotation as this run's new PAT."""
        latest = self.latest
        if not self.plan.resume or latest is None:
            return
        if self.latest_value is None:  # disabled or emptied since: it cannot be finished
            await self.tracker.enter(Step.VERIFY)
            await self.abandon(latest, "the pending PAT no longer works")
            return
        self.resumed = True
        self.hold(latest, self.latest_value)

    async def verify(self) -> None:
        """Prove the new PAT authenticates as the configured principal (SCIM ``Me``), once."""
        if self.pending is None or self.pat is None or self.verified:
            return
        await self.tracker.enter(Step.VERIFY)
        if not _may_call_scim(self.scopes_of(self.pending.token_id)):
            await self.verify_listed(self.pending)
            return
        principal = self.issuer.application_id
        try:
            me = await self.workspace.me(StaticBearerAuth(self.pat), principal=principal)
        except errors.InvalidTokenError:
            if not self.resumed:
                raise
            me = None
        if me is not None and same_principal(me.user_name, principal):
            self.verified = True
            if self.resumed:
                self.report.notes.append("resumed the pending PAT of an unfinished rotation")
            self.tracker.done(Step.VERIFY, user=me.user_name)
            return
        if self.resumed:  # mint a fresh one instead
            await self.abandon(self.pending, "the pending PAT no longer works")
            self.pending = self.pat = None
            self.resumed = False
            return
        user = me.user_name if me else "?"
        await self.abandon(self.pending, f"it authenticates as {user!r}")
        msg = (
            f"The new PAT for target {self.target.name} authenticates as {user!r}, not as the "
            f"configured service principal {principal!r}; it was revoked. Check the principal's "
            "client_id / application_id in the config."
        )
        raise errors.VerificationError(msg)

    async def intent(self) -> None:
        """Record on the latest version that a mint is about to happen (swept if it crashes)."""
        if not self.plan.rotate or self.pending is not None:
            return
        self.rotation_id = secrets.token_hex(8)
        latest = self.latest
        if latest is not None:
            await self.tracker.enter(Step.INTENT)
            tags = latest.with_tags(minting=self.rotation_id)
            self.latest = await self.rt.store.update(latest, tags=tags)

    async def mint(self) -> None:
        """Create the new PAT; after a lost answer, find and revoke what it may have made."""
        if not self.plan.rotate or self.pending is not None:
            return
        await self.tracker.enter(Step.MINT)
        lifetime = self.target.lifetime_days * 86_400
        comment = comment_for(self.target.name, self.rotation_id)
        scopes = self.scopes_for_new_pat()
        try:
            self.new = await self.issuer.create(
                lifetime_seconds=lifetime, comment=comment, scopes=scopes
            )
        except errors.DatabricksError as exc:
            if exc.outcome_unknown:
                await self.reconcile()
            raise
        token_id = self.new.info.token_id
        self.tracker.done(Step.MINT, rotation_id=self.rotation_id, token_id=token_id)

    async def store(self) -> None:
        """Store the new PAT as a ``pending`` version at once (even if the lease was lost)."""
        new = self.new
        if new is None or self.pending is not None:
            return
        await self.tracker.enter(Step.STORE, check_lease=False)
        current = current_version(self.versions, self.target.name)
        if current is None or not current.token_id:
            self.report.notes.append(bootstrap_note(self.tokens))
        expires = new.info.expiry_ms / 1000 if new.info.expiry_ms > 0 else None
        try:
            state = await self.rt.store.add_version(
                self.target.secret_name,
                new.value,
                tags=self.pending_tags(new, current),
                expires_on=expires,
            )
        except errors.RotationError:
            await best_effort(self.issuer.revoke(new.info.token_id))
            raise
        self.hold(state, new.value)
        self.tracker.done(Step.STORE, version=state.version)

    async def test(self) -> None:
        """Have every consumer that can test the new PAT without saving it do so."""
        if self.plan.rotate and self.pat is not None:
            await self.consumers().test(self.pat)

    async def push_and_confirm(self) -> None:
        """Save the new PAT on every consumer, each confirmed before the next."""
        if self.plan.rotate and self.pat is not None:
            await self.consumers().push_and_confirm(self.pat)

    async def promote(self) -> None:
        """Make the pending version ``current``; with a grace period, mark the old ``previous``."""
        state = self.pending
        if not self.plan.rotate or state is None:
            return
        await self.tracker.enter(Step.PROMOTE)
        now = self.rt.clock()
        grace = self.target.grace_period_hours
        previous = state.tag(Tag.PREVIOUS_TOKEN_ID)
        revoke_at = str(int(now + grace * 3600)) if previous else None
        results = self.report.consumers
        summary = ",".join(f"{c.name}=confirmed" for c in results) or "key-vault-only"
        tags = state.with_stage(
            Stage.CURRENT,
            revoke_previous_at=revoke_at,
            last_result=f"rotated {format_time(now)}",
            consumers=summary[:512],
        )
        self.promoted = await self.rt.store.update(state, tags=tags)
        old = version_with_token(self.versions, previous)
        if old is not None and old.stage is Stage.CURRENT and not self.plan.revoke_replaced:
            # Without a grace period the revoke step marks it `revoked` at once: a write saved.
            await self.rt.store.update(old, tags=old.with_stage(Stage.PREVIOUS))
        self.tracker.done(Step.PROMOTE, version=state.version)

    async def revoke_replaced(self) -> None:
        """Revoke the PAT the promoted version replaced (when there is no grace period)."""
        if self.plan.revoke_replaced and self.promoted is not None:
            await self.revoke_replaced_by(self.promoted)

    # --- what the steps share -----------------------------------------------------------------
