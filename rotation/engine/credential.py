"""The credential phase: rotate the principal's own credential with the PAT's crash-safe machine.

Runs last in a run, only when the credential (its Key Vault ``exp``) has fewer than
``rotate_credential_before_days`` left — or an earlier phase left work (a pending credential,
an intent) — and never in a run that rotated the PAT (a PAT is always minted with a proven
credential, never mid-change)::

    list the credential's versions → sweep orphans (proven, :mod:`credential_proof`) → quota
      → intent (on the current version, before the create) → create → store (pending, at once)
      → verify (polled: Entra replicates) → promote (current) → delete the replaced one (proven)

A crash after the create leaves the intent: the next run deletes the orphan. A crash after the
store leaves a pending version: the next run verifies and finishes it. Readers never use an
unproven version (:meth:`KeyVaultStore.read_credential` skips it).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from rotation import errors
from rotation.engine.credential_proof import (
    INTENT,
    KEY_ID,
    MAX_INTENTS,
    REPLACED,
    CredentialVersions,
    Intent,
    Owner,
    identify,
    orphans,
    refusal,
)
from rotation.engine.issuer import issuer_context
from rotation.engine.report import Step
from rotation.state import MANAGED_BY, Stage, Tag, comment_for
from rotation.units import DAY, MINUTE

if TYPE_CHECKING:
    from rotation.config import Config, Target
    from rotation.engine.run import Run
    from rotation.principals import Credential, CredentialRotator, NewCredential
    from rotation.secret import Secret
    from rotation.state import VersionState

__all__ = ["FREE_SLOTS", "credential_due", "rotate_credential", "wanted"]

FREE_SLOTS = 2
"""Free credential slots a rotation needs: one for the new credential, one a crash may fill."""
CONTENT_TYPE = "application/vnd.pat-rotator.credential"

log = logging.getLogger("rotation")


def _rotating(config: Config, target: Target) -> bool:
    """Return whether *target* rotates its principal's credential (the first target sharing it)."""
    name = target.principal.credential_secret_name
    if not (target.rotate_credential and target.principal.rotates_credential and name):
        return False
    sharing = [
        t
        for t in config.targets
        if (t.principal.credential_secret_name or "").lower() == name.lower()
    ]
    return sharing[0].name == target.name


def credential_due(
    config: Config, target: Target, latest: VersionState | None, now: float
) -> str | None:
    """Return why the credential phase has work, from the credential's latest version; or None."""
    if latest is None or not _rotating(config, target):
        return None
    if latest.managed and latest.stage is Stage.PENDING and latest.tags.get(KEY_ID):
        return "an unproven credential is pending"
    if latest.tags.get(INTENT):
        return "an interrupted credential rotation left an intent"
    if latest.expires_on is None:
        return None
    left = (latest.expires_on - now) / DAY
    if left < target.rotate_credential_before_days:
        return f"the principal's credential expires in {left:.1f} days"
    return None


async def wanted(run: Run) -> bool:
    """Return whether the credential phase has work (reads the credential's versions once)."""
    name = run.target.principal.credential_secret_name
    if not name or not _rotating(run.rt.config, run.target):
        return False
    run.credential_versions = await run.rt.store.versions(name)
    latest = next((v for v in reversed(run.credential_versions) if v.enabled), None)
    return credential_due(run.rt.config, run.target, latest, run.rt.clock()) is not None


async def rotate_credential(run: Run) -> None:
    """Run the credential phase (see the module docstring); a failure fails the run, loudly."""
    if run.credential_versions is None and not await wanted(run):
        run.report.credential_result = "not-due" if _rotating(run.rt.config, run.target) else "off"
        return
    versions = CredentialVersions(run.credential_versions or [])
    current = versions.current
    latest = next((v for v in reversed(versions.versions) if v.enabled), None)
    if current is None or credential_due(run.rt.config, run.target, latest, run.rt.clock()) is None:
        run.report.credential_result = "not-due"
        return
    if run.plan.rotate:
        run.report.credential_result = "deferred"
        run.report.notes.append(
            "the credential is rotated by the next run (this run rotated the PAT)"
        )
        return
    await run.tracker.enter(Step.CREDENTIAL)
    try:
        await _Phase(run, versions, current).go()
    except errors.RotationError as exc:
        run.report.credential_result = f"failed: {exc.kind}"
        raise


