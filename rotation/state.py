"""Rotation state as Key Vault tags on each version of a target's secret.

Key Vault has no ETags for secrets, so each version carries its own state in tags (≤ 15 tags,
values ≤ 512 chars) and writers are serialised by a lock. Stages: a new version is ``pending``
until every consumer confirmed it, then ``current``; the version it replaced becomes
``previous`` and, once its PAT is revoked, ``revoked`` (and disabled). An ``abandoned`` version
held a pending PAT that could not be used. Tag ``minting`` on the latest version records the intent
to mint *before* ``token/create`` is called (space-separated rotation ids), so a crash between mint
and store is seen by the next run's listing and swept. Each PAT's comment carries
:func:`comment_for`'s marker: target, rotation id, deployment (the vault's host) and the secret
the PAT is minted to be stored in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "MANAGED_BY",
    "Marker",
    "Stage",
    "Tag",
    "VersionState",
    "comment_for",
    "current_version",
    "deployment_of",
    "finite",
    "parse_comment",
    "recorded_rotations",
    "version_with_token",
]

MANAGED_BY: Final = "pat-rotator"
_SETTLED = frozenset({"true", "refused"})
"""``previous-revoked`` values that end a version's claim: revoked, or refused by the guard."""


class Stage(StrEnum):
    """Where a version is in its life."""

    PENDING = "pending"
    CURRENT = "current"
    PREVIOUS = "previous"
    REVOKED = "revoked"
    ABANDONED = "abandoned"


class Tag(StrEnum):
    """Tag names written on secret versions (names, not secrets: hence the S105/B105 waivers)."""

    MANAGED_BY = "managed-by"
    TARGET = "target"
    TOKEN_ID = "token-id"  # noqa: S105 # nosec B105
    ROTATION_ID = "rotation-id"
    STAGE = "stage"
    PREVIOUS_TOKEN_ID = "previous-token-id"  # noqa: S105 # nosec B105
    REVOKE_PREVIOUS_AT = "revoke-previous-at"
    PREVIOUS_REVOKED = "previous-revoked"
    MINTING = "minting"
    LAST_RESULT = "last-result"
    CONSUMERS = "consumers"
    WRITTEN_AT = "written-at"
    """Sub-second creation time: orders versions that Key Vault's whole seconds cannot."""
    HEALTH_CHECKED_AT = "health-checked-at"
    """When the health check last found this version's PAT listed for the principal."""


@dataclass(frozen=True, slots=True)
class VersionState:
    """One secret version as the rotator sees it: identifiers, stage and timing (never a value)."""

    name: str
    version: str
    enabled: bool
    created_on: float | None
    expires_on: float | None
    tags: dict[str, str] = field(default_factory=dict)

    def tag(self, tag: Tag) -> str | None:
        """Return tag *tag*, or None."""
        return self.tags.get(tag.value) or None

    @property
    def managed(self) -> bool:
        """Return whether this app wrote the version."""
        return self.tags.get(Tag.MANAGED_BY) == MANAGED_BY

    @property
    def stage(self) -> Stage | None:
        """Return the version's stage, or None for a version this app did not write."""
        raw = self.tag(Tag.STAGE)
        return next((s for s in Stage if s.value == raw), None)

    @property
    def token_id(self) -> str | None:
        """Return the Databricks token id of the PAT this version holds."""
        return self.tag(Tag.TOKEN_ID)

    @property
    def revoke_previous_at(self) -> float | None:
        """Return when the previous PAT may be revoked (epoch seconds), if one is outstanding.

        Only a ``current`` version (consumers confirmed its PAT) ever allows revoking the one
        it replaced; a pending or abandoned version never does.
        """
        if self.stage is not Stage.CURRENT:
            return None
        if not self.tag(Tag.PREVIOUS_TOKEN_ID) or self.tag(Tag.PREVIOUS_REVOKED) in _SETTLED:
            return None
        at = finite(self.tag(Tag.REVOKE_PREVIOUS_AT))
        return 0.0 if at is None else at

    @property
    def order(self) -> tuple[float, str]:
        """Return a key that sorts versions oldest first, even within one second."""
        written = finite(self.tag(Tag.WRITTEN_AT))
        return (written if written is not None else (self.created_on or 0.0), self.version)

    def with_tags(self, **changes: str | None) -> dict[str, str]:
        """Return a copy of the tags with *changes* applied (``None`` removes a tag)."""
        tags = dict(self.tags)
        for key, value in changes.items():
            name = key.replace("_", "-")
            if value is None:
                tags.pop(name, None)
            else:
                tags[name] = value
        return tags

    def with_stage(self, stage: Stage, **changes: str | None) -> dict[str, str]:
        """Return the tags moved to *stage*, with *changes*.

        ``minting`` stays: the rotation ids it records are how a later sweep knows a PAT whose
        value was lost is this deployment's (only the sweep's ``clear_intent`` removes it).
        """
        return self.with_tags(stage=stage.value, **changes)


