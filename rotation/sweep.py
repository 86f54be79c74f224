"""Sweep orphans: PATs this app minted for a target that no Key Vault version references.

An orphan is left when a run crashed between ``token/create`` and storing the value (the value is
lost for good). Only tokens whose comment carries this app's marker *for this target* are ever
touched; a token a person made is never revoked. Tokens younger than ``min_age_seconds`` are left
for a later run: a guard for runs that hold no exclusive lock (another run could be between its
mint and its store); under a blob lease the engine passes 0.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rotation.state import Stage, parse_comment

if TYPE_CHECKING:
    from rotation.databricks import TokenInfo
    from rotation.principals import TokenIssuer
    from rotation.state import VersionState

__all__ = ["sweep_orphans"]

log = logging.getLogger("rotation")

_DEAD = {Stage.REVOKED, Stage.ABANDONED}


async def sweep_orphans(
    issuer: TokenIssuer,
    target: str,
    tokens: list[TokenInfo],
    versions: list[VersionState],
    *,
    now: float,
    min_age_seconds: float,
) -> tuple[list[str], int]:
    """Revoke *target*'s unreferenced rotator-made PATs; return (ids revoked, number deferred).

    *tokens* are the principal's PATs, listed just before.
    """
    referenced = {v.token_id for v in versions if v.token_id and v.stage not in _DEAD}
    swept: list[str] = []
    deferred = 0
    for token in tokens:
        marker = parse_comment(token.comment)
        if marker is None or marker[0] != target or token.token_id in referenced:
            continue
        age = now - token.creation_ms / 1000
        if min_age_seconds > 0 and age < min_age_seconds:
            log.info("target=%s sweep deferred token_id=%s age=%.0fs", target, token.token_id, age)
            deferred += 1
            continue
        if await issuer.revoke(token.token_id):
            log.warning(
                "target=%s swept orphan token_id=%s rotation_id=%s",
                target,
                token.token_id,
                marker[1],
            )
            swept.append(token.token_id)
    return swept, deferred
