"""The Databricks emulator's own-token APIs: create, list, delete and their limits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.emulators.helpers import bearer, create_token, scim_me, user_name

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators


async def test_create_returns_a_working_pat_with_public_token_info(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    body = (
        await create_token(emus, http, entra_auth, lifetime_seconds=3600, comment="rotation r1")
    ).json()
    info = body["token_info"]
    assert re.fullmatch(r"dapi[0-9a-f]{32}", body["token_value"])
    assert re.fullmatch(r"[0-9a-f]{64}", info["token_id"])
    assert info["expiry_time"] - info["creation_time"] == 3_600_000
    assert info["comment"] == "rotation r1"
    assert "scopes" not in info
    assert emus.secrets.kind_of(body["token_value"]) == "pat"
    assert await user_name(emus, http, body["token_value"]) == sp.client_id


async def test_create_without_lifetime_lasts_two_years(
    emus: Emulators, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    info = (await create_token(emus, http, entra_auth)).json()["token_info"]
    assert info["expiry_time"] - info["creation_time"] == 2 * 365 * 86_400_000


@pytest.mark.parametrize("lifetime", [0, -5])
async def test_non_positive_lifetime_is_invalid_timeout(
    emus: Emulators, http: httpx.AsyncClient, entra_auth: dict[str, str], lifetime: int
) -> None:
    response = await create_token(emus, http, entra_auth, lifetime_seconds=lifetime)
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Invalid timeout: {lifetime}",
    }


@pytest.mark.usefixtures("restore_conf")
async def test_lifetime_over_the_workspace_maximum_is_refused(
    emus: Emulators, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    emus.databricks.conf.max_token_lifetime_days = 90
    response = await create_token(emus, http, entra_auth, lifetime_seconds=91 * 86400)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Token lifetime exceeds the maximum lifetime of 90 days allowed by the workspace."
    )


@pytest.mark.usefixtures("restore_conf")
async def test_disabled_tokens_refuse_create_list_and_pats_until_reenabled(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    pat = emus.databricks.mint(sp.client_id, 3600, "seed").value
    emus.databricks.conf.tokens_enabled = False
    created = await create_token(emus, http, entra_auth)
    listed = await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=entra_auth)
    assert (created.status_code, listed.status_code) == (404, 404)
    assert listed.json() == {"error_code": 404, "message": "Tokens are disabled."}
    assert (await scim_me(emus, http, bearer(pat))).status_code == 403
    emus.databricks.conf.tokens_enabled = True
    assert (await scim_me(emus, http, bearer(pat))).status_code == 200


async def test_without_can_use_create_is_permission_denied(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    emus.databricks.set_can_use(sp.client_id, False)
    response = await create_token(emus, http, entra_auth)
    assert response.status_code == 403
    assert response.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": "User does not have permission to use tokens.",
    }


def test_removing_can_use_deletes_the_sps_tokens(emus: Emulators, sp: AppCredential) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    emus.databricks.set_can_use(sp.client_id, False)
    assert emus.databricks.get(token.token_id) is None
    assert emus.databricks.was_revoked(token.token_id)
    assert not emus.databricks.is_live(token.value)


async def test_without_can_use_list_and_delete_are_permission_denied(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    emus.databricks.set_can_use(sp.client_id, False)
    base = f"{emus.databricks_url}/api/2.0/token"
    listed = await http.get(f"{base}/list", headers=entra_auth)
    deleted = await http.post(f"{base}/delete", headers=entra_auth, json={"token_id": "0" * 64})
    denied = {
        "error_code": "PERMISSION_DENIED",
        "message": "User does not have permission to use tokens.",
    }
    assert [(r.status_code, r.json()) for r in (listed, deleted)] == [(403, denied)] * 2


async def test_restoring_can_use_brings_no_revoked_token_back(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    entra_auth: dict[str, str],
    admin_auth: dict[str, str],
) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    acl = f"{emus.databricks_url}/api/2.0/permissions/authorization/tokens"
    grant = [{"service_principal_name": sp.client_id, "permission_level": "CAN_USE"}]
    await http.put(acl, headers=admin_auth, json={"access_control_list": []})
    restored = await http.patch(acl, headers=admin_auth, json={"access_control_list": grant})
    listed = await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=entra_auth)
    assert restored.status_code == 200
    assert emus.databricks.principal(sp.client_id).can_use  # type: ignore[union-attr]
    assert listed.json() == {"token_infos": []}
    assert (await scim_me(emus, http, bearer(token.value))).status_code == 403
    assert emus.databricks.revocation_reason(token.token_id) == "can-use-removed"


async def test_the_601st_live_token_exceeds_the_quota(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    for _ in range(600):
        emus.databricks.mint(sp.client_id, 3600, "filler")
    response = await create_token(emus, http, entra_auth)
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "QUOTA_EXCEEDED",
        "message": "Cannot create more than 600 tokens.",
    }


async def test_list_shows_only_the_callers_unexpired_tokens(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    short = emus.databricks.mint(sp.client_id, 60, "short")
    long = emus.databricks.mint(sp.client_id, 7200, "long")
    emus.databricks.mint(
        emus.databricks.add_service_principal(emus.entra.add_app().client_id).application_id,
        7200,
        "other",
    )
    emus.clock.advance(120)
    body = (await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=entra_auth)).json()
    assert [t["token_id"] for t in body["token_infos"]] == [long.token_id]
    assert not emus.databricks.is_live(short.value)


async def test_delete_revokes_own_token_and_404s_unknown_ids(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    url = f"{emus.databricks_url}/api/2.0/token/delete"
    ok = await http.post(url, headers=entra_auth, json={"token_id": token.token_id})
    again = await http.post(url, headers=entra_auth, json={"token_id": token.token_id})
    assert (ok.status_code, ok.json()) == (200, {})
    assert again.status_code == 404
    assert again.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"Token with id {token.token_id} does not exist.",
    }
    assert not emus.databricks.is_live(token.value)
