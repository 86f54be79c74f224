"""What a run did, per target: value objects with a stable JSON form and a readable table.

Reports carry names, ids, times and error messages — never a secret value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["ConsumerResult", "ErrorInfo", "Outcome", "Step", "TargetReport", "format_time"]


class Step(StrEnum):
    """A step of a run, in the order a rotation goes through them."""

    LOAD = "load"
    CREDENTIALS = "credentials"
    HEALTH = "health"
    PROVE = "prove"
    SWEEP = "sweep"
    PREFLIGHT = "preflight"
    INTENT = "intent"
    MINT = "mint"
    STORE = "store"
    VERIFY = "verify"
    TEST = "test"
    PUSH = "push"
    CONFIRM = "confirm"
    PROMOTE = "promote"
    REVOKE = "revoke"
    CREDENTIAL = "rotate-credential"
    """The credential phase: the principal's own credential (engine/credential.py)."""


class Outcome(StrEnum):
    """How a target's run ended."""

    ROTATED = "rotated"
    HEALED = "healed"
    MISMATCH = "mismatch"
    """The Key Vault tags disagreed with Databricks: nothing destroyed, a fresh PAT put in place."""
    HEALTHY = "healthy"
    NOT_DUE = "not-due"
    HOUSEKEEPING = "housekeeping"
    WOULD_ROTATE = "would-rotate"
    FAILED = "failed"
    BUSY = "busy"


@dataclass(slots=True)
class ConsumerResult:
    """One consumer's part in a rotation."""

    name: str
    tested: bool = False
    pushed: bool = False
    confirmed: bool = False
    restored: bool = False
    """The consumer refused the new PAT after saving it and was given the previous one back."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a run failed: the step, a stable kind, a message that says what to do."""

    step: Step
    kind: str
    message: str
    transient: bool


@dataclass(slots=True)
class TargetReport:
    """The result of one target's run."""

    target: str
    outcome: Outcome = Outcome.NOT_DUE
    reason: str = ""
    rotation_id: str | None = None
    token_id: str | None = None
    previous_token_id: str | None = None
    expires_on: float | None = None
    credential_expires_on: float | None = None
    credential_result: str | None = None
    """The credential phase: ``rotated``, ``tidied``, ``not-due``, ``deferred``, ``off``,
    ``would-rotate`` (a dry run), ``failed: <kind>``."""
    credential_deleted: list[str] = field(default_factory=list)
    """Key ids / secret ids of the principal's credentials this run deleted (replaced, orphans)."""
    revoked: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    """Orphans younger than ``orphan_min_age_minutes``, left for a later run (still recorded)."""
    consumers: list[ConsumerResult] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        """Return whether the run ended without failure."""
        return self.outcome not in {Outcome.FAILED, Outcome.BUSY}

    def to_json(self) -> dict[str, Any]:
        """Return the stable JSON form (documented in the README)."""
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["expires_at"] = format_time(self.expires_on)
        data["credential_expires_at"] = format_time(self.credential_expires_on)
        del data["expires_on"], data["credential_expires_on"]
        return data


def format_time(epoch: float | None) -> str | None:
    """Return *epoch* as an ISO-8601 UTC string, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
