"""The last steps: the consumers take the new PAT, it is promoted, what it replaced is revoked."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rotation.engine import revoking
from rotation.engine.report import Step, format_time
from rotation.engine.run import MAX_INTENTS
from rotation.state import Stage, Tag, current_version
from rotation.units import HOUR

if TYPE_CHECKING:
    from rotation.engine.run import Run
    from rotation.secret import Secret
    from rotation.state import VersionState

__all__ = ["promote", "push_and_confirm", "replaced_by", "revoke_replaced", "test"]


async def test(run: Run) -> None:
    """Have every consumer that can test the new PAT without saving it do so."""
    if run.plan.rotate and run.pat is not None:
        await run.consumers().test(run.pat)


async def push_and_confirm(run: Run) -> None:
    """Save the new PAT on every consumer, each confirmed before the next."""
    if run.plan.rotate and run.pat is not None:
        await run.consumers().push_and_confirm(run.pat, partial(_previous_pat, run))


async def _previous_pat(run: Run) -> Secret | None:
    """Return the PAT consumers held before this rotation: the current version's (if trusted)."""
    current = current_version(run.versions, run.target.name)
    if current is None or run.plan.mismatch or current.token_id == run.report.token_id:
        return None
    return await run.rt.store.read_version(current)


async def promote(run: Run) -> None:
    """Make the pending version ``current``; decide now what it replaces.

    Replaced: every enabled ``current``/``pending``/``previous`` version of the target older
    than it, as the versions are now (not an id written when it was minted).

    The newest replaced ``current`` version's PAT is the one kept for the grace period; a
    mismatch disables what it replaces instead and leaves their PATs to a later sweep.
    """
    state = run.pending
    if not run.plan.rotate or state is None:
        return
    await run.tracker.enter(Step.PROMOTE)
    now = run.rt.clock()
    # As they are now: a run that lost its lock may have stored a pending version since.
    run.versions = await run.rt.store.versions(run.target.secret_name)
    state = next((v for v in run.versions if v.version == state.version), state)
    run.replaced = replaced_by(run, state)
    currents = [v for v in run.replaced if v.stage is Stage.CURRENT]
    previous = currents[-1].token_id if currents and not run.plan.mismatch else None
    run.promoted = await run.write(state, _promoted_tags(run, state, previous, now))
    run.report.previous_token_id = previous
    for old in run.replaced:
        if run.plan.mismatch:
            await run.write(old, old.with_stage(Stage.ABANDONED), enabled=False)
        elif old.token_id == previous and not run.plan.revoke_replaced:
            # Without a grace period the revoke step marks it `revoked` at once.
            await run.write(old, old.with_stage(Stage.PREVIOUS))
    run.tracker.done(Step.PROMOTE, version=state.version)


def _promoted_tags(
    run: Run, state: VersionState, previous: str | None, now: float
) -> dict[str, str]:
    """Return *state*'s tags as ``current``, replacing *previous* (kept for the grace period)."""
    grace = run.target.grace_period_hours
    carried = (state.tag(Tag.MINTING) or "").split()
    if run.plan.mismatch:  # the PATs of the untrusted versions: the next run sweeps them
        carried += [v.tag(Tag.ROTATION_ID) or "" for v in run.replaced]
    summary = ",".join(f"{c.name}=confirmed" for c in run.report.consumers)
    return state.with_stage(
        Stage.CURRENT,
        previous_token_id=previous,
        revoke_previous_at=str(int(now + grace * HOUR)) if previous else None,
        previous_revoked=None,
        minting=" ".join([c for c in carried if c][-MAX_INTENTS:]) or None,
        last_result=f"rotated {format_time(now)}",
        consumers=(summary or "key-vault-only")[:512],
    )


def replaced_by(run: Run, state: VersionState) -> list[VersionState]:
    """Return the enabled current/pending/previous versions of this target but *state*.

    All are older: the versions were listed at the start of the run, when *state* was the
    latest (adopted) or not yet written (stored by this run).
    """
    # A previous version still in its grace period is cut short, as a new rotation does;
    # a mismatch retires every enabled version of the target, whatever its stage says.
    stages = {Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS}
    return [
        v
        for v in run.versions
        if v.enabled
        and v.managed
        and v.version != state.version
        and v.token_id != state.token_id  # a retried PUT's twin holds the same PAT
        and (v.stage in stages or run.plan.mismatch)
        and v.token_id
        and v.tag(Tag.TARGET) in {None, run.target.name}
    ]


async def revoke_replaced(run: Run) -> None:
    """Revoke what the promotion replaced: its previous PAT (no grace period) and any other.

    Other replaced versions (a pending one left by a run that lost its lock) are not what
    the consumers held until now: their PATs are revoked at once, grace period or not.
    """
    promoted = run.promoted
    if promoted is None or run.plan.mismatch:
        return
    previous = promoted.tag(Tag.PREVIOUS_TOKEN_ID)
    if run.plan.revoke_replaced:
        run.promoted = await revoking.revoke_replaced_by(run, promoted)
    for old in run.replaced:
        if old.token_id and old.token_id != previous:
            await run.tracker.enter(Step.REVOKE)
            if not await revoking.retire(run, old.token_id, "replaced by the promoted version"):
                # Its record is not to be trusted: retired without revoking anything.
                await run.write(old, old.with_stage(Stage.ABANDONED), enabled=False)
