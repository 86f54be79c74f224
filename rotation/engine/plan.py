"""Decide everything a run does for one target, from its latest Key Vault version alone.

This is the one place where a run's decisions are taken; the engine carries the plan out and
decides nothing again. Pure and cheap: the timer's no-op path calls it on the listing of the
whole vault and makes no other call for targets that need nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rotation.state import Stage, Tag, finite
from rotation.units import DAY, HOUR

if TYPE_CHECKING:
    from rotation.config import Target
    from rotation.state import VersionState

__all__ = ["HEAL_REASON", "Plan", "heal", "health_checked_at", "mismatch", "plan", "tag_problem"]

HEALTH_SLACK = 15 * 60.0
"""A health check counts as due this early, so a timer as often as the cadence checks every run."""
HEAL_REASON = (
    "the current PAT was revoked outside the rotator (unused for 90 days, CAN_USE removed, "
    "or revoked by an admin)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a run does for a target, in the order it does it, and why (one human sentence)."""

    reason: str
    revoke_previous_first: bool = False
    """Revoke the PAT the latest version replaced, before anything else (grace over, or a new
    rotation is about to replace the latest version)."""
    sweep: bool = False
    """List the principal's PATs and revoke this target's rotator-made ones nobody references."""
    clear_intent: bool = False
    """Remove the latest version's ``minting`` tag once the sweep left nothing for later."""
    rotate: bool = False
    """Put a new PAT in place: preflight, mint (or resume), verify, test, push, promote."""
    resume: bool = False
    """Finish the latest (pending) version's PAT instead of minting, if it still works."""
    revoke_replaced: bool = False
    """Revoke the replaced PAT right after promotion (no grace period)."""
    check_health: bool = False
    """Look for the current PAT in the principal's token list; if it is gone, heal (rotate)."""
    healing: bool = False
    """This rotation replaces a PAT that died outside the rotator (outcome ``healed``)."""
    mismatch: bool = False
    """The tags disagree with Databricks: destroy nothing, put a fresh PAT in place (outcome
    ``mismatch``); the versions it replaces are disabled and their PATs left to a later sweep."""

    @property
    def idle(self) -> bool:
        """Return whether the run has nothing to do."""
        return not (self.revoke_previous_first or self.sweep or self.rotate or self.check_health)


def plan(target: Target, latest: VersionState | None, now: float, *, force: bool) -> Plan:
    """Return the plan for *target* given its latest version's state (None: no secret yet)."""
    decided = _rotation_plan(target, latest, now, force=force)
    if decided.rotate or latest is None or not _health_due(target, latest, now):
        return decided
    checked = health_checked_at(latest)
    ago = "never" if checked is None else f"{(now - checked) / HOUR:.1f} h ago"
    why = f"health check due (last {ago}, every {target.health_check_hours:g} h)"
    reason = why if decided.idle else f"{decided.reason}; {why}"
    return replace(decided, reason=reason, check_health=True)


def mismatch(target: Target, why: str) -> Plan:
    """Return the plan when the records disagree with the service: a fresh PAT, nothing revoked."""
    del target
    reason = (
        f"the Key Vault tags disagree with Databricks ({why}): nothing is revoked; a fresh PAT "
        "replaces the one they name"
    )
    return Plan(reason=reason, rotate=True, healing=True, mismatch=True)


def tag_problem(latest: VersionState, target: str) -> str | None:
    """Return why *latest*'s own tags cannot be trusted (seen without any call), or None."""
    if not latest.managed:
        return None
    owner = latest.tag(Tag.TARGET)
    if owner not in {None, target}:
        return f"the latest version {latest.version} was written for target {owner!r}"
    if latest.stage is None:
        raw = latest.tag(Tag.STAGE) or ""
        return f"the latest version {latest.version} has stage {raw[:32]!r}, which is unknown"
    if latest.enabled and latest.stage not in {Stage.CURRENT, Stage.PENDING}:
        return f"the latest version {latest.version} is enabled in stage {latest.stage}"
    return None


def heal(target: Target, latest: VersionState) -> Plan:
    """Return the plan that replaces *latest*'s PAT, found dead by the health check."""
    return Plan(
        reason=HEAL_REASON,
        revoke_previous_first=latest.revoke_previous_at is not None,
        sweep=True,
        rotate=True,
        revoke_replaced=target.grace_period_hours == 0,
        healing=True,
    )


def health_checked_at(latest: VersionState) -> float | None:
    """Return when *latest*'s PAT was last known alive: its health check, else its writing."""
    checked = finite(latest.tag(Tag.HEALTH_CHECKED_AT))
    return checked if checked is not None else latest.order[0] or None


def _health_due(target: Target, latest: VersionState, now: float) -> bool:
    if target.health_check_hours <= 0 or latest.stage is not Stage.CURRENT:
        return False
    if not latest.token_id or not latest.enabled:
        return False
    checked = health_checked_at(latest)
    return checked is None or now - checked >= target.health_check_hours * HOUR - HEALTH_SLACK


def _rotation_plan(target: Target, latest: VersionState | None, now: float, *, force: bool) -> Plan:
    """Return what the latest version's own state calls for (before any health check)."""
    no_grace = target.grace_period_hours == 0
    if latest is None:
        reason = "no secret yet: bootstrap the first PAT"
        return Plan(reason=reason, sweep=True, rotate=True, revoke_replaced=no_grace)
    problem = tag_problem(latest, target.name)
    if problem is not None:
        return mismatch(target, problem)
    if latest.stage is Stage.PENDING:
        return Plan(
            reason="resume the unfinished rotation (a pending version)",
            sweep=True,
            rotate=True,
            resume=True,
            revoke_replaced=no_grace,
        )
    due, why = _due(target, latest, now)
    if force or due:
        return Plan(
            reason="forced" if force else why,
            revoke_previous_first=latest.revoke_previous_at is not None,  # about to be replaced
            sweep=True,
            rotate=True,
            revoke_replaced=no_grace,
        )
    return _housekeeping(latest, now, why)


def _housekeeping(latest: VersionState, now: float, why: str) -> Plan:
    """Return the plan of a target that is not due: a grace period over, an interrupted mint."""
    minting = latest.tag(Tag.MINTING) is not None
    revoke_at = latest.revoke_previous_at
    if revoke_at is not None and revoke_at <= now:
        return Plan(
            reason="grace period over: revoke the previous PAT",
            revoke_previous_first=True,
            sweep=minting,
            clear_intent=minting,
        )
    if minting:
        return Plan(
            reason="an interrupted mint was recorded: sweep orphans", sweep=True, clear_intent=True
        )
    return Plan(reason=why)


def _due(target: Target, latest: VersionState, now: float) -> tuple[bool, str]:
    if not latest.enabled:
        return True, "the latest version is disabled"
    if latest.expires_on is None:
        return True, "the secret has no expiry date"
    left = (latest.expires_on - now) / DAY
    if left < target.rotate_before_days:
        return True, f"expires in {left:.1f} days (rotate when < {target.rotate_before_days})"
    return False, f"not due: expires in {left:.1f} days (rotate when < {target.rotate_before_days})"
