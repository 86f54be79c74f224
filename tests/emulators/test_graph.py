"""The Microsoft Graph emulator: applications, owners, permissions, addPassword, removePassword.

It shares the directory with the Entra ID emulator, so what Graph adds or removes changes which
client secrets the token endpoint accepts (after a replication delay on the virtual clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from emulators.graph_state import APP_ROLE_IDS, OWNED_BY
from tests.emulators.helpers import DATABRICKS, bearer

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from emulators import AppCredential, Emulators

GRAPH = "https://graph.microsoft.com"
GRAPH_SCOPE = f"{GRAPH}/.default"


@dataclass
class Rotating:
    """An app that owns itself and holds Application.ReadWrite.OwnedBy, with a Graph token."""

    app: AppCredential
    object_id: str
    auth: dict[str, str]


@pytest.fixture
def graph_policy(emus: Emulators) -> Iterator[None]:
    """Put the tenant's replication delay and lifetime policy back after the test."""
    saved = (emus.graph.replication_delay, emus.graph.max_password_lifetime)
    yield
    emus.graph.replication_delay, emus.graph.max_password_lifetime = saved


@pytest.fixture
def rotating(emus: Emulators, app: AppCredential, graph_policy: None) -> Rotating:
    del graph_policy
    emus.graph.add_owner(app.client_id, app.client_id)
    emus.graph.grant(app.client_id, OWNED_BY)
    info = emus.entra.application(client_id=app.client_id)
    assert info is not None
    return Rotating(
        app, info.object_id, bearer(emus.entra.issue(app.client_id, GRAPH).access_token)
    )


def _app_url(emus: Emulators, rotating: Rotating, tail: str = "") -> str:
    return f"{emus.graph_url}/v1.0/applications/{rotating.object_id}{tail}"


async def _add(
    emus: Emulators, http: httpx.AsyncClient, rotating: Rotating, **spec: Any
) -> httpx.Response:
    return await http.post(
        _app_url(emus, rotating, "/addPassword"),
        headers=rotating.auth,
        json={"passwordCredential": spec},
    )


async def _entra_token(
    emus: Emulators, http: httpx.AsyncClient, client_id: str, secret: str
) -> httpx.Response:
    form = {
        "client_id": client_id,
        "client_secret": secret,
        "grant_type": "client_credentials",
        "scope": GRAPH_SCOPE,
    }
    return await http.post(f"{emus.entra_url}/{emus.tenant_id}/oauth2/v2.0/token", data=form)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _assert_graph_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert {"date", "request-id", "client-request-id"} <= error["innerError"].keys()
    return error


