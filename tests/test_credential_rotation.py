"""Credential rotation (issue 19): the principal's own client secret / OAuth secret.

Through the real SDKs and clients against the emulators: Graph (addPassword, removePassword)
shares its directory with Entra ID, the secrets proxy shares its state with Databricks OAuth, so
a rotated credential really changes what authenticates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from emulators.scenario import grant_credential_rights
from rotation.engine import Outcome
from tests.invariants import violations

if TYPE_CHECKING:
    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget
    from tests.world import World

DAY = 86_400


def credential_name(seeded: SeededTarget) -> str:
    return str(seeded.table["principal"]["client_secret_name"])


def stored(emu: Emulators, seeded: SeededTarget) -> str:
    latest = emu.keyvault.latest(credential_name(seeded))
    assert latest is not None
    return latest.value


def entra_passwords(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    """Return key id -> value of the app's client secrets."""
    return {p.key_id: p.secret_text for p in emu.entra.passwords(seeded.application_id)}


def oauth_secrets(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    return {s.secret_id: s.value for s in emu.databricks.oauth_secrets_of(seeded.application_id)}


def live_credentials(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    if seeded.kind == "entra-client-secret":
        return entra_passwords(emu, seeded)
    return oauth_secrets(emu, seeded)


def near_expiry(world: World, kind: str, days: float = 20) -> SeededTarget:
    seeded = world.target(kind=kind)
    grant_credential_rights(world.emu, seeded, expires_in=days * DAY)
    return seeded


@pytest.mark.parametrize("kind", ["entra-client-secret", "databricks-oauth"])
async def test_a_credential_near_expiry_is_rotated_and_the_old_one_deleted(
    world: World, kind: str
) -> None:
    emu = world.emu
    seeded = near_expiry(world, kind)
    first = await world.rotate_one(seeded)  # bootstrap: the PAT rotates, the credential waits
    assert first.outcome is Outcome.ROTATED, first.error
    assert first.credential_result == "deferred"
    (old_key,) = live_credentials(emu, seeded)
    old_value = stored(emu, seeded)

    second = await world.rotate_one(seeded)
    assert second.error is None, second.error
    assert second.credential_result == "rotated"
    assert second.credential_deleted == [old_key]
    live = live_credentials(emu, seeded)
    (new_key,) = live
    assert new_key != old_key
    assert stored(emu, seeded) == live[new_key] != old_value
    latest = emu.keyvault.latest(credential_name(seeded))
    assert latest is not None
    assert latest.tags["stage"] == "current"
    assert latest.tags["credential-key-id"] == new_key
    assert latest.exp is not None
    assert latest.exp > emu.clock.now() + 300 * DAY
    assert second.credential_expires_on == latest.exp

    third = await world.rotate_one(seeded, force=True)  # a PAT rotation with the new credential
    assert third.outcome is Outcome.ROTATED, third.error
    assert third.credential_result == "not-due"
    assert violations(emu, seeded) == []
