"""The rotation state machine for one target: carry out the plan, one step after another.

:mod:`rotation.engine.plan` decides what a run does; this module does it and decides nothing again.
Every step has one shape — a method without arguments that checks its own precondition and
returns early when it has nothing to do — so a run reads as the tuple in :meth:`_Rotation.execute`::

    credentials → health → versions → prove → revoke previous (grace over, or about to be
      replaced) → sweep → clear intent → preflight → adopt pending → verify → intent → mint
      → store → verify → test → push + confirm → promote → revoke replaced

Nothing is ever revoked on the word of a tag: *prove* checks that the latest version's tags
agree with the principal's own token list (else the run destroys nothing and puts a fresh PAT in
place, outcome ``mismatch``), and every revocation passes :mod:`rotation.engine.guard`.

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
from rotation.backends.auth import StaticBearerAuth
from rotation.engine.guard import disagreement
from rotation.engine.plan import DAY, HEAL_REASON, HOUR, Plan, heal, mismatch
from rotation.engine.report import Outcome, Step, TargetReport, format_time
from rotation.engine.run import MAX_INTENTS, Run, bootstrap_note, same_principal
from rotation.engine.sweep import orphans
from rotation.engine.tracker import Tracker
from rotation.secret import Secret
from rotation.state import MANAGED_BY, Stage, Tag, comment_for, current_version, parse_comment

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rotation.config.models import Target
    from rotation.engine.runtime import Runtime
    from rotation.state import VersionState

__all__ = ["run_target"]

log = logging.getLogger("rotation")
PLACEHOLDER = Secret("no PAT: the intent to mint the first one")


def _may_call_scim(scopes: tuple[str, ...] | None) -> bool:
    """Return whether a PAT with *scopes* may call SCIM ``Me`` (an unscoped PAT may)."""
    return scopes is None or "scim" in scopes


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
                self.prove,
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
        await self.refuse_what_the_guard_refused()
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
        PAT would count as use and keep an otherwise unused PAT alive. A listed PAT whose
        comment does not carry the version's rotation id is a mismatch (a fresh PAT, nothing
        revoked).
        """
        latest = self.latest
        if not self.plan.check_health or latest is None:
            return
        await self.tracker.enter(Step.HEALTH)
        now = self.rt.clock()
        tokens = await self.principal_tokens()
        why = disagreement(
            latest,
            tokens,
            target=self.target.name,
            vault=self.vault,
            now=now,
            foreign=self.issuer.foreign,
        )
        if why is not None:
            self.to_mismatch(why)
            return
        if any(t.token_id == latest.token_id and t.alive_at(now) for t in tokens):
            await self.write(latest, latest.with_tags(health_checked_at=f"{now:.0f}"))
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

    async def prove(self) -> None:
        """Before anything is destroyed: the latest enabled version's tags agree with Databricks.

        Lists the principal's tokens once (the list every later revocation is judged on). On a
        disagreement the plan becomes a mismatch: nothing revoked, a fresh PAT put in place.
        """
        plan = self.plan
        if plan.mismatch or not (plan.revoke_previous_first or plan.sweep or plan.rotate):
            return
        await self.tracker.enter(Step.PROVE)
        tokens = await self.principal_tokens()
        # The newest enabled version by the rotator's order, and Key Vault's latest (the plan's).
        newest = next((v for v in reversed(self.versions) if v.enabled), None)
        latest = self.latest if self.latest is not None and self.latest.enabled else None
        both = {v.version: v for v in (newest, latest) if v is not None}
        for version in both.values():
            why = disagreement(
                version,
                tokens,
                target=self.target.name,
                vault=self.vault,
                now=self.rt.clock(),
                foreign=self.issuer.foreign,
            )
            if why is not None:
                self.to_mismatch(why)
                return

    def to_mismatch(self, why: str) -> None:
        """Turn the run into a mismatch heal: a fresh PAT, nothing revoked, said loudly."""
        self.plan = mismatch(self.target, why)
        self.report.reason = self.plan.reason
        log.error(
            "target=%s step=%s mismatch: %s — nothing is revoked; rotating to a fresh PAT",
            self.target.name,
            self.tracker.step,
            why,
        )

    async def revoke_previous_first(self) -> None:
        """Revoke the PAT the latest version replaced (its grace is over, or it is replaced)."""
        if self.plan.revoke_previous_first and self.latest is not None:
            self.latest = await self.revoke_replaced_by(self.latest)

    async def sweep(self) -> None:
        """Revoke this target's PATs whose mint this vault recorded and no version holds."""
        if not self.plan.sweep:
            return
        await self.tracker.enter(Step.SWEEP)
        # Under an exclusive lock no other run can be between its mint and its store.
        exclusive = self.rt.lock.exclusive
        min_age = 0.0 if exclusive else self.rt.config.orphan_min_age_minutes * 60
        now = self.rt.clock()
        found = orphans(
            await self.principal_tokens(), self.versions, target=self.target.name, vault=self.vault
        )
        swept: list[str] = []
        for token in found:
            age = now - token.creation_ms / 1000
            if min_age > 0 and age < min_age:
                log.info("target=%s sweep deferred token_id=%s", self.target.name, token.token_id)
                marker = parse_comment(token.comment)
                self.carry += [marker.rotation_id] if marker else []
                continue
            revoked = len(self.report.revoked)
            if await self.try_revoke(token.token_id, "an orphan of an interrupted mint"):
                del self.report.revoked[revoked:]  # an orphan is reported as swept
                log.warning("target=%s swept orphan token_id=%s", self.target.name, token.token_id)
                swept.append(token.token_id)
        self.deferred = len(self.carry)
        self.report.swept += swept
        self.tracker.done(Step.SWEEP, swept=len(swept), deferred=self.deferred or None)

    async def clear_intent(self) -> None:
        """Remove an interrupted mint's ``minting`` tag once the sweep left nothing for later."""
        latest = self.latest
        if not self.plan.clear_intent or self.deferred or latest is None:
            return
        if latest.tag(Tag.MINTING) is not None:
            await self.write(latest, latest.with_tags(minting=None))

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
        await self.tracker.enter(Step.INTENT)
        if latest is None:  # bootstrap: the intent needs a version to live on
            await self.record_first_intent()
        else:
            # Earlier intents stay: a run that lost its lock may still be minting for one.
            earlier = (latest.tag(Tag.MINTING) or "").split()
            wanted = dict.fromkeys([*earlier, *self.carry, self.rotation_id])
            intents = " ".join(list(wanted)[-MAX_INTENTS:])
            await self.write(latest, latest.with_tags(minting=intents))

    async def record_first_intent(self) -> None:
        """Record a first mint's intent on a disabled version holding no PAT (a placeholder).

        Without it a crash between the first ``token/create`` and its store would leave a PAT
        whose mint nothing in this vault records, which the sweep may never touch.
        """
        tags = {
            Tag.MANAGED_BY: MANAGED_BY,
            Tag.TARGET: self.target.name,
            Tag.STAGE: Stage.INTENT.value,
            Tag.MINTING: self.rotation_id,
            Tag.WRITTEN_AT: f"{self.rt.clock():.6f}",
            Tag.LAST_RESULT: "intent to mint the first PAT (holds no PAT)",
        }
        placeholder = await self.rt.store.add_version(
            self.target.secret_name,
            PLACEHOLDER,
            tags={str(k): v for k, v in tags.items()},
            expires_on=None,
            enabled=False,
        )
        self.remember(placeholder)

    async def mint(self) -> None:
        """Create the new PAT; after a lost answer, find and revoke what it may have made."""
        if not self.plan.rotate or self.pending is not None:
            return
        await self.tracker.enter(Step.MINT)
        lifetime = int(self.target.lifetime_days * DAY)
        comment = comment_for(self.target.name, self.rotation_id, self.vault)
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
                self.target.secret_name, new.value, tags=self.pending_tags(new), expires_on=expires
            )
        except errors.RotationError:
            # Never revoked blind: the store may have happened with its answer lost. The next
            # run adopts the pending version if it is there, or sweeps the PAT (its intent is
            # recorded).
            self.report.notes.append(
                f"the new PAT {new.info.token_id} could not be stored: the next run finishes "
                "the rotation with it if Key Vault has it, or revokes it"
            )
            raise
        self.hold(self.remember(state), new.value)
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
        """Make the pending version ``current``; decide now what it replaces.

        Replaced: every enabled ``current``/``pending``/``previous`` version of the target older
        than it, as the versions are now (not an id written when it was minted).

        The newest replaced ``current`` version's PAT is the one kept for the grace period; a
        mismatch disables what it replaces instead and leaves their PATs to a later sweep.
        """
        state = self.pending
        if not self.plan.rotate or state is None:
            return
        await self.tracker.enter(Step.PROMOTE)
        now = self.rt.clock()
        # As they are now: a run that lost its lock may have stored a pending version since.
        self.versions = await self.rt.store.versions(self.target.secret_name)
        state = next((v for v in self.versions if v.version == state.version), state)
        self.replaced = self.replaced_by(state)
        currents = [v for v in self.replaced if v.stage is Stage.CURRENT]
        previous = currents[-1].token_id if currents and not self.plan.mismatch else None
        grace = self.target.grace_period_hours
        carried = (state.tag(Tag.MINTING) or "").split()
        if self.plan.mismatch:
            carried += [v.tag(Tag.ROTATION_ID) or "" for v in self.replaced]
        summary = ",".join(f"{c.name}=confirmed" for c in self.report.consumers)
        tags = state.with_stage(
            Stage.CURRENT,
            previous_token_id=previous,
            revoke_previous_at=str(int(now + grace * HOUR)) if previous else None,
            previous_revoked=None,
            minting=" ".join([c for c in carried if c][-MAX_INTENTS:]) or None,
            last_result=f"rotated {format_time(now)}",
            consumers=(summary or "key-vault-only")[:512],
        )
        self.promoted = await self.write(state, tags)
        self.report.previous_token_id = previous
        for old in self.replaced:
            if self.plan.mismatch:
                await self.write(old, old.with_stage(Stage.ABANDONED), enabled=False)
            elif old.token_id == previous and not self.plan.revoke_replaced:
                # Without a grace period the revoke step marks it `revoked` at once.
                await self.write(old, old.with_stage(Stage.PREVIOUS))
        self.tracker.done(Step.PROMOTE, version=state.version)

    def replaced_by(self, state: VersionState) -> list[VersionState]:
        """Return the enabled current/pending/previous versions of this target but *state*.

        All are older: the versions were listed at the start of the run, when *state* was the
        latest (adopted) or not yet written (stored by this run).
        """
        # A previous version still in its grace period is cut short, as a new rotation does;
        # a mismatch retires every enabled version of the target, whatever its stage says.
        stages = {Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS}
        return [
            v
            for v in self.versions
            if v.enabled
            and v.managed
            and v.version != state.version
            and v.token_id != state.token_id  # a retried PUT's twin holds the same PAT
            and (v.stage in stages or self.plan.mismatch)
            and v.token_id
            and v.tag(Tag.TARGET) in {None, self.target.name}
        ]

    async def revoke_replaced(self) -> None:
        """Revoke what the promotion replaced: its previous PAT (no grace period) and any other.

        Other replaced versions (a pending one left by a run that lost its lock) are not what
        the consumers held until now: their PATs are revoked at once, grace period or not.
        """
        promoted = self.promoted
        if promoted is None or self.plan.mismatch:
            return
        previous = promoted.tag(Tag.PREVIOUS_TOKEN_ID)
        if self.plan.revoke_replaced:
            self.promoted = await self.revoke_replaced_by(promoted)
        for old in self.replaced:
            if old.token_id and old.token_id != previous:
                await self.tracker.enter(Step.REVOKE)
                if not await self.retire(old.token_id, "replaced by the promoted version"):
                    # Its record is not to be trusted: retired without revoking anything.
                    await self.write(old, old.with_stage(Stage.ABANDONED), enabled=False)
