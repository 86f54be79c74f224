"""The steps of one credential rotation (see :mod:`rotation.engine.credential`).

:class:`Phase` holds what the rotation found and made; every deletion is judged by
:mod:`rotation.engine.credential_proof` on the service's own list and this vault's records.
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
    Intent,
    Owner,
    identify,
    orphans,
    refusal,
)
from rotation.engine.issuer import issuer_context
from rotation.engine.report import Step
from rotation.engine.run import CREDENTIAL_NOTE
from rotation.state import MANAGED_BY, Stage, Tag, comment_for
from rotation.units import DAY, MINUTE

if TYPE_CHECKING:
    from rotation.engine.credential_proof import CredentialVersions
    from rotation.engine.run import Run
    from rotation.principals import Credential, CredentialRotator, NewCredential
    from rotation.secret import Secret
    from rotation.state import VersionState

__all__ = ["CONTENT_TYPE", "FREE_SLOTS", "Phase"]

FREE_SLOTS = 2
"""Free credential slots a rotation needs: one for the new credential, one a crash may fill."""
CONTENT_TYPE = "application/vnd.pat-rotator.credential"

log = logging.getLogger("rotation")


class Phase:
    """One credential rotation: what it found and made, and its steps."""

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
        """Sweep; then finish what an earlier run left, or create a credential and finish it."""
        value = await self.rt.store.read_version(self.current)
        if value is None:
            msg = f"Key Vault secret {self.name!r}: its current version has no value."
            raise errors.CredentialRotationError(msg)
        context = issuer_context(self.rt, self.run.target, self.run.workspace)
        async with self.run.target.principal.credential_rotator(context, value) as rot:
            await self._sweep(rot)
            if self.carried:  # a young orphan: its intent stays on the latest version for later
                self.run.report.credential_result = "deferred"
                self.run.report.notes.append(
                    "a credential orphan younger than orphan_min_age_minutes waits for a later "
                    "run; so does the credential's rotation"
                )
                return
            pending = self.versions.pending
            if pending is not None and await self._finish(rot, pending):
                return
            if pending is None and self.current.managed and self.current.tags.get(REPLACED):
                await self._tidy(rot, self.current)  # a crash after the promotion
                self.run.report.credential_result = "tidied"
                self.run.tracker.done(Step.CREDENTIAL, key_id=self.current.tags.get(KEY_ID))
                return
            new, state = await self._create(rot, value)
            await self._finish(rot, state, new.value)

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
    ) -> tuple[NewCredential, VersionState]:
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
        await self.run.tracker.enter(Step.CREDENTIAL)  # the lease, before the first write
        old_key = identify(self.current, value, listed)
        rotation_id = secrets.token_hex(8)
        known = frozenset() if rot.keeps_marker else frozenset(c.key_id for c in listed)
        intent = Intent(rotation_id, self.rt.clock(), known)
        intents = ";".join([*(i.render() for i in self.carried), intent.render()][-MAX_INTENTS:])
        tags = self.current.with_tags(credential_minting=intents)
        if old_key and not self.current.tags.get(KEY_ID):
            tags[KEY_ID] = old_key  # a person's credential, proven the stored one: recorded
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
        return new, state

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
        self, rot: CredentialRotator, state: VersionState, value: Secret | None = None
    ) -> bool:
        """Verify the pending credential, promote it, then delete what it replaced (proven).

        Return False when a pending credential to resume is gone (abandoned: create afresh).
        """
        new_key = str(state.tags.get(KEY_ID))
        if value is None:  # resuming an earlier run's pending credential
            value = await self.rt.store.read_version(state)
        if value is None or new_key.lower() not in {c.key_id.lower() for c in self.listed}:
            await self._abandon(rot, state, "its credential is gone")
            return False
        try:
            await rot.verify(value)
        except errors.CredentialError as exc:
            await self._abandon(rot, state, f"it does not authenticate ({exc.kind})")
            raise
        await self.run.tracker.enter(Step.CREDENTIAL)  # the lease, before the promotion
        promoted = await self.rt.store.update(state, tags=state.with_stage(Stage.CURRENT))
        await self._tidy(rot, promoted)
        report = self.run.report
        report.credential_expires_on = promoted.expires_on
        report.credential_result = "rotated"
        report.notes = [n for n in report.notes if not n.startswith(CREDENTIAL_NOTE)]
        self.run.tracker.done(Step.CREDENTIAL, key_id=new_key)
        return True

    async def _tidy(self, rot: CredentialRotator, promoted: VersionState) -> None:
        """Clear the intents, delete the credential *promoted* replaced, then clear that tag."""
        if not self.carried:
            fresh = {v.version: v for v in [*self.versions.versions, self.current]}
            for v in fresh.values():
                if v.enabled and v.tags.get(INTENT) and v.version != promoted.version:
                    await self.rt.store.update(v, tags=v.with_tags(credential_minting=None))
        old_key = promoted.tags.get(REPLACED)
        recorded = self.versions.recorded_keys() | {
            k.lower() for k in [self.current.tags.get(KEY_ID)] if k
        }
        why = refusal(old_key, str(promoted.tags.get(KEY_ID)), self.listed, self.owner, recorded)
        if why is None and old_key is not None and await rot.delete(old_key):
            self.run.report.credential_deleted.append(old_key)
        elif why not in {None, "gone"}:
            self.run.report.notes.append(
                f"the replaced credential {old_key or '(unknown key id)'} of the principal was "
                f"NOT deleted: {why}"
            )
        if REPLACED in promoted.tags:
            tags = promoted.with_tags(credential_replaced=None)
            await self.rt.store.update(promoted, tags=tags)

    async def _abandon(self, rot: CredentialRotator, state: VersionState, why: str) -> None:
        """Disable a pending credential version that cannot be finished; delete its credential."""
        key = state.tags.get(KEY_ID)
        await self.rt.store.update(state, tags=state.with_stage(Stage.ABANDONED), enabled=False)
        listed = {c.key_id.lower() for c in self.listed}
        if key and key.lower() in listed and await rot.delete(key):
            self.run.report.credential_deleted.append(key)
        self.run.report.notes.append(f"the pending credential {key} was abandoned: {why}")
