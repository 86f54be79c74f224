"""The Fivetran emulator: Basic auth, Accept, masked PAT, PATCH with setup tests, rate limit."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from emulators import AppCredential, Emulators

ACCEPT = {"Accept": "application/json;version=2"}


@pytest.fixture
def headers(emus: Emulators) -> dict[str, str]:
    key, secret = emus.fivetran.add_api_key()
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {basic}", **ACCEPT}


@pytest.fixture
def destination_id(emus: Emulators, sp: AppCredential) -> str:
    pat = emus.databricks.mint(sp.client_id, 3600, "fivetran").value
    host, port = emus.databricks_url.removeprefix("https://").split(":")
    return emus.fivetran.add_destination(host=host, port=int(port), personal_access_token=pat)


@pytest.fixture
def limit(emus: Emulators) -> Iterator[None]:
    emus.fivetran.reset_setup_test_window()
    emus.fivetran.setup_tests_per_minute = 1
    yield
    emus.fivetran.setup_tests_per_minute = 250
    emus.fivetran.reset_setup_test_window()


def url(emus: Emulators, destination_id: str) -> str:
    return f"{emus.fivetran_url}/v1/destinations/{destination_id}"


def new_pat(emus: Emulators, sp: AppCredential) -> str:
    return emus.databricks.mint(sp.client_id, 3600, "new").value


async def test_get_masks_the_token(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    response = await http.get(url(emus, destination_id), headers=headers)
    body = response.json()
    assert (response.status_code, body["code"]) == (200, "Success")
    assert body["data"]["config"]["personal_access_token"] == "******"
    assert body["data"]["config"]["auth_type"] == "PERSONAL_ACCESS_TOKEN"
    assert body["data"]["service"] == "databricks"
    assert emus.fivetran.destination(destination_id).personal_access_token not in response.text


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"k:wrong").decode()},
        {"Authorization": "Bearer x"},
    ],
)
async def test_bad_credentials_are_401(
    emus: Emulators, http: httpx.AsyncClient, destination_id: str, auth: dict[str, str]
) -> None:
    response = await http.get(url(emus, destination_id), headers={**auth, **ACCEPT})
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message"}


async def test_a_revoked_key_is_401(
    emus: Emulators, http: httpx.AsyncClient, destination_id: str
) -> None:
    key, secret = emus.fivetran.add_api_key()
    emus.fivetran.revoke_api_key(key)
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    response = await http.get(
        url(emus, destination_id), headers={"Authorization": f"Basic {basic}", **ACCEPT}
    )
    assert response.status_code == 401


async def test_an_unsupported_accept_is_406(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    response = await http.get(url(emus, destination_id), headers={**headers, "Accept": "text/xml"})
    assert (response.status_code, response.json()["code"]) == (406, "NotAcceptable")


async def test_unknown_destination_is_404(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get(url(emus, "nope"), headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound_Destination"


async def test_patch_with_setup_tests_saves_and_really_tests_the_new_pat(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    destination_id: str,
) -> None:
    destination = emus.fivetran.destination(destination_id)
    old, new = destination.personal_access_token, new_pat(emus, sp)
    body = {"config": {"personal_access_token": new}, "run_setup_tests": True}
    response = await http.patch(url(emus, destination_id), headers=headers, json=body)
    data = response.json()["data"]
    assert response.status_code == 200
    assert data["setup_status"] == "connected"
    assert data["setup_tests"][0]["status"] == "PASSED"
    assert data["config"]["personal_access_token"] == "******"
    assert destination.history == [old, new]
    assert emus.fivetran.tests()[-1].personal_access_token == new
    assert emus.requests.find("databricks", "GET", "/api/2.0/preview/scim/v2/Me")[-1].status == 200
    assert new not in response.text


async def test_patch_with_a_dead_pat_is_saved_and_reported_broken(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    body = {"config": {"personal_access_token": "dapi-dead"}, "run_setup_tests": True}
    response = await http.patch(url(emus, destination_id), headers=headers, json=body)
    data = response.json()["data"]
    assert response.status_code == 200
    assert data["setup_status"] == "broken"
    assert data["setup_tests"][0]["status"] == "FAILED"
    assert emus.fivetran.destination(destination_id).personal_access_token == "dapi-dead"


async def test_writing_the_mask_back_stores_the_mask_and_breaks_the_destination(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    shown = (await http.get(url(emus, destination_id), headers=headers)).json()["data"]
    body = {"config": shown["config"], "run_setup_tests": True}
    response = await http.patch(url(emus, destination_id), headers=headers, json=body)
    assert response.json()["data"]["setup_status"] == "broken"
    assert emus.fivetran.destination(destination_id).personal_access_token == "******"


async def test_post_test_runs_the_setup_tests_on_the_saved_pat(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    body = {"trust_certificates": True, "trust_fingerprints": True}
    response = await http.post(f"{url(emus, destination_id)}/test", headers=headers, json=body)
    assert response.json()["data"]["setup_status"] == "connected"
    test = emus.fivetran.tests()[-1]
    assert (test.trigger, test.ok) == ("test", True)
    assert (
        test.personal_access_token
        == emus.fivetran.destination(destination_id).personal_access_token
    )


@pytest.mark.parametrize(
    "body",
    [
        {"config": []},
        {"config": {"personal_access_token": ""}},
        {"config": {"personal_access_token": 5}},
        {"run_setup_tests": "yes"},
    ],
)
async def test_malformed_patch_is_400_and_changes_nothing(
    emus: Emulators,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    destination_id: str,
    body: dict[str, object],
) -> None:
    before = emus.fivetran.destination(destination_id).config
    response = await http.patch(url(emus, destination_id), headers=headers, json=body)
    assert (response.status_code, response.json()["code"]) == (400, "InvalidInput")
    assert emus.fivetran.destination(destination_id).config == before


@pytest.mark.usefixtures("limit")
async def test_setup_test_rate_limit_is_429_with_retry_after_and_changes_nothing(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    destination_id: str,
) -> None:
    first = await http.post(f"{url(emus, destination_id)}/test", headers=headers)
    body = {"config": {"personal_access_token": new_pat(emus, sp)}, "run_setup_tests": True}
    second = await http.patch(url(emus, destination_id), headers=headers, json=body)
    assert first.status_code == 200
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= 60
    assert set(second.json()) == {"code", "message"}
    assert len(emus.fivetran.destination(destination_id).history) == 1
    emus.clock.advance(61)
    third = await http.post(f"{url(emus, destination_id)}/test", headers=headers)
    assert third.status_code == 200


@pytest.mark.usefixtures("limit")
async def test_patch_without_setup_tests_is_not_rate_limited(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    destination_id: str,
) -> None:
    await http.post(f"{url(emus, destination_id)}/test", headers=headers)
    body = {"config": {"personal_access_token": new_pat(emus, sp)}}
    response = await http.patch(url(emus, destination_id), headers=headers, json=body)
    assert response.status_code == 200
    assert "setup_tests" not in response.json()["data"]


async def test_faults_use_fivetrans_error_shape(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], destination_id: str
) -> None:
    emus.faults.add("fivetran", "PATCH", "/v1/destinations/.*", status=503)
    response = await http.patch(url(emus, destination_id), headers=headers, json={"config": {}})
    assert response.status_code == 503
    assert set(response.json()) == {"code", "message"}


def test_api_secrets_are_registered(emus: Emulators) -> None:
    _, secret = emus.fivetran.add_api_key()
    assert emus.secrets.kind_of(secret) == "api_secret"
