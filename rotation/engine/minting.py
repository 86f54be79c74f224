"""The steps that put a new PAT in place: made (intent, mint, store) or adopted, then verified.

A mint is announced before ``token/create`` (the intent; a first mint's PAT is known by its
marker, which names the vault and the secret), its PAT stored at once as a ``pending`` version,
and verified once — with SCIM ``Me``, or by finding it in the principal's list when its scopes
forbid ``Me``.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from rotation import errors
from rotation.backends import StaticBearerAuth
from rotation.engine import revoking
from rotation.engine.report import Step
from rotation.engine.run import MAX_INTENTS, bootstrap_note, same_principal
from rotation.state import Tag, comment_for, current_version
from rotation.units import DAY

if TYPE_CHECKING:
    from rotation.engine.run import Run
    from rotation.state import VersionState

__all__ = [
    "adopt_pending",
    "intent",
    "mint",
    "preflight",
    "store",
    "verify",
    "verify_listed",
]

log = logging.getLogger("rotation")


def _may_call_scim(scopes: tuple[str, ...] | None) -> bool:
    """Return whether a PAT with *scopes* may call SCIM ``Me`` (an unscoped PAT may)."""
    return scopes is None or "scim" in scopes


async def preflight(run: Run) -> None:
    """Prove every consumer is reachable and accepts our credentials; change nothing."""
    if run.plan.rotate:
        await run.consumers().preflight()


async def adopt_pending(run: Run) -> None:
    """Take the pending version of an unfinished rotation as this run's new PAT."""
    latest = run.latest
    if not run.plan.resume or latest is None:
        return
    if run.latest_value is None:  # disabled or emptied since: it cannot be finished
        await run.tracker.enter(Step.VERIFY)
        await revoking.abandon(run, latest, "the pending PAT no longer works")
        return
    run.resumed = True
    run.take(latest, run.latest_value)


async def verify(run: Run) -> None:
    """Prove the new PAT authenticates as the configured principal (SCIM ``Me``), once."""
    if run.pending is None or run.pat is None or run.verified:
        return
    await run.tracker.enter(Step.VERIFY)
    if not _may_call_scim(run.scopes_of(run.pending.token_id)):
        await verify_listed(run, run.pending)
        return
    principal = run.issuer.application_id
    try:
        me = await run.workspace.me(StaticBearerAuth(run.pat), principal=principal)
    except errors.InvalidTokenError:
        if not run.resumed:
            raise
        me = None
    if me is not None and same_principal(me.user_name, principal):
        run.verified = True
        if run.resumed:
            run.report.notes.append("resumed the pending PAT of an unfinished rotation")
        run.tracker.done(Step.VERIFY, user=me.user_name)
        return
    if run.resumed:  # mint a fresh one instead
        await revoking.abandon(run, run.pending, "the pending PAT no longer works")
        run.pending = run.pat = None
        run.resumed = False
        return
    user = me.user_name if me else "?"
    await revoking.abandon(run, run.pending, f"it authenticates as {user!r}")
    msg = (
        f"The new PAT for target {run.target.name} authenticates as {user!r}, not as the "
        f"configured service principal {principal!r}; it was revoked. Check the principal's "
        "client_id / application_id in the config."
    )
    raise errors.VerificationError(msg)


async def intent(run: Run) -> None:
    """Record on the latest version that a mint is about to happen (swept if it crashes)."""
    if not run.plan.rotate or run.pending is not None:
        return
    run.rotation_id = secrets.token_hex(8)
    latest = run.latest
    if latest is not None:  # a first mint's PAT is known by its marker (vault and secret)
        await run.tracker.enter(Step.INTENT)
        # Earlier intents stay: a run that lost its lock may still be minting for one.
        earlier = (latest.tag(Tag.MINTING) or "").split()
        wanted = dict.fromkeys([*earlier, *run.carry, run.rotation_id])
        intents = " ".join(list(wanted)[-MAX_INTENTS:])
        await run.write(latest, latest.with_tags(minting=intents))


async def mint(run: Run) -> None:
    """Create the new PAT; after a lost answer, find and revoke what it may have made."""
    if not run.plan.rotate or run.pending is not None:
        return
    await run.tracker.enter(Step.MINT)
    lifetime = int(run.target.lifetime_days * DAY)
    comment = comment_for(run.target.name, run.rotation_id, run.vault, run.target.secret_name)
    scopes = run.scopes_for_new_pat()
    try:
        run.new = await run.issuer.create(lifetime_seconds=lifetime, comment=comment, scopes=scopes)
    except errors.DatabricksError as exc:
        if exc.outcome_unknown:
            await revoking.reconcile(run)
        raise
    token_id = run.new.info.token_id
    run.tracker.done(Step.MINT, rotation_id=run.rotation_id, token_id=token_id)


async def store(run: Run) -> None:
    """Store the new PAT as a ``pending`` version at once (even if the lease was lost)."""
    new = run.new
    if new is None or run.pending is not None:
        return
    await run.tracker.enter(Step.STORE, check_lease=False)
    current = current_version(run.versions, run.target.name)
    if current is None or not current.token_id:
        run.report.notes.append(bootstrap_note(run.tokens))
    expires = new.info.expiry_ms / 1000 if new.info.expiry_ms > 0 else None
    try:
        state = await run.rt.store.add_version(
            run.target.secret_name, new.value, tags=run.pending_tags(new), expires_on=expires
        )
    except errors.RotationError:
        # Never revoked blind: the store may have happened with its answer lost. The next
        # run adopts the pending version if it is there, or sweeps the PAT (its intent is
        # recorded).
        run.report.notes.append(
            f"the new PAT {new.info.token_id} could not be stored: the next run finishes "
            "the rotation with it if Key Vault has it, or revokes it"
        )
        raise
    run.take(run.remember(state), new.value)
    run.tracker.done(Step.STORE, version=state.version)


async def verify_listed(run: Run, state: VersionState) -> None:
    """Verify a PAT whose scopes forbid SCIM ``Me``: it is listed, alive, for the principal."""
    now = run.rt.clock()
    listed = any(t.token_id == state.token_id and t.alive_at(now) for t in run.tokens)
    if not listed:  # the run's list may predate a fresh PAT: look again
        await run.principal_tokens(again=True)
        listed = any(t.token_id == state.token_id and t.alive_at(now) for t in run.tokens)
    if listed:
        run.verified = True
        run.report.notes.append(
            "the new PAT's scopes do not allow SCIM Me: verified by finding it in the "
            "principal's token list; the consumers' test proves it works"
        )
        run.tracker.done(Step.VERIFY, token_id=state.token_id)
        return
    if run.resumed:
        await revoking.abandon(run, state, "the pending PAT is no longer listed")
        run.pending = run.pat = None
        run.resumed = False
        return
    msg = (
        f"The new PAT {state.token_id} of target {run.target.name} is not in the principal's "
        "token list right after it was made; it cannot be verified. Retry later."
    )
    raise errors.VerificationError(msg, transient=True)
