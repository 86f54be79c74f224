"""The Azure DevOps emulator: Entra auth (203 sign-in page), GET/PUT of variable groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators import AppCredential, Emulators
    from emulators.devops_state import VariableGroup

DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"
ORG, PROJECT = "contoso", "data"
API = {"api-version": "7.1"}
ERROR_KEYS = {"$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"}


@pytest.fixture
def member(emus: Emulators, app: AppCredential) -> AppCredential:
    emus.devops.add_member(ORG, app.client_id)
    return app


@pytest.fixture
def auth(emus: Emulators, member: AppCredential) -> dict[str, str]:
    return {"Authorization": f"Bearer {emus.entra.issue(member.client_id, DEVOPS).access_token}"}


@pytest.fixture
def group_id(emus: Emulators) -> int:
    return emus.devops.add_group(
        ORG,
        PROJECT,
        "databricks",
        {"DATABRICKS_HOST": ("https://adb.example", False), "DATABRICKS_TOKEN": ("dapi-old", True)},
    )


@pytest.fixture
def null_keeps(emus: Emulators) -> Iterator[None]:
    emus.devops.null_keeps_secret = True
    yield
    emus.devops.null_keeps_secret = False


def get_url(emus: Emulators, group_id: int) -> str:
    return f"{emus.devops_url}/{ORG}/{PROJECT}/_apis/distributedtask/variablegroups/{group_id}"


def put_url(emus: Emulators, group_id: int) -> str:
    return f"{emus.devops_url}/{ORG}/_apis/distributedtask/variablegroups/{group_id}"


def put_body(shown: dict[str, Any], **variables: dict[str, Any]) -> dict[str, Any]:
    """A PUT body built from a GET answer, with ``variables`` replacing the variables."""
    return {
        "name": shown["name"],
        "description": shown["description"],
        "type": shown["type"],
        "variables": variables,
        "variableGroupProjectReferences": shown["variableGroupProjectReferences"],
    }


async def fetch(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> dict[str, Any]:
    response = await http.get(get_url(emus, group_id), headers=auth, params=API)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_get_shows_secrets_as_null(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    response = await http.get(get_url(emus, group_id), headers=auth, params=API)
    body = response.json()
    assert body["variables"]["DATABRICKS_TOKEN"] == {"value": None, "isSecret": True}
    assert body["variables"]["DATABRICKS_HOST"] == {"value": "https://adb.example"}
    assert body["variableGroupProjectReferences"][0]["projectReference"]["name"] == PROJECT
    assert "dapi-old" not in response.text


async def test_managed_identity_tokens_are_accepted(
    emus: Emulators, http: httpx.AsyncClient, group_id: int
) -> None:
    client_id = emus.add_managed_identity(system=True)
    emus.devops.add_member(ORG, client_id)
    token = await http.get(
        emus.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": DEVOPS},
        headers={"X-IDENTITY-HEADER": emus.identity_header},
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = await http.get(get_url(emus, group_id), headers=headers, params=API)
    assert response.status_code == 200


@pytest.mark.parametrize("credential", ["none", "unknown", "databricks-audience", "basic"])
async def test_an_unusable_credential_gets_203_and_a_sign_in_page(
    emus: Emulators,
    http: httpx.AsyncClient,
    member: AppCredential,
    group_id: int,
    credential: str,
) -> None:
    headers = {
        "none": {},
        "unknown": {"Authorization": "Bearer not-a-token"},
        "databricks-audience": {
            "Authorization": "Bearer "
            + emus.entra.issue(
                member.client_id, "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
            ).access_token
        },
        "basic": {"Authorization": "Basic OnNvbWUtcGF0"},
    }[credential]
    response = await http.get(get_url(emus, group_id), headers=headers, params=API)
    assert response.status_code == 203
    assert response.headers["content-type"].startswith("text/html")
    assert "Sign In" in response.text


async def test_an_expired_token_gets_the_sign_in_page(
    emus: Emulators, http: httpx.AsyncClient, member: AppCredential, group_id: int
) -> None:
    token = emus.entra.issue(member.client_id, DEVOPS).access_token
    emus.entra.expire_tokens(member.client_id)
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.get(get_url(emus, group_id), headers=headers, params=API)
    assert response.status_code == 203


async def test_a_principal_outside_the_organisation_is_401(
    emus: Emulators, http: httpx.AsyncClient, app: AppCredential, group_id: int
) -> None:
    headers = {"Authorization": f"Bearer {emus.entra.issue(app.client_id, DEVOPS).access_token}"}
    response = await http.get(get_url(emus, group_id), headers=headers, params=API)
    assert response.status_code == 401
    assert response.json().keys() >= ERROR_KEYS
    assert response.json()["message"].startswith("TF400813")


async def test_missing_api_version_and_unknown_group_use_the_error_shape(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    missing = await http.get(get_url(emus, group_id), headers=auth)
    unknown = await http.get(get_url(emus, 999_999), headers=auth, params=API)
    other_project = await http.get(
        f"{emus.devops_url}/{ORG}/elsewhere/_apis/distributedtask/variablegroups/{group_id}",
        headers=auth,
        params=API,
    )
    assert missing.status_code == 400
    assert "api-version" in missing.json()["message"]
    assert (unknown.status_code, other_project.status_code) == (404, 404)
    assert unknown.json().keys() >= ERROR_KEYS


async def test_put_replaces_the_whole_group(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    shown = await fetch(emus, http, auth, group_id)
    body = put_body(shown, DATABRICKS_TOKEN={"value": "dapi-new", "isSecret": True})
    response = await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    group: VariableGroup = emus.devops.group(group_id)
    assert response.status_code == 200
    assert response.json()["variables"] == {"DATABRICKS_TOKEN": {"value": None, "isSecret": True}}
    assert group.value("DATABRICKS_TOKEN") == "dapi-new"
    assert "DATABRICKS_HOST" not in group.variables
    assert group.history["DATABRICKS_TOKEN"] == ["dapi-old", "dapi-new"]
    assert response.json()["modifiedOn"] > shown["modifiedOn"]
    assert group.modified_by["id"] == emus.entra.issued()[-1].client_id


async def test_a_null_secret_is_wiped_by_default(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    shown = await fetch(emus, http, auth, group_id)
    body = put_body(shown, **shown["variables"])  # the naive GET -> PUT round trip
    await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    group = emus.devops.group(group_id)
    assert group.value("DATABRICKS_TOKEN") == ""
    assert group.puts[-1].wiped == ("DATABRICKS_TOKEN",)


async def test_a_null_secret_is_kept_when_switched_on(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int, null_keeps: None
) -> None:
    shown = await fetch(emus, http, auth, group_id)
    body = put_body(shown, **shown["variables"])
    await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    group = emus.devops.group(group_id)
    assert group.value("DATABRICKS_TOKEN") == "dapi-old"
    assert group.puts[-1].kept_by_null == ("DATABRICKS_TOKEN",)
    assert group.puts[-1].wiped == ()


async def test_put_without_project_references_is_refused_and_changes_nothing(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    shown = await fetch(emus, http, auth, group_id)
    body = put_body(shown, DATABRICKS_TOKEN={"value": "dapi-new", "isSecret": True})
    del body["variableGroupProjectReferences"]
    response = await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    assert response.status_code == 401
    assert response.json().keys() >= ERROR_KEYS
    assert emus.devops.group(group_id).value("DATABRICKS_TOKEN") == "dapi-old"


async def test_a_reader_cannot_put(
    emus: Emulators, http: httpx.AsyncClient, app: AppCredential, group_id: int
) -> None:
    emus.devops.add_member(ORG, app.client_id, "Reader")
    headers = {"Authorization": f"Bearer {emus.entra.issue(app.client_id, DEVOPS).access_token}"}
    shown = await fetch(emus, http, headers, group_id)
    body = put_body(shown, DATABRICKS_TOKEN={"value": "dapi-new", "isSecret": True})
    response = await http.put(put_url(emus, group_id), headers=headers, params=API, json=body)
    assert response.status_code == 403
    assert response.json()["typeKey"] == "AccessCheckException"
    assert emus.devops.group(group_id).value("DATABRICKS_TOKEN") == "dapi-old"


@pytest.mark.parametrize(
    "body",
    [
        {"variables": {}},
        {"name": "g", "variables": {"A": {"value": 3}}},
        {"name": "g", "variables": []},
    ],
)
async def test_malformed_put_is_400(
    emus: Emulators,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    group_id: int,
    body: dict[str, Any],
) -> None:
    response = await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    assert response.status_code == 400
    assert response.json().keys() >= ERROR_KEYS


async def test_rate_limit_fault_has_the_error_shape_and_retry_after(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    emus.faults.add(
        "devops", "GET", ".*/variablegroups/.*", status=429, headers={"Retry-After": "7"}
    )
    response = await http.get(get_url(emus, group_id), headers=auth, params=API)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["message"].startswith("TF400733")
    assert emus.requests.find("devops", "GET")[-1].faulted == "respond"


async def test_a_pat_that_arrives_keeps_its_kind_in_the_registry(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str], group_id: int
) -> None:
    app = emus.entra.add_app()
    emus.databricks.add_service_principal(app.client_id)
    pat = emus.databricks.mint(app.client_id, 3600, "ado").value
    shown = await fetch(emus, http, auth, group_id)
    body = put_body(shown, DATABRICKS_TOKEN={"value": pat, "isSecret": True})
    response = await http.put(put_url(emus, group_id), headers=auth, params=API, json=body)
    assert pat not in response.text
    assert emus.devops.group(group_id).value("DATABRICKS_TOKEN") == pat
    assert emus.secrets.kind_of(pat) == "pat"


def test_secret_values_are_registered(emus: Emulators, group_id: int) -> None:
    assert emus.secrets.kind_of("dapi-old") == "devops_secret"
    assert "dapi-old" not in repr(emus.devops.group(group_id))