def current_version(versions: list[VersionState], target: str) -> VersionState | None:
    """Return the version consumers use now: the newest ``current`` or unmanaged enabled one.

    A version another target (or another deployment) wrote is never taken for *target*'s.
    """
    for v in reversed(versions):
        if v.managed and v.tag(Tag.TARGET) not in {None, target}:
            continue
        if v.stage is Stage.CURRENT or (not v.managed and v.enabled):
            return v
    return None


def version_with_token(versions: list[VersionState], token_id: str | None) -> VersionState | None:
    """Return the newest version holding PAT *token_id*, if any."""
    if token_id is None:
        return None
    return next((v for v in reversed(versions) if v.token_id == token_id), None)


_COMMENT_PREFIX: Final = f"{MANAGED_BY} "


class Marker(NamedTuple):
    """What a PAT's comment says about who made it: target, rotation and deployment (vault).

    ``vault`` is None for PATs made by the first release, whose marker named no deployment.
    """

    target: str
    rotation_id: str
    vault: str | None = None
    secret: str | None = None


def deployment_of(key_vault_url: str) -> str:
    """Return the deployment id of the rotator using *key_vault_url*: the vault's host name.

    A vault's host is unique within its cloud, so two rotators sharing a workspace always
    have different ids unless they share a vault (and then their records tell them apart).
    Spellings of one vault give one id (case, a trailing dot, the default port).
    """
    parts = urlsplit(key_vault_url)
    host = (parts.hostname or "").rstrip(".")
    return host if parts.port in {None, 443} else f"{host}:{parts.port}"


def finite(raw: str | None) -> float | None:
    """Return a tag's number, or None when it is absent, malformed, infinite or NaN."""
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def comment_for(target: str, rotation_id: str, vault: str, secret: str) -> str:
    """Return the PAT comment that marks a token as minted by this deployment for *target*.

    *secret* is the Key Vault secret the PAT is to be stored in: with *vault* it names the one
    place the PAT belongs (what proves a first mint's PAT ours when no version records it).
    """
    return f"{_COMMENT_PREFIX}target={target} rotation={rotation_id} vault={vault} secret={secret}"


def parse_comment(comment: str) -> Marker | None:
    """Return the :class:`Marker` in a comment made by :func:`comment_for`, else None."""
    if not comment.startswith(_COMMENT_PREFIX):
        return None
    fields = dict(
        part.split("=", 1) for part in comment[len(_COMMENT_PREFIX) :].split() if "=" in part
    )
    if not fields.get("target") or not fields.get("rotation"):
        return None
    return Marker(
        fields["target"],
        fields["rotation"],
        fields.get("vault") or None,
        fields.get("secret") or None,
    )


def recorded_rotations(versions: list[VersionState]) -> set[str]:
    """Return every rotation id this vault recorded for a target: minted versions and intents."""
    found: set[str] = set()
    for v in versions:
        if rid := v.tag(Tag.ROTATION_ID):
            found.add(rid)
        found.update((v.tag(Tag.MINTING) or "").split())
    return found
