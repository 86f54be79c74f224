"""The workspace's service-principal secrets proxy: its secrets really change what authenticates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.emulators.helpers import bearer

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators, Principal


@pytest.fixture
def managed(emus: Emulators) -> Principal:
    """A Databricks-managed service principal that is a workspace admin (so may rotate itself)."""
    return emus.databricks.add_service_principal(str(uuid.uuid4()), "managed-sp", admin=True)


def _secrets_url(emus: Emulators, principal_id: int | str, tail: str = "") -> str:
    base = f"{emus.databricks_url}/api/2.0/accounts/servicePrincipals/{principal_id}"
    return f"{base}/credentials/secrets{tail}"


async def _oidc(
    emus: Emulators, http: httpx.AsyncClient, client_id: str, secret: str
) -> httpx.Response:
    return await http.post(
        f"{emus.databricks_url}/oidc/v1/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "all-apis"},
    )


async def _create(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], sp: Principal, **body: Any
) -> httpx.Response:
    return await http.post(_secrets_url(emus, sp.id), headers=auth, json=body)


async def _list_all(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], sp: Principal, **params: str
) -> tuple[list[dict[str, Any]], int]:
    """Page through the list; return every entry and the number of pages."""
    found: list[dict[str, Any]] = []
    pages = 0
    token: str | None = None
    while True:
        query = {**params, **({"page_token": token} if token else {})}
        response = await http.get(_secrets_url(emus, sp.id), headers=auth, params=query)
        assert response.status_code == 200, response.text
        pages += 1
        found += response.json()["secrets"]
        token = response.json().get("next_page_token")
        if not token:
            return found, pages


def _assert_api_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json().keys() == {"error_code", "message"}
    assert response.json()["error_code"] == code


async def test_an_admin_sp_rotates_its_own_secret_end_to_end(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient
) -> None:
    client_id = managed.application_id or ""
    old = emus.databricks.add_oauth_secret(client_id)
    auth = bearer((await _oidc(emus, http, client_id, old)).json()["access_token"])
    scim = await http.get(
        f"{emus.databricks_url}/api/2.0/preview/scim/v2/ServicePrincipals",
        headers=auth,
        params={"filter": f'applicationId eq "{client_id}"'},
    )
    [resource] = scim.json()["Resources"]
    assert int(resource["id"]) == managed.id
    created = await http.post(_secrets_url(emus, resource["id"]), headers=auth, json={})
    assert created.status_code == 200
    new = created.json()
    assert emus.secrets.kind_of(new["secret"]) == "oauth_secret"
    assert {"id", "secret_hash", "create_time", "expire_time", "status"} <= new.keys()
    assert (await _oidc(emus, http, client_id, new["secret"])).status_code == 200
    [old_info] = [s for s in emus.databricks.oauth_secrets_of(client_id) if s.value == old]
    deleted = await http.delete(
        _secrets_url(emus, managed.id, f"/{old_info.secret_id}"), headers=auth
    )
    assert (deleted.status_code, deleted.json()) == (200, {})
    refused = await _oidc(emus, http, client_id, old)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    again = await http.delete(
        _secrets_url(emus, managed.id, f"/{old_info.secret_id}"), headers=auth
    )
    _assert_api_error(again, 404, "RESOURCE_DOES_NOT_EXIST")


async def test_default_lifetime_is_730_days_and_both_lifetime_forms_are_read(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    def seconds(info: dict[str, Any]) -> float:
        parse = dt.datetime.fromisoformat
        return (parse(info["expire_time"]) - parse(info["create_time"])).total_seconds()

    default = (await _create(emus, http, admin_auth, managed)).json()
    with_unit = (await _create(emus, http, admin_auth, managed, lifetime="3600s")).json()
    bare = (await _create(emus, http, admin_auth, managed, lifetime="7200")).json()
    assert (seconds(default), seconds(with_unit), seconds(bare)) == (730 * 86400, 3600, 7200)


@pytest.mark.parametrize("lifetime", [f"{730 * 86400 + 1}s", "0s", "two years", True])
async def test_a_lifetime_out_of_range_or_unreadable_is_refused(
    emus: Emulators,
    managed: Principal,
    http: httpx.AsyncClient,
    admin_auth: dict[str, str],
    lifetime: object,
) -> None:
    response = await _create(emus, http, admin_auth, managed, lifetime=lifetime)
    _assert_api_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert emus.databricks.oauth_secrets_of(managed.application_id or "") == []


async def test_at_most_five_live_secrets_and_expired_ones_do_not_count(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    made = [(await _create(emus, http, admin_auth, managed)).json() for _ in range(5)]
    sixth = await _create(emus, http, admin_auth, managed)
    _assert_api_error(sixth, 400, "QUOTA_EXCEEDED")
    assert len(emus.databricks.oauth_secrets_of(managed.application_id or "")) == 5
    emus.databricks.expire_oauth_secret(managed.application_id or "", made[0]["id"])
    assert (await _create(emus, http, admin_auth, managed)).status_code == 200


async def test_the_list_is_paged_and_never_shows_a_value(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    made = [(await _create(emus, http, admin_auth, managed)).json() for _ in range(5)]
    listed, pages = await _list_all(emus, http, admin_auth, managed)
    assert [s["id"] for s in listed] == [s["id"] for s in made]
    assert pages == 3
    assert all("secret" not in s for s in listed)
    _, single_pages = await _list_all(emus, http, admin_auth, managed, page_size="1")
    assert single_pages == 5
    bad = await http.get(
        _secrets_url(emus, managed.id), headers=admin_auth, params={"page_token": "%%%"}
    )
    _assert_api_error(bad, 400, "INVALID_PARAMETER_VALUE")


async def test_an_expired_secret_stops_authenticating_and_leaves_the_list(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    client_id = managed.application_id or ""
    short = (await _create(emus, http, admin_auth, managed, lifetime="60s")).json()
    assert (await _oidc(emus, http, client_id, short["secret"])).status_code == 200
    emus.clock.advance(61)
    assert (await _oidc(emus, http, client_id, short["secret"])).status_code == 401
    listed, _ = await _list_all(emus, http, admin_auth, managed)
    assert short["id"] not in [s["id"] for s in listed]


async def test_a_seeded_secret_can_be_expired(
    emus: Emulators, managed: Principal, http: httpx.AsyncClient
) -> None:
    client_id = managed.application_id or ""
    seeded = emus.databricks.add_oauth_secret(client_id)
    [info] = emus.databricks.oauth_secrets_of(client_id)
    emus.databricks.expire_oauth_secret(client_id, info.secret_id)
    assert (await _oidc(emus, http, client_id, seeded)).status_code == 401


async def test_only_workspace_admins_may_use_the_proxy(
    emus: Emulators,
    managed: Principal,
    sp: AppCredential,
    http: httpx.AsyncClient,
    entra_auth: dict[str, str],
) -> None:
    del sp
    created = await _create(emus, http, entra_auth, managed)
    listed = await http.get(_secrets_url(emus, managed.id), headers=entra_auth)
    for response in (created, listed):
        _assert_api_error(response, 403, "PERMISSION_DENIED")
    assert emus.databricks.oauth_secrets_of(managed.application_id or "") == []


async def test_an_unknown_or_malformed_principal_id_is_refused(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    unknown = await http.post(_secrets_url(emus, 1), headers=admin_auth, json={})
    _assert_api_error(unknown, 404, "RESOURCE_DOES_NOT_EXIST")
    by_uuid = await http.post(_secrets_url(emus, uuid.uuid4()), headers=admin_auth, json={})
    _assert_api_error(by_uuid, 400, "INVALID_PARAMETER_VALUE")
