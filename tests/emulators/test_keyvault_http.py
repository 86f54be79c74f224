"""The Key Vault emulator's REST contract: challenge, errors, limits, paging and access control."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators

API = {"api-version": "7.6"}


def _name() -> str:
    return f"h-{secrets.token_hex(6)}"


@pytest.fixture
def auth(emus: Emulators, app: AppCredential) -> dict[str, str]:
    token = emus.entra.issue(app.client_id, "https://vault.azure.net").access_token
    return {"Authorization": f"Bearer {token}"}


async def test_request_without_token_gets_the_challenge(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{emus.keyvault_url}/secrets", params=API)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token.",
        }
    }
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.windows.net/{emus.tenant_id}",'
        ' resource="https://vault.azure.net"'
    )


async def test_token_for_another_audience_is_refused_with_the_challenge(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    token = emus.entra.issue(app.client_id, "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d").access_token
    response = await http.get(
        f"{emus.keyvault_url}/secrets", params=API, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert "WWW-Authenticate" in response.headers


async def test_missing_api_version_is_bad_parameter(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.get(f"{emus.keyvault_url}/secrets", headers=auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"


async def test_unknown_secret_is_secret_not_found(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    response = await http.get(f"{emus.keyvault_url}/secrets/{name}/", params=API, headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "SecretNotFound"
    assert response.json()["error"]["message"].startswith(
        f"A secret with (name/id) {name} was not found"
    )


async def test_invalid_name_is_bad_parameter(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await http.put(
        f"{emus.keyvault_url}/secrets/bad_name", params=API, headers=auth, json={"value": "v"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"


@pytest.mark.parametrize(
    "body",
    [
        {"value": "v", "tags": {f"t{i}": "x" for i in range(16)}},
        {"value": "v", "tags": {"t": "x" * 513}},
        {"value": "x" * (25 * 1024 + 1)},
        {"tags": {}},
        {"value": "v", "contentType": "x" * 256},
    ],
    ids=["16 tags", "long tag value", "value over 25 KB", "no value", "contentType over 255"],
)
async def test_put_limits_are_enforced(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, object]
) -> None:
    response = await http.put(
        f"{emus.keyvault_url}/secrets/{_name()}", params=API, headers=auth, json=body
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"


async def test_put_returns_a_full_bundle_with_virtual_timestamps(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    body = {
        "value": "v",
        "contentType": "pat",
        "attributes": {"exp": 2_000_000_000},
        "tags": {"a": "b"},
    }
    bundle = (
        await http.put(f"{emus.keyvault_url}/secrets/{name}", params=API, headers=auth, json=body)
    ).json()
    version = emus.keyvault.latest(name).version
    assert bundle["id"] == f"{emus.keyvault_url}/secrets/{name}/{version}"
    assert len(version) == 32
    assert bundle["attributes"]["exp"] == 2_000_000_000
    assert bundle["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    assert abs(bundle["attributes"]["created"] - emus.clock.now()) < 5
    assert (bundle["value"], bundle["contentType"], bundle["tags"]) == ("v", "pat", {"a": "b"})


async def test_patch_merges_attributes_and_answers_without_value(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    version = emus.keyvault.set_secret(name, "v", exp=100, tags={"x": "1"})
    url = f"{emus.keyvault_url}/secrets/{name}/{version}"
    bundle = (
        await http.patch(url, params=API, headers=auth, json={"attributes": {"enabled": False}})
    ).json()
    assert "value" not in bundle
    assert bundle["attributes"]["exp"] == 100
    assert bundle["attributes"]["enabled"] is False
    assert bundle["tags"] == {"x": "1"}


async def test_content_type_of_255_characters_is_the_most_put_and_patch_accept(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    url = f"{emus.keyvault_url}/secrets/{name}"
    put = await http.put(
        url, params=API, headers=auth, json={"value": "v", "contentType": "a" * 255}
    )
    version = emus.keyvault.latest(name).version
    too_long = await http.patch(
        f"{url}/{version}", params=API, headers=auth, json={"contentType": "b" * 256}
    )
    assert put.status_code == 200
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "BadParameter"
    assert "255" in too_long.json()["error"]["message"]
    assert emus.keyvault.latest(name).content_type == "a" * 255


@pytest.mark.parametrize("maxresults", ["0", "26", "x"])
async def test_maxresults_outside_1_to_25_is_bad_parameter(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], maxresults: str
) -> None:
    response = await http.get(
        f"{emus.keyvault_url}/secrets", params={**API, "maxresults": maxresults}, headers=auth
    )
    assert response.status_code == 400


async def test_next_link_is_absolute_and_null_at_the_end(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    for i in range(3):
        emus.keyvault.set_secret(name, str(i))
    url = f"{emus.keyvault_url}/secrets/{name}/versions"
    first = (await http.get(url, params={**API, "maxresults": "2"}, headers=auth)).json()
    assert first["nextLink"].startswith(f"{url}?")
    second = (await http.get(first["nextLink"], headers=auth)).json()
    assert len(first["value"]) == 2
    assert len(second["value"]) == 1
    assert second["nextLink"] is None


async def test_readers_and_writers_restrict_access(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    emus.keyvault.set_secret(name, "v")
    emus.keyvault.readers = {app.client_id}
    emus.keyvault.writers = set()
    try:
        read = await http.get(f"{emus.keyvault_url}/secrets/{name}", params=API, headers=auth)
        write = await http.put(
            f"{emus.keyvault_url}/secrets/{name}", params=API, headers=auth, json={"value": "w"}
        )
    finally:
        emus.keyvault.readers = emus.keyvault.writers = None
    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json()["error"]["code"] == "Forbidden"
    assert write.json()["error"]["innererror"] == {"code": "ForbiddenByRbac"}


async def test_put_to_a_deleted_name_is_a_conflict(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    name = _name()
    emus.keyvault.set_secret(name, "v")
    deleted = await http.delete(f"{emus.keyvault_url}/secrets/{name}", params=API, headers=auth)
    response = await http.put(
        f"{emus.keyvault_url}/secrets/{name}", params=API, headers=auth, json={"value": "w"}
    )
    assert deleted.json()["recoveryId"] == f"{emus.keyvault_url}/deletedsecrets/{name}"
    assert response.status_code == 409
    assert response.json()["error"]["innererror"] == {"code": "ObjectIsDeletedButRecoverable"}


def test_names_are_case_insensitive(emus: Emulators) -> None:
    name = _name()
    emus.keyvault.set_secret(name, "a")
    emus.keyvault.set_secret(name.upper(), "b")
    assert [v.value for v in emus.keyvault.versions(name)] == ["a", "b"]