async def test_a_token_from_the_entra_token_endpoint_reads_the_application(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    token = await _entra_token(emus, http, rotating.app.client_id, rotating.app.client_secret)
    assert token.status_code == 200
    auth = bearer(token.json()["access_token"])
    by_object = await http.get(_app_url(emus, rotating), headers=auth)
    by_app_id = await http.get(
        f"{emus.graph_url}/v1.0/applications(appId='{rotating.app.client_id}')", headers=auth
    )
    assert by_object.status_code == by_app_id.status_code == 200
    body = by_object.json()
    assert body == by_app_id.json()
    assert (body["id"], body["appId"]) == (rotating.object_id, rotating.app.client_id)
    [credential] = body["passwordCredentials"]
    assert credential["secretText"] is None
    assert credential["hint"] == rotating.app.client_secret[:3]
    assert rotating.app.client_secret not in by_object.text


async def test_add_password_answers_the_secret_once_and_it_authenticates(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    end = _iso(emus.clock.now() + 90 * 86400)
    response = await _add(emus, http, rotating, displayName="rotator", endDateTime=end)
    assert response.status_code == 200
    added = response.json()
    assert added["displayName"] == "rotator"
    assert added["endDateTime"].startswith(end[:19])
    assert emus.secrets.kind_of(added["secretText"]) == "client_secret"
    listed = (await http.get(_app_url(emus, rotating), headers=rotating.auth)).json()
    by_key = {c["keyId"]: c for c in listed["passwordCredentials"]}
    assert by_key[added["keyId"]]["hint"] == added["secretText"][:3]
    assert added["secretText"] not in str(listed)
    token = await _entra_token(emus, http, rotating.app.client_id, added["secretText"])
    assert token.status_code == 200


async def test_remove_password_makes_the_secret_stop_working(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    [old] = emus.entra.passwords(rotating.app.client_id)
    url = _app_url(emus, rotating, "/removePassword")
    removed = await http.post(url, headers=rotating.auth, json={"keyId": old.key_id})
    assert removed.status_code == 204
    token = await _entra_token(emus, http, rotating.app.client_id, rotating.app.client_secret)
    assert token.status_code == 401
    assert token.json()["error_codes"] == [7000215]
    again = await http.post(url, headers=rotating.auth, json={"keyId": old.key_id})
    _assert_graph_error(again, 404, "Request_ResourceNotFound")
    no_key = await http.post(url, headers=rotating.auth, json={})
    _assert_graph_error(no_key, 400, "Request_BadRequest")


async def test_eventual_consistency_a_new_secret_is_refused_until_replicated(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient, ca: str
) -> None:
    emus.graph.replication_delay = 120
    secret = (await _add(emus, http, rotating)).json()["secretText"]

    def get_token() -> str:
        credential = ClientSecretCredential(
            emus.tenant_id,
            rotating.app.client_id,
            secret,
            authority=emus.entra_url,
            connection_verify=ca,
            disable_instance_discovery=True,
        )
        return credential.get_token(GRAPH_SCOPE).token

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        get_token()
    old = await _entra_token(emus, http, rotating.app.client_id, rotating.app.client_secret)
    assert old.status_code == 200  # the old secret keeps working meanwhile
    emus.clock.advance(121)
    issued = emus.entra.resolve(get_token())
    assert issued is not None
    assert (issued.client_id, issued.audience) == (rotating.app.client_id, GRAPH)


async def test_replicate_makes_a_pending_secret_usable_at_once(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    emus.graph.replication_delay = 600
    secret = (await _add(emus, http, rotating)).json()["secretText"]
    before = await _entra_token(emus, http, rotating.app.client_id, secret)
    emus.entra.replicate(rotating.app.client_id)
    after = await _entra_token(emus, http, rotating.app.client_id, secret)
    assert (before.status_code, after.status_code) == (401, 200)


async def test_an_expired_secret_is_aadsts7000222(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    now = emus.clock.now()
    response = await _add(
        emus, http, rotating, startDateTime=_iso(now - 3 * 86400), endDateTime=_iso(now - 86400)
    )
    token = await _entra_token(emus, http, rotating.app.client_id, response.json()["secretText"])
    assert token.status_code == 401
    assert token.json()["error_codes"] == [7000222]
    assert "are expired" in token.json()["error_description"]


async def test_a_secret_starting_later_works_only_from_its_start(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    start = emus.clock.now() + 3600
    response = await _add(emus, http, rotating, startDateTime=_iso(start))
    secret = response.json()["secretText"]
    early = await _entra_token(emus, http, rotating.app.client_id, secret)
    emus.clock.advance(3601)
    late = await _entra_token(emus, http, rotating.app.client_id, secret)
    assert (early.status_code, late.status_code) == (401, 200)


async def test_tenant_lifetime_policy_refuses_longer_secrets(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    emus.graph.max_password_lifetime = 180 * 86400
    year = await _add(emus, http, rotating, endDateTime=_iso(emus.clock.now() + 365 * 86400))
    default = await _add(emus, http, rotating)
    for refused in (year, default):
        error = _assert_graph_error(refused, 400, "CredentialInvalidLifetimeAsPerAppPolicy")
        assert error["message"] == (
            "Credential lifetime exceeds the max value allowed as per assigned policy"
            f" '{emus.graph.policy_id}'."
        )
        assert error["details"][0]["code"] == "InvalidKeyEndDate"
        assert error["details"][0]["target"] == "EndDate"
    assert len(emus.entra.passwords(rotating.app.client_id)) == 1
    short = await _add(emus, http, rotating, endDateTime=_iso(emus.clock.now() + 90 * 86400))
    assert short.status_code == 200


async def test_owned_by_needs_ownership_and_ownership_needs_owned_by(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    emus.graph.remove_owner(rotating.app.client_id, rotating.app.client_id)
    not_owner = await _add(emus, http, rotating)
    _assert_graph_error(not_owner, 403, "Authorization_RequestDenied")
    emus.graph.add_owner(rotating.app.client_id, rotating.app.client_id)
    emus.graph.revoke(rotating.app.client_id, OWNED_BY)
    no_permission = await _add(emus, http, rotating)
    read = await http.get(_app_url(emus, rotating), headers=rotating.auth)
    _assert_graph_error(no_permission, 403, "Authorization_RequestDenied")
    _assert_graph_error(read, 403, "Authorization_RequestDenied")
    assert len(emus.entra.passwords(rotating.app.client_id)) == 1


async def test_a_managed_identity_that_owns_the_app_adds_a_password(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    identity = emus.add_managed_identity(name="graph-rotator")
    emus.graph.add_owner(rotating.app.client_id, identity)
    emus.graph.grant(identity, OWNED_BY)
    auth = bearer(emus.entra.issue(identity, GRAPH).access_token)
    response = await http.post(_app_url(emus, rotating, "/addPassword"), headers=auth, json={})
    assert response.status_code == 200
    owners = (await http.get(_app_url(emus, rotating, "/owners"), headers=auth)).json()["value"]
    kinds = {o["appId"]: o["servicePrincipalType"] for o in owners}
    assert kinds == {rotating.app.client_id: "Application", identity: "ManagedIdentity"}


async def test_a_principal_reads_its_own_app_role_assignments(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient, app: AppCredential
) -> None:
    url = f"{emus.graph_url}/v1.0/servicePrincipals(appId='{app.client_id}')/appRoleAssignments"
    response = await http.get(url, headers=rotating.auth)
    [assignment] = response.json()["value"]
    assert assignment["appRoleId"] == APP_ROLE_IDS[OWNED_BY]
    assert assignment["resourceId"] == emus.graph.graph_sp_id
    assert assignment["principalId"] == emus.entra.service_principal_object_id(app.client_id)
    stranger = emus.entra.add_app("stranger")
    other = bearer(emus.entra.issue(stranger.client_id, GRAPH).access_token)
    _assert_graph_error(await http.get(url, headers=other), 403, "Authorization_RequestDenied")


async def test_unknown_application_and_an_app_id_as_object_id_are_404(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    url = f"{emus.graph_url}/v1.0/applications/{rotating.app.client_id}"
    error = _assert_graph_error(
        await http.get(url, headers=rotating.auth), 404, "Request_ResourceNotFound"
    )
    assert error["message"].startswith(f"Resource '{rotating.app.client_id}' does not exist")


async def test_tokens_for_another_audience_or_none_are_401(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    databricks = bearer(emus.entra.issue(rotating.app.client_id, DATABRICKS).access_token)
    wrong = await http.get(_app_url(emus, rotating), headers=databricks)
    error = _assert_graph_error(wrong, 401, "InvalidAuthenticationToken")
    assert "Invalid audience" in error["message"]
    none = await http.get(_app_url(emus, rotating))
    assert _assert_graph_error(none, 401, "InvalidAuthenticationToken")["message"] == (
        "Access token is empty."
    )


async def test_bad_end_date_is_400_and_adds_nothing(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    response = await _add(emus, http, rotating, endDateTime="next tuesday")
    _assert_graph_error(response, 400, "Request_BadRequest")
    assert len(emus.entra.passwords(rotating.app.client_id)) == 1


async def test_throttled_add_password_is_429_with_retry_after_and_adds_nothing(
    emus: Emulators, rotating: Rotating, http: httpx.AsyncClient
) -> None:
    emus.faults.add(
        "graph", "POST", r"/v1\.0/applications/.+/addPassword", status=429,
        headers={"Retry-After": "7"},
    )  # fmt: skip
    response = await _add(emus, http, rotating)
    _assert_graph_error(response, 429, "TooManyRequests")
    assert response.headers["Retry-After"] == "7"
    assert len(emus.entra.passwords(rotating.app.client_id)) == 1
    [logged] = emus.requests.find("graph", "POST", r"/v1\.0/applications/.+/addPassword")[-1:]
    assert (logged.status, logged.faulted) == (429, "respond")
