"""Run many targets: one paged Key Vault listing, then only the targets that need work.

A run whose targets are all idle costs ⌈secrets/25⌉ Key Vault list calls and nothing else.
Targets that need work run concurrently, at most ``config.concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation.engine import (
    Outcome,
    TargetReport,
    credential_due,
    format_time,
    health_checked_at,
    plan,
    rotates_credential,
    run_target,
)
from rotation.errors import UnknownTargetError
from rotation.state import Stage, Tag
from rotation.units import DAY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rotation.config import Config, Target
    from rotation.engine import Runtime
    from rotation.state import VersionState

__all__ = ["StatusRow", "needing_work", "rotate", "select", "status"]


def select(config: Config, names: Sequence[str] | None) -> list[Target]:
    """Return the targets called *names* (all when empty); ``UnknownTargetError`` otherwise."""
    if not names:
        return list(config.targets)
    known = [t.name for t in config.targets]
    unknown = [n for n in names if n not in known]
    if unknown:
        msg = f"Unknown target(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}."
        raise UnknownTargetError(msg)
    return [t for t in config.targets if t.name in set(names)]


async def rotate(
    rt: Runtime,
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    dry_run: bool = False,
    listing: dict[str, VersionState] | None = None,
) -> list[TargetReport]:
    """Rotate what is due (or everything named, with *force*); one report per target.

    *listing* is the vault's latest-version states when the caller already listed them.
    """
    targets = select(rt.config, names)
    if listing is None:
        listing = await rt.store.list_latest()
    gate = asyncio.Semaphore(rt.config.concurrency)

    async def one(target: Target) -> TargetReport:
        latest = listing.get(target.secret_name.lower())
        p = plan(target, latest, rt.clock(), force=force)
        idle = p.idle and _credential_due(rt, target, listing) is None
        if idle and not dry_run:  # a dry run always runs its read-only checks
            return _idle(target, latest, p.reason)
        async with gate:
            return await run_target(rt, target, force=force, dry_run=dry_run)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def needing_work(rt: Runtime) -> tuple[dict[str, VersionState], list[Target]]:
    """Return the vault listing and the targets that need a run (rotation or housekeeping)."""
    listing = await rt.store.list_latest()
    now = rt.clock()
    busy = [
        t
        for t in rt.config.targets
        if not plan(t, listing.get(t.secret_name.lower()), now, force=False).idle
        or _credential_due(rt, t, listing) is not None
    ]
    return listing, busy


def _credential_rotation_at(rt: Runtime, target: Target, expires: float | None) -> float | None:
    """Return when the credential phase rotates *target*'s credential, if it does."""
    if expires is None or not rotates_credential(rt.config, target):
        return None
    return expires - target.rotate_credential_before_days * DAY


def _credential_due(rt: Runtime, target: Target, listing: dict[str, VersionState]) -> str | None:
    """Return why *target*'s credential phase has work, from the vault's listing; or None."""
    stored = target.principal.credential_secret_name
    latest = listing.get(stored.lower()) if stored else None
    return credential_due(rt.config, target, latest, rt.clock())


def _checked(latest: VersionState | None) -> float | None:
    """Return when the current PAT was last known alive (checked, or verified when written)."""
    if latest is None or latest.stage is not Stage.CURRENT:
        return None
    return health_checked_at(latest)


def _idle(target: Target, latest: VersionState | None, reason: str) -> TargetReport:
    report = TargetReport(target.name, outcome=Outcome.NOT_DUE, reason=reason)
    if latest is not None:
        report.token_id = latest.token_id
        report.expires_on = latest.expires_on
    return report


@dataclass(frozen=True, slots=True)
class StatusRow:
    """What ``status`` shows for one target (never a value)."""

    target: str
    secret_name: str
    token_id: str | None
    stage: str | None
    created_on: float | None
    expires_on: float | None
    days_left: float | None
    due: bool
    """Whether the next run does anything for this target (rotation or housekeeping)."""
    reason: str
    last_result: str | None
    consumers: str | None
    revoke_previous_at: float | None
    health_checked_at: float | None
    credential_expires_on: float | None
    credential_days_left: float | None
    credential_rotation_at: float | None = None
    """When the rotator rotates the principal's credential (None: it does not, or no expiry)."""

    def to_json(self) -> dict[str, object]:
        """Return the stable JSON form (documented in the README)."""
        return {
            "target": self.target,
            "secret_name": self.secret_name,
            "token_id": self.token_id,
            "stage": self.stage,
            "created_at": format_time(self.created_on),
            "expires_at": format_time(self.expires_on),
            "days_left": _days(self.days_left),
            "due": self.due,
            "reason": self.reason,
            "last_result": self.last_result,
            "consumers": self.consumers,
            "revoke_previous_at": format_time(self.revoke_previous_at),
            "health_checked_at": format_time(self.health_checked_at),
            "credential_expires_at": format_time(self.credential_expires_on),
            "credential_days_left": _days(self.credential_days_left),
            "credential_rotation_at": format_time(self.credential_rotation_at),
        }


def _stage(v: VersionState | None) -> str | None:
    """Return a version's stage for ``status``: ``unmanaged``, or ``unknown (…)`` if malformed."""
    if v is None:
        return None
    if v.stage is not None:
        return v.stage.value
    return f"unknown ({(v.tag(Tag.STAGE) or '')[:32]})" if v.managed else "unmanaged"


def _days(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def status(rt: Runtime) -> list[StatusRow]:
    """Return every target's status from one paged listing (credential expiry included)."""
    listing = await rt.store.list_latest()
    now = rt.clock()
    rows = []
    for t in rt.config.targets:
        v = listing.get(t.secret_name.lower())
        p = plan(t, v, now, force=False)
        stored = t.principal.credential_secret_name
        credential = listing.get(stored.lower()) if stored else None
        cred_exp = credential.expires_on if credential else None
        rows.append(
            StatusRow(
                target=t.name,
                secret_name=t.secret_name,
                token_id=v.token_id if v else None,
                stage=_stage(v),
                created_on=v.created_on if v else None,
                expires_on=v.expires_on if v else None,
                days_left=(v.expires_on - now) / DAY if v and v.expires_on else None,
                due=not p.idle,
                reason=p.reason,
                last_result=v.tag(Tag.LAST_RESULT) if v else None,
                consumers=v.tag(Tag.CONSUMERS) if v else None,
                revoke_previous_at=v.revoke_previous_at if v else None,
                health_checked_at=_checked(v),
                credential_expires_on=cred_exp,
                credential_days_left=None if cred_exp is None else (cred_exp - now) / DAY,
                credential_rotation_at=_credential_rotation_at(rt, t, cred_exp),
            )
        )
    return rows
