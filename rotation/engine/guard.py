"""The one rule every revocation obeys (invariant I6): destroy only what is provably ours.

A PAT may be revoked only when Databricks itself shows, in the principal's own token list
(or in the create answer of this very run), that the token

1. belongs to the target's principal (it is in that principal's list),
2. carries this deployment's marker for this target (``pat-rotator target=… rotation=…
   vault=…``; a first-release marker without ``vault=`` counts only through 3), and its mint
   is recorded in this vault (a version's ``rotation-id`` or an intent in ``minting``), and
3. is not the PAT the latest enabled version and the consumers hold — after a promotion that
   is the promoted one, so the PAT it replaced becomes revocable.

Tags, names and records alone never suffice: :func:`judge` raises
:class:`~rotation.errors.RevocationRefusedError` (a loud, typed failure) rather than revoke on
their word. A token that is not in the list is already gone: nothing to revoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation import errors
from rotation.state import Stage, Tag, current_version, parse_comment, recorded_rotations

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rotation.backends import TokenInfo
    from rotation.state import Marker, VersionState

__all__ = [
    "Evidence",
    "disagreement",
    "first_mint",
    "judge",
    "live_rotations",
    "live_token_ids",
]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a revocation is judged on: the service's word and this vault's records."""

    target: str
    secret_name: str
    vault: str
    """This deployment's id (:func:`rotation.state.deployment_of`)."""
    tokens: Sequence[TokenInfo]
    """The principal's own tokens, as Databricks listed them in this run."""
    versions: Sequence[VersionState]
    """The target's Key Vault versions as they are now (this run's writes included)."""
    foreign: frozenset[str] = frozenset()
    """Ids of tokens the listing showed as another user's or principal's (admin lists only)."""
    minted: Sequence[TokenInfo] = ()
    """Tokens this run created (their create answer is the service's own word)."""
    rotation_id: str = ""
    """This run's rotation id: its mint is recorded even before any version holds it."""
    promoted: VersionState | None = None
    """The version this run promoted: from then on it alone is what consumers hold."""


def _live_versions(versions: Sequence[VersionState], target: str) -> list[VersionState]:
    """Return the versions consumers and readers hold: the latest enabled and the current."""
    latest = next((v for v in reversed(versions) if v.enabled), None)
    current = current_version(list(versions), target)
    return [v for v in (latest, current) if v is not None]


def first_mint(
    marker: Marker, versions: Sequence[VersionState], *, vault: str, secret: str
) -> bool:
    """Return whether *marker* is a first mint's for this secret, which no version can record.

    Before a target's first version is stored nothing in the vault records its intent; its PAT's
    marker names this vault *and* this secret — the one place it was minted to be stored in.
    """
    return not versions and (marker.vault, marker.secret) == (vault, secret)


def live_token_ids(versions: Sequence[VersionState], target: str) -> set[str]:
    """Return the token ids consumers and readers hold: the latest enabled and the current."""
    return {v.token_id for v in _live_versions(versions, target) if v.token_id}


def live_rotations(versions: Sequence[VersionState], target: str) -> set[str]:
    """Return the rotation ids of the live versions.

    Their PATs are live whatever the ``token-id`` tags say: a tag can name the wrong token, the
    comment names the rotation.
    """
    return {r for v in _live_versions(versions, target) if (r := v.tag(Tag.ROTATION_ID))}


def judge(token_id: str, evidence: Evidence, purpose: str) -> TokenInfo | None:
    """Return the token if it may be revoked; None when it is gone; refuse otherwise.

    *purpose* says why the run wants it revoked (for the refusal's message).
    """
    minted = next((t for t in evidence.minted if t.token_id == token_id), None)
    token = minted or next((t for t in evidence.tokens if t.token_id == token_id), None)
    if token is None and token_id not in evidence.foreign:
        return None
    why = (
        "it belongs to another user or service principal of the workspace"
        if token is None
        else _refusal(token, evidence, minted=minted is not None)
    )
    if why is not None:
        msg = (
            f"Refused to revoke PAT {token_id} ({purpose}) of target {evidence.target}: {why}. "
            "Nothing was revoked. The Key Vault tags of secret "
            f"{evidence.secret_name!r} disagree with Databricks: find who edited them, fix or "
            "disable that version, then run the rotation again."
        )
        raise errors.RevocationRefusedError(msg)
    return token


