"""What the credential phase may destroy: the principal's own credentials, proven ours.

The revocation guard's rule (:mod:`rotation.engine.guard`) applied to the principal's credential
(an Entra client secret, a Databricks OAuth secret). A credential is deleted only when the
service's own list shows it and it is provably this deployment's, for this target, and replaced:

- an **orphan** (a create whose value was never stored): not recorded in any version of the
  credential's secret, and — where the service keeps the marker (Entra's ``displayName``) — its
  marker names this vault and this secret (a credential belongs to the secret that holds it,
  whichever target sharing it rotated it), with a rotation id this vault recorded;
  where it keeps none (Databricks) it appeared during a recorded intent: not among the ids the
  intent saw before its create, and created within :data:`WINDOW` of it;
- the **replaced** credential: the key id recorded on the version that was current before this
  rotation (``credential-key-id``), not the one just made, and carrying no marker of another
  vault or secret. A credential a person made (no marker) is recorded only when it was proven
  to be the stored one: the only credential listed, or the only one whose ``hint`` the stored
  value starts with. Otherwise nothing is deleted and the report says which to delete by hand.

The tags (on the versions of the credential's Key Vault secret) are in ``docs/design.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation.state import Stage, Tag, finite, parse_comment

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rotation.principals import Credential
    from rotation.secret import Secret
    from rotation.state import VersionState

__all__ = [
    "INTENT",
    "KEY_ID",
    "REPLACED",
    "CredentialVersions",
    "Intent",
    "Owner",
    "identify",
    "orphans",
    "refusal",
]

KEY_ID = "credential-key-id"
"""The key id (Entra) / secret id (Databricks) of the credential a version holds."""
REPLACED = "credential-replaced"
"""The key id of the credential a rotator-made version replaced (deleted once it is proven)."""
INTENT = "credential-minting"
"""Intents to create (``<rotation id> <epoch> <ids seen before>``, ``;``-separated, at most 2)."""
WINDOW = 15 * 60.0
"""A credential without a marker counts as an intent's only if created this soon after it."""
SKEW = 5 * 60.0
"""Clock difference allowed between the rotator and the service."""
MAX_INTENTS = 2


@dataclass(frozen=True, slots=True)
class Intent:
    """One recorded intent to create a credential."""

    rotation_id: str
    at: float
    known: frozenset[str]

    def render(self) -> str:
        """Return the tag form."""
        return f"{self.rotation_id} {self.at:.0f} {','.join(sorted(self.known))}".strip()

    @classmethod
    def parse(cls, raw: str) -> Intent | None:
        """Read the tag form (None when malformed)."""
        parts = raw.split()
        at = finite(parts[1]) if len(parts) > 1 else None
        if at is None:
            return None
        known = frozenset(parts[2].split(",")) if len(parts) > 2 else frozenset()  # noqa: PLR2004
        return cls(parts[0], at, known)


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose marker this deployment puts on a credential: the target, vault and secret.

    Proof compares the vault and the secret: the target is informative (targets may share one).
    """

    target: str
    vault: str
    secret: str


def _unproven(v: VersionState) -> bool:
    return v.managed and v.stage is Stage.PENDING and bool(v.tags.get(KEY_ID))


@dataclass(frozen=True, slots=True)
class CredentialVersions:
    """The versions of the credential's secret, as the phase reads them."""

    versions: Sequence[VersionState]

    @property
    def current(self) -> VersionState | None:
        """Return the newest enabled version that is not an unproven credential."""
        return next((v for v in reversed(self.versions) if v.enabled and not _unproven(v)), None)

    @property
    def pending(self) -> VersionState | None:
        """Return an unproven credential newer than the current one (a rotation to finish)."""
        latest = next((v for v in reversed(self.versions) if v.enabled), None)
        return latest if latest is not None and _unproven(latest) else None

    def intents(self) -> list[Intent]:
        """Return every intent recorded on an enabled version."""
        raw = [r for v in self.versions if v.enabled for r in (v.tags.get(INTENT) or "").split(";")]
        return [i for r in raw if r.strip() and (i := Intent.parse(r)) is not None]

    def recorded_keys(self) -> set[str]:
        """Return the key ids any version records as its credential."""
        return {k.lower() for v in self.versions if (k := v.tags.get(KEY_ID))}

    def rotations(self) -> set[str]:
        """Return the rotation ids this vault recorded: versions' and intents'."""
        ids = {r for v in self.versions if (r := v.tag(Tag.ROTATION_ID))}
        return ids | {i.rotation_id for i in self.intents()}


def _marked_ours(c: Credential, cv: CredentialVersions, owner: Owner) -> bool:
    marker = parse_comment(c.name or "")
    if marker is None:
        return False
    same = (marker.vault, marker.secret) == (owner.vault, owner.secret)
    return same and marker.rotation_id in cv.rotations()


def _appeared_during_intent(c: Credential, cv: CredentialVersions) -> bool:
    if c.created_on is None:
        return False
    return any(
        c.key_id not in i.known and i.at - SKEW <= c.created_on <= i.at + WINDOW
        for i in cv.intents()
    )


def orphans(
    listed: Sequence[Credential],
    cv: CredentialVersions,
    owner: Owner,
    *,
    keeps_marker: bool,
    young_after: float,
) -> tuple[list[Credential], list[Credential]]:
    """Return (orphans to delete, orphans created after *young_after*, left for a later run)."""
    recorded = cv.recorded_keys()
    found = [
        c
        for c in listed
        if c.key_id.lower() not in recorded
        and (_marked_ours(c, cv, owner) if keeps_marker else _appeared_during_intent(c, cv))
    ]
    young = [c for c in found if c.created_on is not None and c.created_on > young_after]
    return [c for c in found if c not in young], young


def identify(current: VersionState, value: Secret, listed: Sequence[Credential]) -> str | None:
    """Return the key id of the credential *current* holds, when it is proven; else None.

    Recorded by the rotator (``credential-key-id``), or — a person's credential — the only one
    listed, or the only one whose ``hint`` *value* starts with. The stored value authenticated
    in this run, so it is in the list.
    """
    if tagged := current.tags.get(KEY_ID):
        return tagged
    if len(listed) == 1:
        return listed[0].key_id
    hits = [c for c in listed if c.hint and value.reveal().startswith(c.hint)]
    return hits[0].key_id if len(hits) == 1 else None


def refusal(
    old_key: str | None,
    new_key: str,
    listed: Sequence[Credential],
    owner: Owner,
    recorded: set[str],
) -> str | None:
    """Return why the replaced credential *old_key* must not be deleted; None: delete it.

    *recorded* are the key ids versions record as theirs (lower case): the replaced one must be
    among them. "gone" when the service no longer lists it (nothing to delete).
    """
    if old_key is None:
        return (
            "it could not be proven to be the stored one (several credentials, none recorded): "
            "delete it yourself once nothing uses it"
        )
    if old_key.lower() == new_key.lower():
        return "it is the credential just made"
    if old_key.lower() not in recorded:
        return "no version of the credential's secret records it as the one it held"
    found = next((c for c in listed if c.key_id.lower() == old_key.lower()), None)
    if found is None:
        return "gone"
    marker = parse_comment(found.name or "")
    if marker is not None and (marker.vault, marker.secret) != (owner.vault, owner.secret):
        return f"its marker names secret {marker.secret!r} of vault {marker.vault}"
    return None