class _Phase:
    """One credential rotation: its state and steps."""

    def __init__(self, run: Run, versions: CredentialVersions, current: VersionState) -> None:
        self.run = run
        self.rt = run.rt
        self.versions = versions
        self.current = current
        self.name = str(run.target.principal.credential_secret_name)
        self.owner = Owner(run.target.name, run.vault, self.name)
        self.listed: list[Credential] = []
        self.carried: list[Intent] = []

    async def go(self) -> None:
        """Rotate: sweep, then finish a pending credential or create one and finish it."""
        value = await self.rt.store.read_version(self.current)
        if value is None:
            msg = f"Key Vault secret {self.name!r}: its current version has no value."
            raise errors.CredentialRotationError(msg)
        context = issuer_context(self.rt, self.run.target, self.run.workspace)
        async with self.run.target.principal.credential_rotator(context, value) as rot:
            await self._sweep(rot)
            pending = self.versions.pending
            if pending is not None and await self._finish(rot, pending):
                return
            new, state, old_key = await self._create(rot, value)
            await self._finish(rot, state, new.value, old_key)

    async def _sweep(self, rot: CredentialRotator) -> None:
        """Delete this deployment's proven orphans; keep intents a young orphan still needs."""
        listed = await rot.list()
        young_after = self.rt.clock() - self.rt.config.orphan_min_age_minutes * MINUTE
        old, young = orphans(
            listed,
            self.versions,
            self.owner,
            keeps_marker=rot.keeps_marker,
            young_after=young_after,
        )
        for orphan in old:
            if await rot.delete(orphan.key_id):
                self.run.report.credential_deleted.append(orphan.key_id)
                log.info("target=%s credential orphan %s deleted", self.owner.target, orphan.key_id)
        if young:
            self.run.report.deferred += [c.key_id for c in young]
        self.carried = self.versions.intents() if young else []
        self.listed = [c for c in listed if c not in old]

    async def _create(
        self, rot: CredentialRotator, value: Secret
    ) -> tuple[NewCredential, VersionState, str | None]:
        """Check the quota, record the intent, create, and store the value as pending at once."""
        listed = self.listed
        if rot.quota is not None and rot.quota - len(listed) < FREE_SLOTS:
            msg = (
                f"The principal of target {self.owner.target} holds {len(listed)} of its "
                f"{rot.quota} credentials; a safe rotation needs {FREE_SLOTS} free (one for the "
                "new one, one a crash could fill). Delete the ones nothing uses; nothing was "
                "created."
            )
            raise errors.CredentialQuotaError(msg)
        old_key = identify(self.current, value, listed)
        rotation_id = secrets.token_hex(8)
        known = frozenset() if rot.keeps_marker else frozenset(c.key_id for c in listed)
        intent = Intent(rotation_id, self.rt.clock(), known)
        intents = ";".join([*(i.render() for i in self.carried), intent.render()][-MAX_INTENTS:])
        tags = self.current.with_tags(credential_minting=intents)
        if old_key and not self.current.tags.get(KEY_ID):
            tags[KEY_ID] = old_key
        self.current = await self.rt.store.update(self.current, tags=tags)
        marker = comment_for(self.owner.target, rotation_id, self.owner.vault, self.name)
        lifetime = int(self.run.target.credential_lifetime_days * DAY)
        new = await rot.create(marker=marker, lifetime_seconds=lifetime)
        log.info("target=%s credential %s created", self.owner.target, new.info.key_id)
        self.listed.append(new.info)
        state = await self.rt.store.add_version(
            self.name,
            new.value,
            tags=self._pending_tags(rotation_id, new.info.key_id, old_key),
            expires_on=new.info.expires_on,
            content_type=CONTENT_TYPE,
        )
        return new, state, old_key

    def _pending_tags(self, rotation_id: str, key_id: str, old_key: str | None) -> dict[str, str]:
        tags = {
            Tag.MANAGED_BY.value: MANAGED_BY,
            Tag.TARGET.value: self.owner.target,
            Tag.ROTATION_ID.value: rotation_id,
            Tag.STAGE.value: Stage.PENDING.value,
            Tag.WRITTEN_AT.value: f"{self.rt.clock():.6f}",
            KEY_ID: key_id,
        }
        if old_key:
            tags[REPLACED] = old_key
        return tags

    async def _finish(
        self,
        rot: CredentialRotator,
        state: VersionState,
        value: Secret | None = None,
        old_key: str | None = None,
    ) -> bool:
        """Verify the pending credential, promote it, clear the intent, delete what it replaced.

        Return False when a pending credential to resume is gone (abandoned: create afresh).
        """
        new_key = str(state.tags.get(KEY_ID))
        if value is None:  # resuming an earlier run's pending credential
            value = await self.rt.store.read_version(state)
            old_key = state.tags.get(REPLACED)
        if value is None or new_key.lower() not in {c.key_id.lower() for c in self.listed}:
            await self._abandon(rot, state, "its credential is gone")
            return False
        try:
            await rot.verify(value)
        except errors.CredentialError as exc:
            await self._abandon(rot, state, f"it does not authenticate ({exc.kind})")
            raise
        promoted = await self.rt.store.update(state, tags=state.with_stage(Stage.CURRENT))
        if self.current.tags.get(INTENT):
            tags = self.current.with_tags(credential_minting=None)
            await self.rt.store.update(self.current, tags=tags)
        await self._delete_replaced(rot, old_key, new_key)
        self.run.report.credential_expires_on = promoted.expires_on
        self.run.report.credential_result = "rotated"
        self.run.tracker.done(Step.CREDENTIAL, key_id=new_key)
        return True

    async def _delete_replaced(
        self, rot: CredentialRotator, old_key: str | None, new_key: str
    ) -> None:
        why = refusal(old_key, new_key, self.listed, self.owner)
        if why is None and old_key is not None and await rot.delete(old_key):
            self.run.report.credential_deleted.append(old_key)
            return
        if why not in {None, "gone"}:
            self.run.report.notes.append(
                f"the replaced credential {old_key or '(unknown key id)'} of the principal was "
                f"NOT deleted: {why}"
            )

    async def _abandon(self, rot: CredentialRotator, state: VersionState, why: str) -> None:
        """Disable a pending credential version that cannot be finished; delete its credential."""
        key = state.tags.get(KEY_ID)
        await self.rt.store.update(state, tags=state.with_stage(Stage.ABANDONED), enabled=False)
        listed = {c.key_id.lower() for c in self.listed}
        if key and key.lower() in listed and await rot.delete(key):
            self.run.report.credential_deleted.append(key)
        self.run.report.notes.append(f"the pending credential {key} was abandoned: {why}")
