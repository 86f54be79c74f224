"""Find orphans: PATs this deployment minted for a target that no live Key Vault version holds.

An orphan is left when a run crashed between ``token/create`` and storing the value (the value is
lost for good), or when a mismatch left the PAT of a version whose tags could not be trusted. A
token is a candidate only when its comment carries this deployment's marker for this target (a
first-release marker without ``vault=`` too) *and* its mint is recorded in this vault — the
intent (``minting``) or a version's ``rotation-id``: a second deployment sharing the workspace,
even with the same target name, never records our rotation ids, nor we its. Each candidate is
then revoked through the guard (:mod:`rotation.engine.guard`), which checks all of it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.engine.guard import first_mint, live_rotations, live_token_ids
from rotation.state import Stage, Tag, parse_comment, recorded_rotations

if TYPE_CHECKING:
    from rotation.backends import TokenInfo
    from rotation.state import VersionState

__all__ = ["orphans"]

_DEAD = {Stage.REVOKED, Stage.ABANDONED}


def orphans(
    tokens: list[TokenInfo],
    versions: list[VersionState],
    *,
    target: str,
    vault: str,
    secret: str,
) -> list[TokenInfo]:
    """Return *target*'s unreferenced PATs whose mint this vault recorded, oldest first.

    *tokens* are the principal's PATs, listed in this run. Before the secret has any version, a
    first mint's PAT is recognised by its marker naming this vault and this *secret*.
    """
    held = [v for v in versions if v.stage not in _DEAD]
    referenced = {v.token_id for v in held if v.token_id}
    holders = {r for v in held if (r := v.tag(Tag.ROTATION_ID))}
    holders |= live_rotations(versions, target)
    referenced |= live_token_ids(versions, target)
    recorded = recorded_rotations(versions)
    found = []
    for token in tokens:
        marker = parse_comment(token.comment)
        if marker is None or marker.target != target or token.token_id in referenced:
            continue
        if marker.vault not in {None, vault}:
            continue
        first = first_mint(marker, versions, vault=vault, secret=secret)
        if not first and marker.rotation_id not in recorded:
            continue
        if marker.rotation_id in holders:  # a version holds it, whatever its token-id tag says
            continue
        found.append(token)
    return sorted(found, key=lambda t: t.creation_ms)
