"""Every revocation of a run, through the guard, and the version transitions that go with it.

:func:`revoke` is the one path to ``issuer.revoke``: it judges the token on the principal's own
token list (listed again when the token is not on the run's list) and this vault's records
(:mod:`rotation.engine.guard`). :func:`try_revoke` records a refusal instead of raising it; the run
then fails at its end (:func:`refuse_what_the_guard_refused`), after what it could do safely.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from rotation import errors
from rotation.engine.guard import Evidence, judge
from rotation.engine.report import Step
from rotation.engine.run import best_effort
from rotation.state import Stage, Tag, parse_comment

if TYPE_CHECKING:
    from rotation.engine.run import Run
    from rotation.state import VersionState

__all__ = [
    "abandon",
    "reconcile",
    "refuse_what_the_guard_refused",
    "retire",
    "revoke",
    "revoke_replaced_by",
    "try_revoke",
]

log = logging.getLogger("rotation")


async def revoke(run: Run, token_id: str, purpose: str) -> bool:
    """Revoke PAT *token_id* if the guard allows it (I6); True when it was revoked now.

    ``RevocationRefusedError`` when Databricks does not show it as this target's, replaced.
    """
    tokens = await run.principal_tokens()
    known = [*tokens, *([run.new.info] if run.new is not None else [])]
    if all(t.token_id != token_id for t in known):
        # "Gone" is decided on a list made now: the run's list may predate a PAT another
        # run (one that lost its lock) made since.
        await run.principal_tokens(again=True)
    evidence = Evidence(
        target=run.target.name,
        secret_name=run.target.secret_name,
        vault=run.vault,
        tokens=run.tokens,
        versions=run.versions,
        foreign=run.issuer.foreign,
        minted=(run.new.info,) if run.new is not None else (),
        rotation_id=run.rotation_id,
        promoted=run.promoted,
    )
    if judge(token_id, evidence, purpose) is None:
        log.info("target=%s token_id=%s already gone (%s)", run.target.name, token_id, purpose)
        return False
    return await run.issuer.revoke(token_id)


async def try_revoke(run: Run, token_id: str, purpose: str) -> bool:
    """Revoke through the guard and report it; False only when the guard refused."""
    try:
        if await revoke(run, token_id, purpose):
            run.report.revoked.append(token_id)
    except errors.RevocationRefusedError as exc:
        run.refusals.append(exc)
        run.report.notes.append(str(exc))
        log.error("target=%s step=%s %s", run.target.name, run.tracker.step, exc)
        return False
    return True


async def retire(run: Run, token_id: str, purpose: str) -> bool:
    """Revoke *token_id* through the guard, then mark every version holding it revoked.

    False when the guard refused: the refusal is recorded (the run fails at its end, after
    what it can do safely) and no version is touched.
    """
    if not await try_revoke(run, token_id, purpose):
        return False
    # Every version holding it (a retried PUT can have stored the same PAT twice).
    for old in list(run.versions):
        if old.token_id == token_id and (old.stage is not Stage.REVOKED or old.enabled):
            await run.write(old, old.with_stage(Stage.REVOKED), enabled=False)
    return True


async def refuse_what_the_guard_refused(run: Run) -> None:
    """Fail the run (after its work) when the guard refused a revocation: loudly, typed."""
    if run.refusals:
        raise run.refusals[0]


async def revoke_replaced_by(run: Run, current: VersionState) -> VersionState:
    """Revoke the PAT *current* replaced and mark its versions revoked; return it updated."""
    await run.tracker.enter(Step.REVOKE)
    previous = current.tag(Tag.PREVIOUS_TOKEN_ID)
    if previous is None:
        return current
    done = await retire(run, previous, "the PAT the current version replaced")
    run.tracker.done(Step.REVOKE, token_id=previous)
    tags = current.with_tags(previous_revoked="true" if done else "refused")
    return await run.write(current, tags)


async def abandon(run: Run, state: VersionState, why: str, *, revoke: bool = True) -> None:
    """Disable a pending version whose PAT cannot be used, then revoke that PAT (guarded).

    Disabled first, so that the guard no longer counts its PAT as the latest one.
    """
    tags = state.with_stage(Stage.ABANDONED, previous_token_id=None)
    await run.write(state, tags, enabled=False)
    if revoke and state.token_id:
        await try_revoke(run, state.token_id, "abandoned pending")
    run.report.notes.append(f"abandoned pending version {state.version}: {why}")
    log.warning("target=%s abandoned version=%s: %s", run.target.name, state.version, why)


async def reconcile(run: Run) -> None:
    """After a create whose answer was lost: revoke the PAT it may have made (value lost)."""
    tokens = await best_effort(run.principal_tokens(again=True)) or []
    for token in tokens:
        marker = parse_comment(token.comment)
        if marker is None or marker[:2] != (run.target.name, run.rotation_id):
            continue
        with suppress(errors.RotationError):  # the create's own error is the run's
            if await revoke(run, token.token_id, "its create answer was lost"):
                run.report.swept.append(token.token_id)
        log.warning(
            "target=%s rotation_id=%s revoked token_id=%s: its create answer was lost",
            run.target.name,
            run.rotation_id,
            token.token_id,
        )
