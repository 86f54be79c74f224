"""The real azure-keyvault-secrets clients (sync and aio) work against the Key Vault emulator."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from emulators import AppCredential, Emulators


def _name(prefix: str = "s") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@pytest.fixture
def client(emus: Emulators, app: AppCredential, ca: str) -> Iterator[SecretClient]:
    credential = ClientSecretCredential(
        app.tenant_id,
        app.client_id,
        app.client_secret,
        authority=emus.entra_url,
        connection_verify=ca,
        disable_instance_discovery=True,
    )
    with SecretClient(
        emus.keyvault_url, credential, verify_challenge_resource=False, connection_verify=ca
    ) as secret_client:
        yield secret_client


@pytest_asyncio.fixture
async def aclient(emus: Emulators, app: AppCredential, ca: str) -> AsyncIterator[AsyncSecretClient]:
    async with (
        AsyncClientSecretCredential(
            app.tenant_id,
            app.client_id,
            app.client_secret,
            authority=emus.entra_url,
            connection_verify=ca,
        ) as credential,
        AsyncSecretClient(
            emus.keyvault_url, credential, verify_challenge_resource=False, connection_verify=ca
        ) as secret_client,
    ):
        yield secret_client


def test_set_then_get_returns_the_value_and_version(emus: Emulators, client: SecretClient) -> None:
    name = _name()
    stored = client.set_secret(name, "v1", tags={"stage": "pending"}, content_type="text/plain")
    fetched = client.get_secret(name)
    assert fetched.value == "v1"
    assert (
        fetched.properties.version
        == stored.properties.version
        == emus.keyvault.latest(name).version
    )
    assert fetched.properties.tags == {"stage": "pending"}
    assert fetched.properties.content_type == "text/plain"
    assert fetched.properties.vault_url == emus.keyvault_url


def test_first_call_is_challenged_then_authorised(emus: Emulators, client: SecretClient) -> None:
    # The SDK caches challenges per host:port for the whole process: forget them first.
    http_challenge_cache.clear()
    name = _name()
    client.set_secret(name, "v")
    statuses = [e.status for e in emus.requests.find("keyvault", "PUT", rf"/secrets/{name}")]
    assert statuses == [401, 200]


def test_get_by_version_returns_an_older_version(client: SecretClient) -> None:
    name = _name()
    first = client.set_secret(name, "old")
    client.set_secret(name, "new")
    assert client.get_secret(name, first.properties.version).value == "old"
    assert client.get_secret(name).value == "new"


def test_update_properties_replaces_tags_and_keeps_the_value(
    emus: Emulators, client: SecretClient
) -> None:
    name = _name()
    version = client.set_secret(name, "v", tags={"a": "1", "b": "2"}).properties.version
    updated = client.update_secret_properties(name, version, tags={"a": "9"})
    assert updated.tags == {"a": "9"}
    assert emus.keyvault.latest(name).tags == {"a": "9"}
    assert client.get_secret(name).value == "v"


def test_disabled_version_cannot_be_read(client: SecretClient) -> None:
    name = _name()
    version = client.set_secret(name, "v").properties.version
    client.update_secret_properties(name, version, enabled=False)
    with pytest.raises(HttpResponseError) as caught:
        client.get_secret(name)
    assert caught.value.status_code == 403
    assert "disabled secret" in str(caught.value)


def test_listing_thirty_versions_follows_next_links(emus: Emulators, client: SecretClient) -> None:
    name = _name()
    for i in range(30):
        emus.keyvault.set_secret(name, f"v{i}", tags={"i": str(i)})
    emus.requests.clear()
    versions = list(client.list_properties_of_secret_versions(name))
    assert sorted(int(v.tags["i"]) for v in versions) == list(range(30))
    assert emus.requests.count("keyvault", "GET", rf"/secrets/{name}/versions") == 2


def test_listing_secrets_pages_and_shows_latest_tags(emus: Emulators, client: SecretClient) -> None:
    prefix = _name("list")
    for i in range(27):
        emus.keyvault.set_secret(f"{prefix}-{i:02d}", "old", tags={"v": "1"})
        emus.keyvault.set_secret(f"{prefix}-{i:02d}", "new", tags={"v": "2"})
    emus.requests.clear()
    mine = [p for p in client.list_properties_of_secrets() if p.name.startswith(prefix)]
    assert len(mine) == 27
    assert {p.tags["v"] for p in mine} == {"2"}
    assert all(p.version is None for p in mine)
    assert emus.requests.count("keyvault", "GET", "/secrets") >= 2


def test_delete_soft_deletes_and_blocks_the_name(emus: Emulators, client: SecretClient) -> None:
    name = _name()
    client.set_secret(name, "v")
    deleted = client.begin_delete_secret(name).result()
    assert deleted.name == name
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    assert name not in emus.keyvault.names()
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    with pytest.raises(ResourceExistsError):
        client.set_secret(name, "again")


def test_deleted_secret_can_be_recovered_or_purged(emus: Emulators, client: SecretClient) -> None:
    kept, gone = _name(), _name()
    for name in (kept, gone):
        client.set_secret(name, "v")
        client.begin_delete_secret(name).result()
    client.begin_recover_deleted_secret(kept).result()
    client.purge_deleted_secret(gone)
    assert client.get_secret(kept).value == "v"
    assert gone not in emus.keyvault.deleted_names()
    client.set_secret(gone, "fresh")


async def test_aio_set_get_update(emus: Emulators, aclient: AsyncSecretClient) -> None:
    name = _name()
    stored = await aclient.set_secret(name, "v1", tags={"stage": "pending"})
    await aclient.update_secret_properties(
        name, stored.properties.version, tags={"stage": "current"}
    )
    fetched = await aclient.get_secret(name)
    assert fetched.value == "v1"
    assert fetched.properties.tags == {"stage": "current"}


async def test_aio_lists_pages_of_versions_and_secrets(
    emus: Emulators, aclient: AsyncSecretClient
) -> None:
    name = _name()
    for i in range(26):
        emus.keyvault.set_secret(name, f"v{i}")
    versions = [v async for v in aclient.list_properties_of_secret_versions(name)]
    names = [p.name async for p in aclient.list_properties_of_secrets()]
    assert len(versions) == 26
    assert name in names


async def test_aio_delete(emus: Emulators, aclient: AsyncSecretClient) -> None:
    name = _name()
    await aclient.set_secret(name, "v")
    deleted = await aclient.delete_secret(name)
    assert deleted.name == name
    assert (await aclient.get_deleted_secret(name)).name == name
    assert name in emus.keyvault.deleted_names()


def test_azure_core_retries_a_put_whose_answer_was_lost(
    emus: Emulators, client: SecretClient
) -> None:
    # drop_after: the vault stored the version, the client never heard; azure-core retries
    # the PUT on its own, so the vault ends up with two versions.
    name = _name()
    client.set_secret(name, "first")
    emus.faults.add("keyvault", "PUT", rf"/secrets/{name}", mode="drop_after")
    client.set_secret(name, "second")
    assert [v.value for v in emus.keyvault.versions(name)] == ["first", "second", "second"]
