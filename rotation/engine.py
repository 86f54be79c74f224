"""The rotation state machine for one target (DESIGN.md).

::

    load ─ plan idle? → done
      │ rotate / revoke previous / sweep
      ▼
    credentials → [revoke previous] → sweep → mint (skip when pending) → store as pending
      → verify → test with consumers → push + confirm → promote → revoke previous (or grace)

Every step checks state first and is safe to re-run: a failed run leaves a ``pending`` version
that the next run resumes without minting again. The lock's lease is checked at each step
boundary. Logs carry target, step, rotation id and token id — never a value.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, TypeVar

from rotation import errors
from rotation.auth import StaticBearerAuth
from rotation.consumers import Consumers
from rotation.databricks import Workspace
from rotation.plan import Plan, plan
from rotation.principals import open_issuer
from rotation.report import ErrorInfo, Outcome, TargetReport, format_time
from rotation.state import (
    MANAGED_BY,
    Stage,
    Tag,
    VersionState,
    comment_for,
    current_version,
    parse_comment,
    version_with_token,
)
from rotation.sweep import sweep_orphans

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from contextlib import AbstractAsyncContextManager

    from rotation.config import Target
    from rotation.databricks import TokenInfo
    from rotation.lock import Lease
    from rotation.principals import TokenIssuer
    from rotation.runtime import Runtime
    from rotation.secret import Secret

__all__ = ["run_target"]

T = TypeVar("T")

log = logging.getLogger("rotation")


async def run_target(
    rt: Runtime, target: Target, *, force: bool = False, dry_run: bool = False
) -> TargetReport:
    """Run *target*'s state machine once and report; errors become the report, never raise."""
    report = TargetReport(target.name)
    run = _Run(rt, target, report)
    rt.progress[target.name] = run.step
    try:
        if dry_run:
            await run.dry_run(force=force)
        else:
            async with rt.lock.hold(target.name) as lease:
                run.lease = lease
                try:
                    await run.execute(force=force)
                except errors.RotationError as exc:
                    run.fail(exc)
                    if not isinstance(exc, errors.LockLostError):  # still ours to write
                        await run.record_failure()
    except errors.RotationError as exc:
        run.fail(exc)
    except asyncio.CancelledError:  # Ctrl-C or the host stopping: the next run resumes
        log.warning("target=%s interrupted at step=%s", target.name, run.step)
        raise
    except Exception as exc:  # a bug or an untranslated library error: report, don't crash
        log.exception("target=%s step=%s unexpected %s", target.name, run.step, type(exc).__name__)
        run.fail(
            errors.RotationError(f"unexpected {type(exc).__name__}; see the logs", transient=True)
        )
    rt.progress.pop(target.name, None)
    return report


