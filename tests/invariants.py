"""Check invariants I1-I3 of docs/design.md against the emulators' state; report violations in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.scenario import held_by
from rotation.state import deployment_of, parse_comment

if TYPE_CHECKING:
    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget


def rotator_tokens(emu: Emulators, seeded: SeededTarget) -> list[object]:
    """Return the live PATs this deployment (the emulated vault) minted for *seeded*."""
    vault = deployment_of(emu.keyvault_url)
    return [
        t
        for t in emu.databricks.tokens_of(seeded.application_id)
        if (m := parse_comment(t.comment)) is not None
        and (m.target, m.vault) == (seeded.name, vault)
    ]


def consumer_store(emu: Emulators, kind: str) -> dict[str, object]:
    """Return Prequel's sources, destinations or import sources, for a consumer *kind*."""
    return {
        "prequel-source": emu.prequel.sources,
        "prequel-destination": emu.prequel.destinations,
        "prequel-import-source": emu.prequel.import_sources,
    }[kind]


held_pat = held_by
"""The PAT a seeded consumer holds now (``emulators.scenario.held_by``)."""


def violations(
    emu: Emulators, seeded: SeededTarget, *, settled: bool = True, max_live: int = 1
) -> list[str]:
    """Return every violation of I1-I3 for *seeded*, in words (empty when all hold).

    *settled*: the last run succeeded, so I3 must hold (at most *max_live* rotator PATs, no
    pending version); otherwise only I1 and I2 are checked.
    """
    found: list[str] = []
    for c in seeded.consumers:
        held = held_pat(emu, c.kind, c.id)
        if not emu.databricks.is_live(held):
            found.append(f"I1: {c.kind} {c.id} holds a PAT Databricks does not accept")
    versions = emu.keyvault.versions(seeded.secret_name)
    enabled = [v for v in versions if v.enabled]
    if enabled and not emu.databricks.is_live(enabled[-1].value):
        found.append(f"I2: the latest enabled version {enabled[-1].version} holds a dead PAT")
    referenced = {v.tags.get("token-id") for v in versions}
    live = rotator_tokens(emu, seeded)
    if settled:
        orphans = [t.token_id for t in live if t.token_id not in referenced]  # type: ignore[attr-defined]
        if orphans:
            found.append(f"I3: live rotator PATs no version references: {orphans}")
        if len(live) > max_live:
            found.append(f"I3: {len(live)} live rotator PATs, expected at most {max_live}")
        if versions and versions[-1].tags.get("stage") == "pending":
            found.append("I3: the latest version is still pending after a successful run")
    return found


def no_pat_stored(emu: Emulators, secret_name: str) -> bool:
    """Return whether no version of *secret_name* holds a PAT.

    A first mint's intent is recorded on a disabled ``intent`` version that holds none.
    """
    return all(
        not v.enabled and v.tags.get("stage") == "intent"
        for v in emu.keyvault.versions(secret_name)
    )