def _refusal(token: TokenInfo, evidence: Evidence, *, minted: bool) -> str | None:
    """Return why *token* must not be revoked, or None."""
    marker = parse_comment(token.comment)
    if marker is None:
        return "it was not made by pat-rotator (its comment carries no marker)"
    if marker.target != evidence.target:
        return f"it was made for target {marker.target!r}"
    if marker.vault is not None and marker.vault != evidence.vault:
        return f"it was made by the rotator of another deployment (vault {marker.vault})"
    recorded = recorded_rotations(list(evidence.versions)) | {evidence.rotation_id} - {""}
    first = first_mint(marker, evidence.versions, vault=evidence.vault, secret=evidence.secret_name)
    if not (minted or first) and marker.rotation_id not in recorded:
        return f"its mint (rotation {marker.rotation_id}) is recorded nowhere in this vault"
    live = [evidence.promoted] if evidence.promoted else evidence.versions
    if token.token_id in live_token_ids(live, evidence.target) or (
        marker.rotation_id in live_rotations(live, evidence.target)
    ):
        return "it is the PAT the latest Key Vault version and the consumers hold"
    return None


def disagreement(
    version: VersionState | None,
    tokens: Sequence[TokenInfo],
    *,
    target: str,
    vault: str,
    now: float,
    foreign: frozenset[str] = frozenset(),
) -> str | None:
    """Return how *version*'s tags disagree with the principal's *tokens*, or None.

    The PAT a ``current`` or ``pending`` version names must, when it is listed alive, carry
    that version's rotation id in its comment. A PAT that is not listed is gone (the health
    check heals it; a pending one is abandoned): that is no disagreement — unless another
    listed PAT carries the version's rotation id (the tag names the wrong token).
    """
    named = {Stage.CURRENT, Stage.PENDING}
    if version is None or not version.managed or version.stage not in named:
        return None
    where = f"the latest version {version.version}"
    if not version.token_id:
        return f"{where} names no token-id"
    if version.token_id in foreign:
        return f"{where} names PAT {version.token_id}, which belongs to another user or principal"
    return _named_token_problem(version, [t for t in tokens if t.alive_at(now)], target, vault)


def _named_token_problem(
    version: VersionState, alive: list[TokenInfo], target: str, vault: str
) -> str | None:
    """Return how the PAT *version* names disagrees with the live *alive* tokens, or None."""
    where = f"the latest version {version.version}"
    rotation = version.tag(Tag.ROTATION_ID)
    token = next((t for t in alive if t.token_id == version.token_id), None)
    if token is not None:
        if _carries(token, rotation, target, vault):
            return None
        return f"{where} names PAT {version.token_id}, whose comment does not carry its rotation id"
    carrier = next((t for t in alive if _carries(t, rotation, target, vault)), None)
    if carrier is None:
        return None  # gone: the health check heals it, a pending one is abandoned
    return (
        f"{where} names PAT {version.token_id}, which is not listed, while PAT "
        f"{carrier.token_id} carries its rotation id {rotation}"
    )


def _carries(token: TokenInfo, rotation: str | None, target: str, vault: str) -> bool:
    """Return whether *token*'s comment is this deployment's marker of *rotation* of *target*."""
    marker = parse_comment(token.comment)
    if rotation is None or marker is None or marker.vault not in {None, vault}:
        return False
    return (marker.target, marker.rotation_id) == (target, rotation)
