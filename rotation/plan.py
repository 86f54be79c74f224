"""Decide what a run must do for one target, from its latest Key Vault version alone.

Pure and cheap: the timer's no-op path calls it on the listing of the whole vault and makes no
other call for targets that need nothing.
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
    """What a run will do for a target, and why (one human sentence)."""

    rotate: bool
    resume: bool
    revoke_previous: bool
    sweep: bool
    reason: str

    @property
    def idle(self) -> bool:
        """Return whether nothing at all needs doing."""
        return not (self.rotate or self.revoke_previous or self.sweep)


def plan(  # noqa: PLR0911 — one return per decision
    target: Target, latest: VersionState | None, now: float, *, force: bool
) -> Plan:
    """Return the plan for *target* given its latest version's state (None: no secret yet)."""
    if latest is None:
        return Plan(
            rotate=True,
            resume=False,
            revoke_previous=False,
            sweep=False,
            reason="no secret yet: bootstrap the first PAT",
        )
    if latest.stage is Stage.PENDING:
        return Plan(
            rotate=True,
            resume=True,
            revoke_previous=False,
            sweep=False,
            reason="resume the unfinished rotation (a pending version)",
        )
    sweep = latest.tag(Tag.MINTING) is not None
    revoke_at = latest.revoke_previous_at
    revoke = revoke_at is not None and revoke_at <= now
    due, why = _due(target, latest, now)
    if force:
        return Plan(rotate=True, resume=False, revoke_previous=revoke, sweep=sweep, reason="forced")
    if due:
        return Plan(rotate=True, resume=False, revoke_previous=revoke, sweep=sweep, reason=why)
    if revoke:
        return Plan(
            rotate=False,
            resume=False,
            revoke_previous=True,
            sweep=sweep,
            reason="grace period over: revoke the previous PAT",
        )
    if sweep:
        return Plan(
            rotate=False,
            resume=False,
            revoke_previous=False,
            sweep=True,
            reason="an interrupted mint was recorded: sweep orphans",
        )
    return Plan(rotate=False, resume=False, revoke_previous=False, sweep=False, reason=why)


def _due(target: Target, latest: VersionState, now: float) -> tuple[bool, str]:
    if not latest.enabled:
        return True, "the latest version is disabled"
    if latest.expires_on is None:
        return True, "the secret has no expiry date"
    left = (latest.expires_on - now) / DAY
    if left < target.rotate_before_days:
        return True, f"expires in {left:.1f} days (rotate when < {target.rotate_before_days})"
    return False, f"not due: expires in {left:.1f} days (rotate when < {target.rotate_before_days})"
