"""Decide everything a run does for one target, from its latest Key Vault version alone.

This is the one place where a run's decisions are taken; the engine carries the plan out and
decides nothing again. Pure and cheap: the timer's no-op path calls it on the listing of the
whole vault and makes no other call for targets that need nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation.state import Stage, Tag

if TYPE_CHECKING:
    from rotation.config import Target
    from rotation.state import VersionState

__all__ = ["Plan", "plan"]

DAY = 86_400.0


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

    @property
    def idle(self) -> bool:
        """Return whether the run has nothing to do."""
        return not (self.revoke_previous_first or self.sweep or self.rotate)


def plan(target: Target, latest: VersionState | None, now: float, *, force: bool) -> Plan:
    """Return the plan for *target* given its latest version's state (None: no secret yet)."""
    no_grace = target.grace_period_hours == 0
    if latest is None:
        reason = "no secret yet: bootstrap the first PAT"
        return Plan(reason=reason, sweep=True, rotate=True, revoke_replaced=no_grace)
    if latest.stage is Stage.PENDING:
        return Plan(
            reason="resume the unfinished rotation (a pending version)",
            sweep=True,
            rotate=True,
            resume=True,
            revoke_replaced=no_grace,
        )
    minting = latest.tag(Tag.MINTING) is not None
    revoke_at = latest.revoke_previous_at
    due, why = _due(target, latest, now)
    if force or due:
        return Plan(
            reason="forced" if force else why,
            revoke_previous_first=revoke_at is not None,  # it is about to be replaced
            sweep=True,
            rotate=True,
            revoke_replaced=no_grace,
        )
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
