"""The simulation's records that lie, and the invariant they test: only its own is revoked (I6).

What the world does to the rotator's bookkeeping, beside what it does to PATs:

- a second deployment shares the workspace and uses the same target names: it keeps minting PATs
  for the same principals with its own marker (another vault), with the first release's marker
  (no vault), and — seen by the workspace-wide lists of on-behalf-of targets — for another
  principal with *this* deployment's marker; people keep PATs of their own in the workspace;
- a person edits a target's tags: the current version's ``token-id`` names another live PAT, the
  ``previous-token-id`` names a person's PAT (put right 1-48 h later, after the failure alert),
  the ``stage`` is mistyped, or a forged ``pending`` version holds a person's PAT;
- a run loses its lock mid-run (held at one call) while a second run rotates the target.

After every tick and run: every PAT the rotator revoked was in a target's own set — owned by that
target's principal, marked by this deployment for that target, its mint recorded in that
target's versions. :class:`SimLock` is the simulation's lock: exclusive like a blob lease, and
losable like one.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from rotation import errors
from rotation.state import Marker, deployment_of, parse_comment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget

__all__ = ["EDITS", "SimLock", "mint_bystanders", "not_its_own", "recorded_in_vault"]

OTHER_VAULT = "other-deployment.vault.azure.net"
EDITS = ("token-id", "previous-token-id", "stage", "forged-pending")
YEAR = 365 * 86_400


def mint_bystanders(emu: Emulators, seeded: SeededTarget, shadow_app: str) -> dict[str, str]:
    """Mint the PATs beside *seeded*'s that it must never revoke; return id → what it is."""
    name, app = seeded.name, seeded.application_id
    rid = secrets.token_hex(8)
    ours = deployment_of(emu.keyvault_url)
    made = {
        emu.databricks.mint(
            app, YEAR, f"pat-rotator target={name} rotation={rid} vault={OTHER_VAULT}"
        ).token_id: "another deployment's PAT",
        emu.databricks.mint(app, YEAR, f"pat-rotator target={name} rotation={rid}").token_id: (
            "another deployment's PAT (first-release marker)"
        ),
        emu.databricks.mint(
            shadow_app, YEAR, f"pat-rotator target={name} rotation={rid} vault={ours}"
        ).token_id: "another principal's PAT with this deployment's marker",
    }
    person_id, _ = persons_pat(emu, f"person-{name}-{rid[:4]}@example.com")
    made[person_id] = "a person's PAT"
    return made


def persons_pat(emu: Emulators, user: str) -> tuple[str, str]:
    """Return (token id, value) of a new PAT a workspace user made for themselves."""
    value = emu.databricks.add_admin_user(user)
    token = next(t for t in emu.databricks.all_tokens() if t.value == value)
    return token.token_id, value


def recorded_in_vault(emu: Emulators, secret_name: str) -> set[str]:
    """Return the rotation ids a target's versions record (``rotation-id`` and intents)."""
    found: set[str] = set()
    for v in emu.keyvault.versions(secret_name):
        found.update(v.tags.get("minting", "").split())
        if v.tags.get("rotation-id"):
            found.add(v.tags["rotation-id"])
    return found


def not_its_own(
    emu: Emulators, targets: list[SeededTarget], outside: set[str], judged: set[str]
) -> list[str]:
    """Return, in words, every PAT revoked through the API that no target owned (I6).

    *outside* are the ids outside events revoked; *judged* the ids already looked at (updated).
    """
    vault = deployment_of(emu.keyvault_url)
    by_app = {t.application_id: t for t in targets}
    found = []
    for token, reason in emu.databricks.revoked_tokens():
        if token.token_id in judged or reason != "deleted" or token.token_id in outside:
            continue
        judged.add(token.token_id)
        target = by_app.get(token.owner.application_id or "")
        marker = parse_comment(token.comment)
        own = (
            target is not None
            and marker is not None
            and (marker.target, marker.vault) == (target.name, vault)
            and (
                marker.secret == target.secret_name  # minted to be stored in its secret
                or marker.rotation_id in recorded_in_vault(emu, target.secret_name)
            )
        )
        if not own:
            owner = token.owner.user_name
            why = _not_own_why(target, marker, vault, emu)
            found.append(
                f"I6: PAT {token.token_id} of {owner} was revoked, and it was not its own ({why})"
            )
    return found


def _not_own_why(
    target: SeededTarget | None, marker: Marker | None, vault: str, emu: Emulators
) -> str:
    """Return why a revoked PAT was not its target's own, in words."""
    if target is None:
        return "its owner is no target's principal"
    if marker is None:
        return "its comment carries no marker"
    if (marker.target, marker.vault) != (target.name, vault):
        return f"its marker names target {marker.target!r} of vault {marker.vault!r}"
    return f"rotation {marker.rotation_id} is recorded nowhere in {target.secret_name}"


class _SimLease:
    def __init__(self, target: str) -> None:
        self.target = target
        self.lost = False

    async def check(self) -> None:
        if self.lost:
            msg = f"The lock of target {self.target} was lost; the run stopped at a step boundary."
            raise errors.LockLostError(msg)


class SimLock:
    """Per-target leases in memory: exclusive, and lost on demand (:meth:`lose`)."""

    exclusive = True
    description = "the simulation's lock (a lease that can be lost)"

    def __init__(self) -> None:
        self._held: dict[str, list[_SimLease]] = {}

    @asynccontextmanager
    async def hold(self, target: str) -> AsyncIterator[_SimLease]:
        """Hold *target*'s lease; ``BusyError`` while another run holds one it has not lost."""
        held = self._held.setdefault(target, [])
        if any(not lease.lost for lease in held):
            msg = f"Target {target} is being rotated by another run right now; try again later."
            raise errors.BusyError(msg)
        lease = _SimLease(target)
        held.append(lease)
        try:
            yield lease
        finally:
            held.remove(lease)

    def lose(self, target: str) -> None:
        """Lose every lease of *target* held now (as a broken or expired blob lease)."""
        for lease in self._held.get(target, []):
            lease.lost = True
