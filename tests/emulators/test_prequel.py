"""The Prequel emulator: API key and version headers, envelopes, PATCH and test-connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators

VERSION = {"X-Prequel-Api-Version": "2023-12-01"}


@pytest.fixture
def headers(emus: Emulators) -> dict[str, str]:
    return {"X-API-KEY": emus.prequel.add_api_key(), **VERSION}


@pytest.fixture
def source_id(emus: Emulators, sp: AppCredential) -> str:
    pat = emus.databricks.mint(sp.client_id, 3600, "human").value
    return emus.prequel.add_source(
        host=emus.databricks_url.removeprefix("https://"), access_token=pat
    )


def token_patch(kind: str, token: str) -> dict[str, object]:
    auth = {"auth_method": "access_token_auth", "access_token_auth": {"access_token": token}}
    return {kind: {"databricks": auth}}


async def test_missing_or_unknown_api_key_is_401(emus: Emulators, http: httpx.AsyncClient) -> None:
    for key in ({}, {"X-API-KEY": "sk_staging_nope"}):
        response = await http.get(f"{emus.prequel_url}/sources", headers={**key, **VERSION})
        assert response.status_code == 401
        assert response.json() == {
            "status": "error",
            "data": None,
            "message": "Unauthorized: invalid API key",
        }


async def test_revoked_api_key_is_401(emus: Emulators, http: httpx.AsyncClient) -> None:
    key = emus.prequel.add_api_key()
    emus.prequel.revoke_api_key(key)
    response = await http.get(f"{emus.prequel_url}/sources", headers={"X-API-KEY": key, **VERSION})
    assert response.status_code == 401


async def test_missing_version_header_is_400_envelope(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        f"{emus.prequel_url}/sources", headers={"X-API-KEY": emus.prequel.add_api_key()}
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert response.json()["data"] is None


async def test_get_source_hides_the_token(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], source_id: str
) -> None:
    response = await http.get(f"{emus.prequel_url}/sources/{source_id}", headers=headers)
    body = response.json()
    settings = body["data"]["source"]["databricks"]
    assert body["status"] == "success"
    assert settings["host"] == emus.databricks_url.removeprefix("https://")
    assert settings["auth_method"] == "access_token_auth"
    assert "access_token" not in settings["access_token_auth"]
    assert emus.prequel.source(source_id).access_token not in response.text


async def test_unknown_source_is_404_envelope(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get(f"{emus.prequel_url}/sources/nope", headers=headers)
    assert response.status_code == 404
    assert response.json()["status"] == "error"


async def test_patch_replaces_only_the_token(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    source_id: str,
) -> None:
    source = emus.prequel.source(source_id)
    old = source.access_token
    new = emus.databricks.mint(sp.client_id, 3600, "new").value
    response = await http.patch(
        f"{emus.prequel_url}/sources/{source_id}", headers=headers, json=token_patch("source", new)
    )
    assert response.status_code == 200
    assert source.access_token == new
    assert source.history == [old, new]
    assert source.config["databricks"]["http_path"] == "/sql/1.0/warehouses/abc"


async def test_malformed_patch_is_400(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], source_id: str
) -> None:
    response = await http.patch(
        f"{emus.prequel_url}/sources/{source_id}", headers=headers, json={"databricks": {}}
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"


async def test_test_connection_with_a_live_pat_succeeds_without_saving(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    source_id: str,
) -> None:
    source = emus.prequel.source(source_id)
    new = emus.databricks.mint(sp.client_id, 3600, "new").value
    url = f"{emus.prequel_url}/sources/{source_id}/test-connection"
    body = (await http.post(url, headers=headers, json=token_patch("source", new))).json()
    assert body["status"] == "success"
    assert body["data"]["status"] == "success"
    assert source.access_token != new
    assert emus.prequel.tests()[-1].access_token == new
    assert emus.requests.find("databricks", "GET", "/api/2.0/preview/scim/v2/Me")[-1].status == 200


async def test_test_connection_with_a_revoked_pat_reports_failure_in_data(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    source_id: str,
) -> None:
    emus.databricks.revoke(emus.databricks.tokens_of(sp.client_id)[0].token_id)
    url = f"{emus.prequel_url}/sources/{source_id}/test-connection"
    response = await http.post(url, headers=headers, json={"source": {}})
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "success"
    assert body["data"]["status"] == "failure"
    assert "403" in body["data"]["message"]
    assert emus.prequel.source(source_id).access_token not in response.text


@pytest.mark.parametrize("prefix", ["/destinations", "/export/destinations"])
async def test_destinations_patch_and_test_under_both_prefixes(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    prefix: str,
) -> None:
    host = emus.databricks_url.removeprefix("https://")
    dest = emus.prequel.add_destination(
        host=host, access_token=emus.databricks.mint(sp.client_id, 3600, "h").value
    )
    new = emus.databricks.mint(sp.client_id, 3600, "new").value
    tested = (
        await http.post(
            f"{emus.prequel_url}{prefix}/{dest}/test-connection",
            headers=headers,
            json=token_patch("destination", new),
        )
    ).json()
    patched = await http.patch(
        f"{emus.prequel_url}{prefix}/{dest}", headers=headers, json=token_patch("destination", new)
    )
    assert tested["data"]["status"] == "success"
    assert patched.status_code == 200
    assert emus.prequel.destinations[dest].access_token == new


async def test_test_connection_never_leaves_loopback(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    dest = emus.prequel.add_destination(
        host="adb-123.azuredatabricks.net", access_token="dapi" + "1" * 32
    )
    body = (
        await http.post(
            f"{emus.prequel_url}/destinations/{dest}/test-connection", headers=headers, json={}
        )
    ).json()
    assert body["data"]["status"] == "failure"
    assert "loopback" in body["data"]["message"]