class _Run:
    """One run of one target; holds the step reached for error reports."""

    def __init__(self, rt: Runtime, target: Target, report: TargetReport) -> None:
        self.rt = rt
        self.t = target
        self.report = report
        self.step = "load"
        self.lease: Lease | None = None
        self.ws = Workspace(rt.http, target.workspace_url, rt.retry)
        self.latest: VersionState | None = None
        self.tokens: list[TokenInfo] = []

    async def enter(self, step: str, *, check: bool = True) -> None:
        """Start *step*: check the lock is still held first (unless *check* is False)."""
        self.step = step
        self.rt.progress[self.t.name] = step
        if check and self.lease is not None:
            await self.lease.check()

    def done(self, step: str, **fields: object) -> None:
        """Record *step* as completed and log it."""
        self.report.steps.append(step)
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        log.info("target=%s step=%s done %s", self.t.name, step, extra)

    def fail(self, exc: errors.RotationError) -> None:
        """Record *exc* as the run's failure."""
        busy = isinstance(exc, errors.BusyError)
        self.report.outcome = Outcome.BUSY if busy else Outcome.FAILED
        self.report.error = ErrorInfo(self.step, exc.kind, str(exc), exc.transient)
        log.warning("target=%s step=%s failed kind=%s: %s", self.t.name, self.step, exc.kind, exc)

    async def record_failure(self) -> None:
        """Best effort: note the failure in the latest version's ``last-result`` tag."""
        found = await _quiet(self.rt.store.latest(self.t.secret_name))
        if not found or not found[0].managed:
            return
        err = self.report.error
        text = f"failed {format_time(self.rt.clock())} at {self.step}: {err.kind if err else '?'}"
        tags = found[0].with_tags(last_result=text[:256])
        await _quiet(self.rt.store.update(found[0], tags=tags))

    async def _load(self, *, force: bool) -> tuple[Plan, Secret | None]:
        found = await self.rt.store.latest(self.t.secret_name)
        self.latest, value = found or (None, None)
        p = plan(self.t, self.latest, self.rt.clock(), force=force)
        self.report.reason = p.reason
        if self.latest is not None:
            self.report.token_id = self.latest.token_id
            self.report.expires_on = self.latest.expires_on
        return p, value

    async def dry_run(self, *, force: bool) -> None:
        """Say what a run would do, after its read-only checks, due or not; write nothing.

        The checks: the principal's credential is read and authenticates and its tokens can be
        listed; every consumer is reachable and accepts our credentials.
        """
        p, _ = await self._load(force=force)
        await self.enter("credentials")
        async with self._issuer() as issuer:
            await issuer.authenticate()
            tokens = await issuer.list()
        self.done("credentials", live_tokens=len(tokens))
        await self._consumers().preflight()
        if p.idle:
            self.report.outcome = Outcome.NOT_DUE
        else:
            self.report.outcome = Outcome.WOULD_ROTATE if p.rotate else Outcome.HOUSEKEEPING

    async def execute(self, *, force: bool) -> None:
        """Run the state machine."""
        p, value = await self._load(force=force)
        if p.idle:
            self.report.outcome = Outcome.NOT_DUE
            return
        await self.enter("credentials")
        async with self._issuer() as issuer:
            await issuer.authenticate()
            self.done("credentials")
            versions = await self.rt.store.versions(self.t.secret_name)
            latest = self.latest
            if (
                latest is not None
                and latest.revoke_previous_at is not None
                and (p.revoke_previous or (p.rotate and not p.resume))
            ):
                self.latest = latest = await self._revoke_previous(issuer, versions, latest)
            deferred = await self._sweep(issuer, versions) if p.sweep or p.rotate else 0
            if p.rotate:
                await self._rotate(issuer, versions, p, value)
                self.report.outcome = Outcome.ROTATED
            else:
                self.report.outcome = Outcome.HOUSEKEEPING
                if latest is not None and latest.tag(Tag.MINTING) and not deferred:
                    await self.rt.store.update(latest, tags=latest.with_tags(minting=None))

    def _consumers(self) -> Consumers:
        consumers = Consumers(self.t, self.rt, self.enter, self.done)
        self.report.consumers = consumers.results
        return consumers

    def _issuer(self) -> AbstractAsyncContextManager[TokenIssuer]:
        return open_issuer(
            self.t, workspace=self.ws, secrets=self.rt.store, http=self.rt.http, azure=self.rt.azure
        )

    async def _sweep(self, issuer: TokenIssuer, versions: list[VersionState]) -> int:
        """Sweep orphans; return how many were too young to sweep (lockless runs only)."""
        await self.enter("sweep")
        # Under an exclusive lock no other run can be between its mint and its store.
        exclusive = self.rt.lock.exclusive
        min_age = 0.0 if exclusive else self.rt.config.orphan_min_age_minutes * 60
        self.tokens = await issuer.list()
        swept, deferred = await sweep_orphans(
            issuer, self.t.name, self.tokens, versions, now=self.rt.clock(), min_age_seconds=min_age
        )
        self.report.swept += swept
        self.done("sweep", swept=len(swept), deferred=deferred or None)
        return deferred

    async def _rotate(
        self, issuer: TokenIssuer, versions: list[VersionState], p: Plan, value: Secret | None
    ) -> None:
        consumers = self._consumers()
        await consumers.preflight()
        pending: tuple[VersionState, Secret] | None = None
        if p.resume and self.latest is not None:
            pending = await self._resumable(issuer, self.latest, value)
        if pending is None:
            pending = await self._mint_and_store(issuer, versions)
        state, pat = pending
        self.report.rotation_id = state.tag(Tag.ROTATION_ID)
        self.report.token_id = state.token_id
        self.report.expires_on = state.expires_on
        self.report.previous_token_id = state.tag(Tag.PREVIOUS_TOKEN_ID)
        await self._verify(issuer, state, pat)
        await consumers.test(pat)
        await consumers.push_and_confirm(pat)
        promoted = await self._promote(state, versions)
        if self.t.grace_period_hours == 0:
            await self._revoke_previous(issuer, versions, promoted)

    async def _resumable(
        self, issuer: TokenIssuer, state: VersionState, value: Secret | None
    ) -> tuple[VersionState, Secret] | None:
        """Return the pending version to finish, or None after abandoning an unusable one."""
        await self.enter("verify")
        if value is not None:
            try:
                me = await self.ws.me(StaticBearerAuth(value), principal=issuer.application_id)
            except errors.InvalidTokenError:
                me = None
            if me is not None and _same_principal(me.user_name, issuer.application_id):
                self.report.notes.append("resumed the pending PAT of an unfinished rotation")
                return state, value
        await self._abandon(issuer, state, "the pending PAT no longer works")
        return None

    async def _abandon(self, issuer: TokenIssuer, state: VersionState, why: str) -> None:
        """Disable a pending version whose PAT cannot be used, then revoke that PAT."""
        tags = state.with_tags(stage=Stage.ABANDONED.value, minting=None, previous_token_id=None)
        abandoned = await self.rt.store.update(state, tags=tags, enabled=False)
        if self.latest is not None and self.latest.version == state.version:
            self.latest = abandoned
        if state.token_id and await issuer.revoke(state.token_id):
            self.report.revoked.append(state.token_id)
        self.report.notes.append(f"abandoned pending version {state.version}: {why}")
        log.warning("target=%s abandoned version=%s: %s", self.t.name, state.version, why)

    async def _mint_and_store(
        self, issuer: TokenIssuer, versions: list[VersionState]
    ) -> tuple[VersionState, Secret]:
        rotation_id = secrets.token_hex(8)
        latest = self.latest
        if latest is not None:
            await self.enter("intent")
            self.latest = await self.rt.store.update(
                latest, tags=latest.with_tags(minting=rotation_id)
            )
        await self.enter("mint")
        lifetime = self.t.lifetime_days * 86_400
        comment = comment_for(self.t.name, rotation_id)
        try:
            new = await issuer.create(lifetime_seconds=lifetime, comment=comment)
        except errors.DatabricksError as exc:
            if exc.outcome_unknown:
                await self._reconcile(issuer, rotation_id)
            raise
        self.done("mint", rotation_id=rotation_id, token_id=new.info.token_id)
        await self.enter("store", check=False)  # a minted PAT is stored even if the lease is gone
        current = current_version(versions, self.t.name)
        if current is None or not current.token_id:
            self.report.notes.append(_bootstrap_note(self.tokens))
        tags = {
            Tag.MANAGED_BY: MANAGED_BY,
            Tag.TARGET: self.t.name,
            Tag.TOKEN_ID: new.info.token_id,
            Tag.ROTATION_ID: rotation_id,
            Tag.STAGE: Stage.PENDING.value,
            Tag.WRITTEN_AT: f"{self.rt.clock():.6f}",
        }
        if current is not None and current.token_id:
            tags[Tag.PREVIOUS_TOKEN_ID] = current.token_id
        expires = new.info.expiry_ms / 1000 if new.info.expiry_ms > 0 else None
        try:
            state = await self.rt.store.add_version(
                self.t.secret_name,
                new.value,
                tags={str(k): v for k, v in tags.items()},
                expires_on=expires,
            )
        except errors.RotationError:
            await _quiet(issuer.revoke(new.info.token_id))
            raise
        self.done("store", version=state.version)
        return state, new.value

    async def _reconcile(self, issuer: TokenIssuer, rotation_id: str) -> None:
        """After a create whose answer was lost: revoke the PAT it may have made (value lost)."""
        tokens = await _quiet(issuer.list()) or []
        for token in tokens:
            if parse_comment(token.comment) == (self.t.name, rotation_id):
                if await _quiet(issuer.revoke(token.token_id)):
                    self.report.swept.append(token.token_id)
                log.warning(
                    "target=%s rotation_id=%s revoked token_id=%s: its create answer was lost",
                    self.t.name,
                    rotation_id,
                    token.token_id,
                )

    async def _verify(self, issuer: TokenIssuer, state: VersionState, pat: Secret) -> None:
        await self.enter("verify")
        me = await self.ws.me(StaticBearerAuth(pat), principal=issuer.application_id)
        if not _same_principal(me.user_name, issuer.application_id):
            await self._abandon(issuer, state, f"it authenticates as {me.user_name!r}")
            msg = (
                f"The new PAT for target {self.t.name} authenticates as {me.user_name!r}, not as "
                f"the configured service principal {issuer.application_id!r}; it was revoked. "
                "Check the principal's client_id / application_id in the config."
            )
            raise errors.VerificationError(msg)
        self.done("verify", user=me.user_name)

    async def _promote(self, state: VersionState, versions: list[VersionState]) -> VersionState:
        await self.enter("promote")
        now = self.rt.clock()
        previous = state.tag(Tag.PREVIOUS_TOKEN_ID)
        revoke_at = now + self.t.grace_period_hours * 3600 if previous else None
        summary = ",".join(f"{c.name}=confirmed" for c in self.report.consumers) or "key-vault-only"
        tags = state.with_tags(
            stage=Stage.CURRENT.value,
            minting=None,
            revoke_previous_at=None if revoke_at is None else str(int(revoke_at)),
            last_result=f"rotated {format_time(now)}",
            consumers=summary[:512],
        )
        promoted = await self.rt.store.update(state, tags=tags)
        old = version_with_token(versions, previous)
        if old is not None and old.stage is Stage.CURRENT and self.t.grace_period_hours > 0:
            # With no grace the revoke step marks it `revoked` right away: one write saved.
            await self.rt.store.update(
                old, tags=old.with_tags(stage=Stage.PREVIOUS.value, minting=None)
            )
        self.done("promote", version=state.version)
        return promoted

    async def _revoke_previous(
        self, issuer: TokenIssuer, versions: list[VersionState], current: VersionState
    ) -> VersionState:
        """Revoke the PAT *current* replaced, mark its version revoked; return updated *current*."""
        await self.enter("revoke")
        previous = current.tag(Tag.PREVIOUS_TOKEN_ID)
        if previous is None:
            return current
        if await issuer.revoke(previous):
            self.report.revoked.append(previous)
        # Every version holding it (a retried PUT can have stored the same PAT twice).
        for old in versions:
            if old.token_id == previous and (old.stage is not Stage.REVOKED or old.enabled):
                tags = old.with_tags(stage=Stage.REVOKED.value, minting=None)
                await self.rt.store.update(old, tags=tags, enabled=False)
        self.done("revoke", token_id=previous)
        return await self.rt.store.update(current, tags=current.with_tags(previous_revoked="true"))


def _bootstrap_note(tokens: list[TokenInfo]) -> str:
    """Say that no PAT will be revoked, naming the principal's PATs not made by the rotator."""
    by_hand = [t.token_id for t in tokens if parse_comment(t.comment) is None]
    note = "no earlier rotator-made PAT is recorded, so none will be revoked"
    if not by_hand:
        return note
    return (
        f"{note}; the principal's PAT(s) made by hand stay alive until you revoke them once the "
        f"consumers use the new PAT: token id(s) {', '.join(by_hand)}"
    )


def _same_principal(user_name: str, application_id: str) -> bool:
    """Return whether SCIM ``userName`` names the application id (GUIDs compare caselessly)."""
    return user_name.strip().lower() == application_id.strip().lower()


async def _quiet(awaitable: Awaitable[T]) -> T | None:
    """Await a best-effort call; a ``RotationError`` becomes None."""
    try:
        return await awaitable
    except errors.RotationError:
        return None
