"""One run of one target: the state its steps find and make, and what the steps share.

:class:`Run` loads the latest version and plans (:meth:`Run.load`), opens the principal's
credential (:meth:`Run.credentials`) and holds what the steps found so far. The Key Vault
version transitions several steps need — revoke what a version replaced, abandon a pending
version, reconcile a lost create — live here too, so that :mod:`rotation.engine.runner` reads as the
steps alone.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from rotation import errors
from rotation.backends import Workspace
from rotation.engine.consumers import Consumers
from rotation.engine.issuer import issuer_for
from rotation.engine.plan import Plan, plan
from rotation.engine.report import Step, format_time
from rotation.state import (
    MANAGED_BY,
    Stage,
    Tag,
    current_version,
    deployment_of,
    parse_comment,
)
from rotation.units import DAY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from rotation.backends import NewToken, TokenInfo
    from rotation.config import Target
    from rotation.engine.runtime import Runtime
    from rotation.engine.tracker import Tracker
    from rotation.principals import TokenIssuer
    from rotation.secret import Secret
    from rotation.state import VersionState

__all__ = [
    "CREDENTIAL_FAIL_DAYS",
    "CREDENTIAL_NOTE",
    "CREDENTIAL_WARN_DAYS",
    "Run",
    "best_effort",
    "bootstrap_note",
    "same_principal",
]

CREDENTIAL_WARN_DAYS = 30
CREDENTIAL_NOTE = "the principal's credential"
"""How the note on an expiring credential begins (the credential phase drops it once rotated)."""
CREDENTIAL_FAIL_DAYS = 7
MAX_INTENTS = 8
"""At most this many rotation ids in a ``minting`` tag (17 characters each, of 512)."""

T = TypeVar("T")

log = logging.getLogger("rotation")


class Run:
    """What one run of one target found and made so far, and the transitions its steps share."""

    def __init__(self, rt: Runtime, target: Target, tracker: Tracker) -> None:
        self.rt = rt
        self.target = target
        self.tracker = tracker
        self.report = tracker.report
        self.workspace = Workspace(rt.http, target.workspace_url, rt.retry)
        self.plan = Plan(reason="")
        self.issuer: TokenIssuer
        self.latest: VersionState | None = None
        self.latest_value: Secret | None = None
        self.versions: list[VersionState] = []
        self.tokens: list[TokenInfo] = []
        self.deferred = 0
        self.rotation_id = ""
        self.new: NewToken | None = None
        self.pending: VersionState | None = None
        self.pat: Secret | None = None
        self.resumed = False
        self.verified = False
        self.promoted: VersionState | None = None
        self.replaced: list[VersionState] = []
        self.vault = deployment_of(rt.config.key_vault_url)
        self.listed = False
        self.refusals: list[errors.RevocationRefusedError] = []
        """Revocations the guard refused: the run finishes what it safely can, then fails."""
        self.carry: list[str] = []
        """Rotation ids whose PATs a later run must sweep (a mismatch, a deferred orphan)."""
        self._consumers: Consumers | None = None
        self.credential_versions: list[VersionState] | None = None
        """The principal's credential secret's versions, once the credential phase read them."""

    async def load(self, *, force: bool) -> None:
        """Read the latest version and plan the run."""
        found = await self.rt.store.latest(self.target.secret_name)
        self.latest, self.latest_value = found or (None, None)
        self.plan = plan(self.target, self.latest, self.rt.clock(), force=force)
        self.report.reason = self.plan.reason
        if self.latest is not None:
            self.report.token_id = self.latest.token_id
            self.report.expires_on = self.latest.expires_on

    @asynccontextmanager
    async def credentials(self) -> AsyncIterator[None]:
        """Read the principal's credential and authenticate; close what it opened after."""
        await self.tracker.enter(Step.CREDENTIALS)
        async with issuer_for(self.rt, self.target, self.workspace) as issuer:
            self.issuer = issuer
            await issuer.authenticate()
            self.watch_credential(issuer.credential_expires_on)
            self.tracker.done(Step.CREDENTIALS)
            yield

    def watch_credential(self, expires_on: float | None) -> None:
        """Report when the principal's credential expires; a note when it is soon."""
        self.report.credential_expires_on = expires_on
        left = self.credential_days_left()
        rotates = self.target.rotate_credential and self.target.principal.rotates_credential
        if left is not None and left < CREDENTIAL_WARN_DAYS:
            todo = (
                "the rotator rotates it (rotate_credential)"
                if rotates
                else "create a new one and store it as a new version of that secret"
            )
            self.report.notes.append(
                f"{CREDENTIAL_NOTE} (Key Vault secret "
                f"{self.target.principal.credential_secret_name!r}) expires in {left:.1f} days: "
                f"{todo}"
            )

    def credential_days_left(self) -> float | None:
        """Return the days left on the principal's credential, if its expiry is known."""
        expires = self.report.credential_expires_on
        return None if expires is None else (expires - self.rt.clock()) / DAY

    async def refuse_expiring_credential(self) -> None:
        """Fail the run (after its work) when the credential expires within a week."""
        left = self.credential_days_left()
        if left is None or left >= CREDENTIAL_FAIL_DAYS:
            return
        await self.tracker.enter(Step.CREDENTIALS, check_lease=False)
        name = self.target.principal.credential_secret_name
        msg = (
            f"The credential of target {self.target.name}'s principal (Key Vault secret {name!r}) "
            f"expires in {left:.1f} days and no newer version is stored; after that every "
            "rotation fails. Create a new client secret / OAuth secret / admin PAT and store it "
            f"as a new version of {name!r}."
        )
        raise errors.CredentialExpiringError(msg)

    def consumers(self) -> Consumers:
        """Return this run's consumers (built once; their results are the report's)."""
        if self._consumers is None:
            self._consumers = Consumers(self.target, self.rt, self.tracker)
            self.report.consumers = self._consumers.results
        return self._consumers

    async def record_failure(self) -> None:
        """Best effort: note the failure in the latest version's ``last-result`` tag."""
        found = await best_effort(self.rt.store.latest(self.target.secret_name))
        if not found or not found[0].managed:
            return
        err = self.report.error
        text = f"failed {format_time(self.rt.clock())} at {self.tracker.step}: "
        text += err.kind if err else "?"
        tags = found[0].with_tags(last_result=text[:256])
        await best_effort(self.rt.store.update(found[0], tags=tags))

    def take(self, state: VersionState, pat: Secret) -> None:
        """Make *state* (holding *pat*) this run's new PAT, and report it."""
        self.pending, self.pat = state, pat
        self.report.rotation_id = state.tag(Tag.ROTATION_ID)
        self.report.token_id = state.token_id
        self.report.expires_on = state.expires_on

    def pending_tags(self, new: NewToken) -> dict[str, str]:
        """Return the tags of a freshly minted PAT's ``pending`` version.

        What it replaces is decided at promotion, from the versions as they are then. Intents
        a later run must still sweep are carried in ``minting``.
        """
        tags = {
            Tag.MANAGED_BY: MANAGED_BY,
            Tag.TARGET: self.target.name,
            Tag.TOKEN_ID: new.info.token_id,
            Tag.ROTATION_ID: self.rotation_id,
            Tag.STAGE: Stage.PENDING.value,
            Tag.WRITTEN_AT: f"{self.rt.clock():.6f}",
        }
        if self.carry:
            tags[Tag.MINTING] = " ".join(self.carry[-MAX_INTENTS:])
        return {str(k): v for k, v in tags.items()}

    async def principal_tokens(self, *, again: bool = False) -> list[TokenInfo]:
        """Return the principal's tokens, listed once per run (*again*: list anew)."""
        if again or not self.listed:
            self.tokens = await self.issuer.list()
            self.listed = True
        return self.tokens

    def remember(self, state: VersionState) -> VersionState:
        """Keep the run's view of the versions in step with a version it wrote; return it."""
        others = [v for v in self.versions if v.version != state.version]
        self.versions = sorted([*others, state], key=lambda v: v.order)
        if self.latest is not None and self.latest.version == state.version:
            self.latest = state
        return state

    async def write(
        self, state: VersionState, tags: dict[str, str], *, enabled: bool | None = None
    ) -> VersionState:
        """Update *state*'s tags (and enabled flag) in Key Vault and in the run's view."""
        return self.remember(await self.rt.store.update(state, tags=tags, enabled=enabled))

    def scopes_of(self, token_id: str | None) -> tuple[str, ...] | None:
        """Return the scopes of PAT *token_id*, from its create answer or the token list."""
        if self.new is not None and self.new.info.token_id == token_id:
            return self.new.info.scopes or self.target.scopes
        found = next((t for t in self.tokens if t.token_id == token_id), None)
        return found.scopes if found else None

    def scopes_for_new_pat(self) -> tuple[str, ...] | None:
        """Return the new PAT's scopes: configured, else those of the PAT it replaces."""
        current = current_version(self.versions, self.target.name)
        kept = self.scopes_of(current.token_id) if current and current.token_id else None
        wanted = self.target.scopes
        if wanted is None:
            return kept
        if current is not None and current.token_id and wanted != kept:
            was = ", ".join(kept) if kept else "unscoped"
            self.report.notes.append(
                f"scopes change as configured: the new PAT gets {', '.join(wanted)} (the PAT it "
                f"replaces had {was})"
            )
        return wanted


def bootstrap_note(tokens: list[TokenInfo]) -> str:
    """Say that no PAT will be revoked, naming the principal's PATs not made by the rotator."""
    by_hand = [t.token_id for t in tokens if parse_comment(t.comment) is None]
    note = "no earlier rotator-made PAT is recorded, so none will be revoked"
    if not by_hand:
        return note
    return (
        f"{note}; the principal's PAT(s) made by hand stay alive until you revoke them once the "
        f"consumers use the new PAT: token id(s) {', '.join(by_hand)}"
    )


def same_principal(user_name: str, application_id: str) -> bool:
    """Return whether SCIM ``userName`` names the application id (GUIDs compare caselessly)."""
    return user_name.strip().lower() == application_id.strip().lower()


async def best_effort(awaitable: Awaitable[T]) -> T | None:
    """Await a call whose failure must not hide the error at hand; a ``RotationError`` → None."""
    try:
        return await awaitable
    except errors.RotationError:
        return None
