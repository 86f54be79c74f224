"""The credential phase: rotate the principal's own credential with the PAT's crash-safe machine.

Runs last in a run, only when the credential (its Key Vault ``exp``) has fewer than
``rotate_credential_before_days`` left — or an earlier phase left work (a pending credential,
an intent) — and never in a run that rotated the PAT (a PAT is always minted with a proven
credential, never mid-change)::

    list the credential's versions → sweep orphans (proven, :mod:`credential_proof`) → quota
      → intent (on the current version, before the create) → create → store (pending, at once)
      → verify (polled: Entra replicates) → promote (current) → clear the intent
      → delete the replaced one (proven) → clear ``credential-replaced``

A crash after the create leaves the intent: the next run deletes the orphan. A crash after the
store leaves a pending version: the next run verifies and finishes it. A crash after the
promotion leaves ``credential-replaced`` on the latest version: the next run deletes what it
names. Readers never use an unproven version (:meth:`KeyVaultStore.read_credential` skips it).
The steps are :class:`~rotation.engine.credential_phase.Phase`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation import errors
from rotation.engine.credential_phase import Phase
from rotation.engine.credential_proof import INTENT, KEY_ID, REPLACED, CredentialVersions
from rotation.engine.report import Step
from rotation.state import Stage
from rotation.units import DAY

if TYPE_CHECKING:
    from rotation.config import Config, Target
    from rotation.engine.run import Run
    from rotation.state import VersionState

__all__ = ["credential_due", "rotate_credential", "rotates_credential", "wanted"]


def rotates_credential(config: Config, target: Target) -> bool:
    """Return whether *target* rotates its principal's credential.

    Of the targets that share one credential secret and rotate it, the first in the config does.
    """
    name = target.principal.credential_secret_name
    if not (target.rotate_credential and target.principal.rotates_credential and name):
        return False
    sharing = [
        t
        for t in config.targets
        if (t.principal.credential_secret_name or "").lower() == name.lower()
        and t.rotate_credential
        and t.principal.rotates_credential
    ]
    return not sharing or sharing[0].name == target.name


def credential_due(
    config: Config, target: Target, latest: VersionState | None, now: float
) -> str | None:
    """Return why the credential phase has work, from the credential's latest version; or None."""
    if latest is None or not rotates_credential(config, target):
        return None
    managed = latest.managed
    left = None if latest.expires_on is None else (latest.expires_on - now) / DAY
    reasons = [
        (
            managed and latest.stage is Stage.PENDING and bool(latest.tags.get(KEY_ID)),
            "an unproven credential is pending",
        ),
        (bool(latest.tags.get(INTENT)), "an interrupted credential rotation left an intent"),
        (
            managed and latest.stage is Stage.CURRENT and bool(latest.tags.get(REPLACED)),
            "the credential a rotation replaced is still to be deleted",
        ),
        (
            left is not None and left < target.rotate_credential_before_days,
            f"the principal's credential expires in {left or 0:.1f} days",
        ),
    ]
    return next((why for due, why in reasons if due), None)


async def wanted(run: Run) -> str | None:
    """Return why the credential phase has work, or None (reads the credential's versions once)."""
    name = run.target.principal.credential_secret_name
    if not name or not rotates_credential(run.rt.config, run.target):
        return None
    run.credential_versions = await run.rt.store.versions(name)
    latest = next((v for v in reversed(run.credential_versions) if v.enabled), None)
    return credential_due(run.rt.config, run.target, latest, run.rt.clock())


async def rotate_credential(run: Run) -> None:
    """Run the credential phase (see the module docstring); a failure fails the run, loudly.

    Without a call when the PAT plan had work and the credential's expiry (read by the run's
    credentials step) is not near: work an earlier phase left is taken up by the next run whose
    PAT plan is idle (the service's listing shows it).
    """
    if not rotates_credential(run.rt.config, run.target):
        run.report.credential_result = "off"
        return
    if run.credential_versions is None:
        left = run.credential_days_left()
        if left is None or left >= run.target.rotate_credential_before_days:
            run.report.credential_result = "not-due"
            return
        if run.plan.rotate:
            run.report.credential_result = "deferred"
            run.report.notes.append(
                "the next run rotates the credential (this run rotated the PAT)"
            )
            return
        await wanted(run)
    versions = CredentialVersions(run.credential_versions or [])
    current = versions.current
    latest = next((v for v in reversed(versions.versions) if v.enabled), None)
    if current is None or credential_due(run.rt.config, run.target, latest, run.rt.clock()) is None:
        run.report.credential_result = "not-due"
        return
    await run.tracker.enter(Step.CREDENTIAL)
    try:
        await Phase(run, versions, current).go()
    except errors.RotationError as exc:
        run.report.credential_result = f"failed: {exc.kind}"
        raise
