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


@pytest.fixture
def import_source_id(emus: Emulators, sp: AppCredential) -> str:
    pat = emus.databricks.mint(sp.client_id, 3600, "human").value
    return emus.prequel.add_import_source(
        host=emus.databricks_url.removeprefix("https://"), access_token=pat
    )


IMPORT_ROUTES = [
    ("GET", "/import/sources/{id}"),
    ("PATCH", "/import/sources/{id}"),
    ("POST", "/import/sources/{id}/test-source"),
]


@pytest.mark.parametrize(("method", "path"), IMPORT_ROUTES)
async def test_import_routes_refuse_an_unknown_api_key_with_the_401_envelope(
    emus: Emulators, http: httpx.AsyncClient, import_source_id: str, method: str, path: str
) -> None:
    source = emus.prequel.import_source(import_source_id)
    held = source.access_token
    response = await http.request(
        method,
        emus.prequel_url + path.format(id=import_source_id),
        headers={"X-API-KEY": "sk_staging_nope", **VERSION},
        json=token_patch("source", "dapi" + "2" * 32),
    )
    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "Unauthorized: invalid API key",
    }
    assert source.access_token == held


@pytest.mark.parametrize(("method", "path"), IMPORT_ROUTES)
async def test_import_routes_answer_an_unknown_id_with_the_404_envelope(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = await http.request(
        method,
        emus.prequel_url + path.format(id="nope"),
        headers=headers,
        json={"source": {}},
    )
    assert response.status_code == 404
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "import source nope not found",
    }
    assert emus.requests.find("prequel", method, path.format(id="nope"))[-1].status == 404


async def test_an_export_source_is_not_an_import_source(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], source_id: str
) -> None:
    response = await http.get(f"{emus.prequel_url}/import/sources/{source_id}", headers=headers)
    assert response.status_code == 404


async def test_get_import_source_hides_the_token(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], import_source_id: str
) -> None:
    response = await http.get(
        f"{emus.prequel_url}/import/sources/{import_source_id}", headers=headers
    )
    settings = response.json()["data"]["source"]["databricks"]
    assert response.status_code == 200
    assert settings["auth_method"] == "access_token_auth"
    assert "access_token" not in settings["access_token_auth"]
    assert emus.prequel.import_source(import_source_id).access_token not in response.text


async def test_import_test_source_tests_a_partial_body_without_saving_then_the_saved_source(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    import_source_id: str,
) -> None:
    source = emus.prequel.import_source(import_source_id)
    old = source.access_token
    new = emus.databricks.mint(sp.client_id, 3600, "new").value
    url = f"{emus.prequel_url}/import/sources/{import_source_id}/test-source"
    unsaved = (await http.post(url, headers=headers, json=token_patch("source", new))).json()
    assert unsaved["status"] == "success"
    assert unsaved["data"]["status"] == "success"
    assert source.access_token == old
    saved = (await http.post(url, headers=headers)).json()  # no body: the saved source
    assert saved["data"]["status"] == "success"
    tests = [t for t in emus.prequel.tests() if t.connection_id == import_source_id]
    assert [(t.kind, t.access_token, t.token_saved) for t in tests] == [
        ("import_source", new, False),
        ("import_source", old, True),
    ]


async def test_import_test_source_reports_a_revoked_pat_as_failure_in_data(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    import_source_id: str,
) -> None:
    revoked = emus.databricks.mint(sp.client_id, 3600, "revoked")
    emus.databricks.revoke(revoked.token_id)
    url = f"{emus.prequel_url}/import/sources/{import_source_id}/test-source"
    response = await http.post(url, headers=headers, json=token_patch("source", revoked.value))
    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert response.json()["data"]["status"] == "failure"
    assert revoked.value not in response.text


async def test_import_patch_replaces_only_the_token(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    import_source_id: str,
) -> None:
    source = emus.prequel.import_source(import_source_id)
    old = source.access_token
    new = emus.databricks.mint(sp.client_id, 3600, "new").value
    response = await http.patch(
        f"{emus.prequel_url}/import/sources/{import_source_id}",
        headers=headers,
        json=token_patch("source", new),
    )
    assert response.status_code == 200
    assert response.json()["data"]["source"]["databricks"]["http_path"] == "/sql/1.0/warehouses/abc"
    assert new not in response.text
    assert source.history == [old, new]


async def test_import_patch_without_a_source_object_is_400(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], import_source_id: str
) -> None:
    response = await http.patch(
        f"{emus.prequel_url}/import/sources/{import_source_id}",
        headers=headers,
        json={"destination": {}},
    )
    assert response.status_code == 400
    assert response.json()["message"] == 'The request body must be {"source": {...}}.'


async def test_import_test_source_of_an_unsaved_source(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    pat = emus.databricks.mint(sp.client_id, 3600, "new").value
    body = token_patch("source", pat)
    body["source"]["databricks"]["host"] = emus.databricks_url.removeprefix("https://")  # type: ignore[index]
    response = await http.post(f"{emus.prequel_url}/import/test-source", headers=headers, json=body)
    assert response.json()["data"]["status"] == "success"
    assert emus.prequel.tests()[-1].kind == "import_source"
    assert emus.prequel.tests()[-1].connection_id is None


async def test_documented_only_answers_the_inferred_routes_404_and_serves_the_export_ones(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], source_id: str
) -> None:
    dest = emus.prequel.add_destination(
        host=emus.databricks_url.removeprefix("https://"), access_token="dapi0"
    )
    base = emus.prequel_url
    inferred = [
        ("GET", f"/sources/{source_id}"),
        ("PATCH", f"/sources/{source_id}"),
        ("POST", f"/sources/{source_id}/test-connection"),
        ("POST", f"/destinations/{dest}/test-connection"),
        ("GET", f"/import/sources/{source_id}"),
    ]
    emus.prequel.documented_only = True
    try:
        for method, path in inferred:
            response = await http.request(method, base + path, headers=headers, json={})
            assert response.status_code == 404, path
            assert response.json() == {"status": "error", "data": None, "message": "Not Found"}
        assert (await http.get(f"{base}/export/sources/{source_id}", headers=headers)).is_success
        assert (await http.get(f"{base}/destinations/{dest}", headers=headers)).is_success
        tested = await http.post(
            f"{base}/export/sources/{source_id}/test-connection",
            headers=headers,
            json={"source": {}},
        )
        assert tested.json()["data"]["status"] == "success"
    finally:
        emus.prequel.documented_only = False
    assert (await http.get(f"{base}/sources/{source_id}", headers=headers)).is_success
