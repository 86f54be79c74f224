"""The engine: one run of one target — the plan, the steps, the guard, the report.

:func:`run_target` runs a target's state machine once and reports (it never raises but for a
cancellation). :func:`plan` decides what a run does from the latest Key Vault version alone;
:class:`Runtime` is everything a run receives from outside; :class:`TargetReport` is what it says.
"""

from __future__ import annotations

from rotation.engine.consumers import Consumers
from rotation.engine.credential import credential_due, rotates_credential
from rotation.engine.issuer import issuer_context, issuer_for
from rotation.engine.plan import HEAL_REASON, HEALTH_SLACK, Plan, health_checked_at, plan
from rotation.engine.report import (
    ConsumerResult,
    ErrorInfo,
    Outcome,
    Step,
    TargetReport,
    format_time,
)
from rotation.engine.run import CREDENTIAL_FAIL_DAYS, CREDENTIAL_WARN_DAYS, Run, same_principal
from rotation.engine.runner import run_target, steps
from rotation.engine.runtime import Runtime
from rotation.engine.tracker import Tracker

__all__ = [
    "CREDENTIAL_FAIL_DAYS",
    "CREDENTIAL_WARN_DAYS",
    "HEALTH_SLACK",
    "HEAL_REASON",
    "ConsumerResult",
    "Consumers",
    "ErrorInfo",
    "Outcome",
    "Plan",
    "Run",
    "Runtime",
    "Step",
    "TargetReport",
    "Tracker",
    "credential_due",
    "format_time",
    "health_checked_at",
    "issuer_context",
    "issuer_for",
    "plan",
    "rotates_credential",
    "run_target",
    "same_principal",
    "steps",
]
