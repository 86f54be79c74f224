"""The first steps of a run: what is there, and whether the records can be trusted.

The health check, the versions, *prove* (the latest version's tags against the principal's own
token list: a disagreement turns the run into a mismatch), the previous PAT whose grace is over,
the orphan sweep and the interrupted mint's intent.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from rotation.engine import revoking
from rotation.engine.guard import disagreement
from rotation.engine.plan import HEAL_REASON, heal, mismatch
from rotation.engine.report import Step
from rotation.engine.sweep import orphans
from rotation.state import Tag, parse_comment
from rotation.units import MINUTE

if TYPE_CHECKING:
    from rotation.backends import TokenInfo
    from rotation.engine.run import Run
    from rotation.state import VersionState

__all__ = [
    "check_health",
    "clear_intent",
    "load_versions",
    "prove",
    "revoke_previous_first",
    "sweep",
    "to_mismatch",
]

log = logging.getLogger("rotation")


async def check_health(run: Run) -> None:
    """Look for the current PAT among the principal's live tokens; if it is gone, heal.

    The list is read with the principal's credential, never with the PAT: a call with the
    PAT would count as use and keep an otherwise unused PAT alive. A listed PAT whose
    comment does not carry the version's rotation id is a mismatch (a fresh PAT, nothing
    revoked).
    """
    latest = run.latest
    if not run.plan.check_health or latest is None:
        return
    await run.tracker.enter(Step.HEALTH)
    now = run.rt.clock()
    tokens = await run.principal_tokens()
    why = disagreement(
        latest,
        tokens,
        target=run.target.name,
        vault=run.vault,
        now=now,
        foreign=run.issuer.foreign,
    )
    if why is not None:
        to_mismatch(run, why)
        return
    if any(t.token_id == latest.token_id and t.alive_at(now) for t in tokens):
        await run.write(latest, latest.with_tags(health_checked_at=f"{now:.0f}"))
        run.tracker.done(Step.HEALTH, token_id=latest.token_id)
        _sweep_unnamed(run, latest, [t for t in tokens if t.alive_at(now)])
        return
    run.plan = heal(run.target, latest)
    run.report.reason = run.plan.reason
    log.error(
        "target=%s step=health token_id=%s is gone: %s; its consumers are broken until it "
        "is replaced — rotating now",
        run.target.name,
        latest.token_id,
        HEAL_REASON,
    )


def _sweep_unnamed(run: Run, latest: VersionState, alive: list[TokenInfo]) -> None:
    """Add a sweep to a health check that lists a PAT of this deployment no tag of *latest* names.

    The sweep is planned from the latest version's intent (``minting``) alone; a write that
    landed late (a run that lost its lock, Key Vault has no ETags) can drop an intent or record it
    on an older version. The health check reads the token list anyway, so a PAT marked for this
    target by this vault that neither the latest version nor its previous names gets the full
    sweep — with every proof of :mod:`rotation.engine.guard`; young ones still wait.
    """
    named = {latest.token_id, latest.tag(Tag.PREVIOUS_TOKEN_ID)}
    for token in alive:
        marker = parse_comment(token.comment)
        if marker is None or token.token_id in named or marker.target != run.target.name:
            continue
        if marker.vault == run.vault and not run.plan.sweep:
            why = f"{run.plan.reason}; sweep: no tag names PAT {token.token_id} of this target"
            run.plan = replace(run.plan, sweep=True, reason=why)
            run.report.reason = why
            return


async def load_versions(run: Run) -> None:
    """Read every version of the target's secret (a health check alone needs none)."""
    plan = run.plan
    if plan.revoke_previous_first or plan.sweep or plan.rotate:
        run.versions = await run.rt.store.versions(run.target.secret_name)


async def prove(run: Run) -> None:
    """Before anything is destroyed: the latest enabled version's tags agree with Databricks.

    Lists the principal's tokens once (the list every later revocation is judged on). On a
    disagreement the plan becomes a mismatch: nothing revoked, a fresh PAT put in place.
    """
    plan = run.plan
    if plan.mismatch or not (plan.revoke_previous_first or plan.sweep or plan.rotate):
        return
    await run.tracker.enter(Step.PROVE)
    tokens = await run.principal_tokens()
    # The newest enabled version by the rotator's order, and Key Vault's latest (the plan's).
    newest = next((v for v in reversed(run.versions) if v.enabled), None)
    latest = run.latest if run.latest is not None and run.latest.enabled else None
    both = {v.version: v for v in (newest, latest) if v is not None}
    for version in both.values():
        why = disagreement(
            version,
            tokens,
            target=run.target.name,
            vault=run.vault,
            now=run.rt.clock(),
            foreign=run.issuer.foreign,
        )
        if why is not None:
            to_mismatch(run, why)
            return


def to_mismatch(run: Run, why: str) -> None:
    """Turn the run into a mismatch heal: a fresh PAT, nothing revoked, said loudly."""
    run.plan = mismatch(run.target, why)
    run.report.reason = run.plan.reason
    log.error(
        "target=%s step=%s mismatch: %s — nothing is revoked; rotating to a fresh PAT",
        run.target.name,
        run.tracker.step,
        why,
    )


async def revoke_previous_first(run: Run) -> None:
    """Revoke the PAT the latest version replaced (its grace is over, or it is replaced)."""
    if run.plan.revoke_previous_first and run.latest is not None:
        run.latest = await revoking.revoke_replaced_by(run, run.latest)


async def sweep(run: Run) -> None:
    """Revoke this target's PATs whose mint this vault recorded and no version holds."""
    if not run.plan.sweep:
        return
    await run.tracker.enter(Step.SWEEP)
    # Even under an exclusive lock: a run that lost its lease may be between its mint and its
    # store (a held request, Key Vault's throttle), so a young orphan waits for a later run.
    min_age = run.rt.config.orphan_min_age_minutes * MINUTE
    now = run.rt.clock()
    found = orphans(
        await run.principal_tokens(),
        run.versions,
        target=run.target.name,
        vault=run.vault,
        secret=run.target.secret_name,
    )
    swept: list[str] = []
    for token in found:
        age = now - token.creation_ms / 1000
        if min_age > 0 and age < min_age:
            log.info("target=%s sweep deferred token_id=%s", run.target.name, token.token_id)
            run.report.deferred.append(token.token_id)
            marker = parse_comment(token.comment)
            run.carry += [marker.rotation_id] if marker else []
            continue
        revoked = len(run.report.revoked)
        if await revoking.try_revoke(run, token.token_id, "an orphan of an interrupted mint"):
            del run.report.revoked[revoked:]  # an orphan is reported as swept
            log.warning("target=%s swept orphan token_id=%s", run.target.name, token.token_id)
            swept.append(token.token_id)
    run.deferred = len(run.carry)
    run.report.swept += swept
    run.tracker.done(Step.SWEEP, swept=len(swept), deferred=run.deferred or None)


async def clear_intent(run: Run) -> None:
    """Remove an interrupted mint's ``minting`` tag once the sweep left nothing for later."""
    latest = run.latest
    if not run.plan.clear_intent or run.deferred or latest is None:
        return
    if latest.tag(Tag.MINTING) is not None:
        await run.write(latest, latest.with_tags(minting=None))
