"""Seeded targets of the principal kinds without a stored credential, and the rotator's env."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from azure.identity.aio import ManagedIdentityCredential

from emulators.scenario import rotator_env, seed_target
from tests.emulators.helpers import DATABRICKS, bearer, create_token, user_name

if TYPE_CHECKING:
    import httpx

    from emulators import Emulators


async def test_a_managed_identity_target_is_a_user_assigned_identity_in_the_workspace(
    emus: Emulators, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = seed_target(emus, kind="managed-identity")
    client_id = seeded.application_id
    assert seeded.table["principal"] == {"kind": "managed-identity", "client_id": client_id}
    assert not [n for n in emus.keyvault.names() if n.startswith(f"{seeded.name}-sp")]
    (identity,) = [i for i in emus.entra.managed_identities() if i.client_id == client_id]
    assert not identity.system
    principal = emus.databricks.principal(client_id)
    assert principal is not None
    assert principal.can_use
    assert principal.in_workspace
    for name, value in rotator_env(emus, "{}").items():
        if name.startswith("IDENTITY_"):
            monkeypatch.setenv(name, value)
    async with ManagedIdentityCredential(client_id=client_id) as credential:
        token = (await credential.get_token(f"{DATABRICKS}/.default")).token
    assert await user_name(emus, http, token) == client_id
    created = await create_token(emus, http, bearer(token), lifetime_seconds=600)
    assert created.status_code == 200, created.text


async def test_a_self_target_holds_the_persons_pat_untagged_with_its_expiry(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    seeded = seed_target(emus, kind="self", consumers=("prequel-source", "prequel-destination"))
    app_id = seeded.application_id
    assert seeded.table["principal"] == {"kind": "self", "application_id": app_id}
    assert seeded.human_token_id is not None
    first = emus.databricks.get(seeded.human_token_id)
    assert first is not None
    assert first.owner.application_id == app_id
    (version,) = emus.keyvault.versions(seeded.secret_name)
    assert version.value == first.value
    assert version.tags == {}
    assert version.exp == first.expiry_ms // 1000
    held = [
        emus.prequel.source(seeded.consumers[0].id),
        emus.prequel.destination(seeded.consumers[1].id),
    ]
    assert [c.access_token for c in held] == [first.value, first.value]
    assert not [n for n in emus.keyvault.names() if n.startswith(f"{seeded.name}-sp")]
    assert await user_name(emus, http, first.value) == app_id
    created = await create_token(emus, http, bearer(first.value), lifetime_seconds=600)
    assert created.status_code == 200, created.text


@pytest.mark.parametrize("kind", ["entra-client-secret", "databricks-oauth", "databricks-obo"])
def test_other_kinds_keep_their_tables_and_leave_the_pat_secret_empty(
    emus: Emulators, kind: str
) -> None:
    seeded = seed_target(emus, kind=kind)  # type: ignore[arg-type]
    assert seeded.table["principal"]["kind"] == kind
    assert emus.keyvault.versions(seeded.secret_name) == []
    assert emus.keyvault.latest(f"{seeded.name}-sp-credential") is not None


def test_rotator_env_carries_the_identity_endpoint(emus: Emulators) -> None:
    env = rotator_env(emus, "{}")
    assert env["IDENTITY_ENDPOINT"] == emus.identity_endpoint
    assert env["IDENTITY_HEADER"] == emus.identity_header
    assert env["AZURE_TOKEN_CREDENTIALS"] == "EnvironmentCredential"
    assert emus.secrets.kind_of(env["IDENTITY_HEADER"]) == "identity_header"
