"""The Databricks emulator's admin APIs: token management, on-behalf-of, permissions, conf."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.emulators.helpers import bearer, scim_me, user_name

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators


async def test_token_management_needs_an_admin(
    emus: Emulators, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    response = await http.get(
        f"{emus.databricks_url}/api/2.0/token-management/tokens", headers=entra_auth
    )
    assert response.status_code == 403
    assert response.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": "Only Admins can access token management APIs.",
    }


@pytest.mark.parametrize("prefix", ["/api/2.0", "/api/2.0/preview"])
async def test_token_management_lists_gets_and_deletes(
    emus: Emulators,
    sp: AppCredential,
    http: httpx.AsyncClient,
    admin_auth: dict[str, str],
    prefix: str,
) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    owner_id = emus.databricks.principal(sp.client_id).id
    base = f"{emus.databricks_url}{prefix}/token-management/tokens"
    listed = (await http.get(base, params={"created_by_id": owner_id}, headers=admin_auth)).json()
    got = (await http.get(f"{base}/{token.token_id}", headers=admin_auth)).json()
    deleted = await http.delete(f"{base}/{token.token_id}", headers=admin_auth)
    missing = await http.get(f"{base}/{token.token_id}", headers=admin_auth)
    assert [t["token_id"] for t in listed["token_infos"]] == [token.token_id]
    assert got["token_info"]["owner_id"] == owner_id
    assert got["token_info"]["created_by_username"] == sp.client_id
    assert got["token_info"]["workspace_id"] == emus.databricks.workspace_id
    assert deleted.status_code == 200
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


async def test_on_behalf_of_creates_a_token_owned_by_the_sp(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    url = f"{emus.databricks_url}/api/2.0/token-management/on-behalf-of/tokens"
    body = (
        await http.post(
            url, headers=admin_auth, json={"application_id": sp.client_id, "lifetime_seconds": 600}
        )
    ).json()
    info = body["token_info"]
    assert info["owner_id"] == emus.databricks.principal(sp.client_id).id
    assert info["created_by_username"] == "admin@example.com"
    assert await user_name(emus, http, body["token_value"]) == sp.client_id


@pytest.mark.usefixtures("restore_conf")
async def test_on_behalf_of_can_be_disabled(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    emus.databricks.conf.obo_enabled = False
    url = f"{emus.databricks_url}/api/2.0/token-management/on-behalf-of/tokens"
    response = await http.post(url, headers=admin_auth, json={"application_id": sp.client_id})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "On-behalf-of token creation for service principals is not enabled for this workspace"
    )


async def test_on_behalf_of_unknown_sp_is_404(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    url = f"{emus.databricks_url}/api/2.0/token-management/on-behalf-of/tokens"
    response = await http.post(url, headers=admin_auth, json={"application_id": "no-such-sp"})
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


async def test_permissions_patch_grants_and_put_revokes_omitted_sps(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    keep = emus.databricks.add_service_principal(emus.entra.add_app().client_id, can_use=False)
    drop = emus.databricks.add_service_principal(emus.entra.add_app().client_id)
    dropped_token = emus.databricks.mint(drop.application_id, 3600, "seed")
    url = f"{emus.databricks_url}/api/2.0/permissions/authorization/tokens"
    grant = [{"service_principal_name": keep.application_id, "permission_level": "CAN_USE"}]
    patched = (
        await http.patch(url, headers=admin_auth, json={"access_control_list": grant})
    ).json()
    await http.put(url, headers=admin_auth, json={"access_control_list": grant})
    names = {e.get("service_principal_name") for e in patched["access_control_list"]}
    assert patched["object_type"] == "tokens"
    assert {keep.application_id, drop.application_id} <= names
    assert keep.can_use
    assert not drop.can_use
    assert emus.databricks.get(dropped_token.token_id) is None


@pytest.mark.usefixtures("restore_conf")
async def test_workspace_conf_reads_and_writes_flat_strings(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    url = f"{emus.databricks_url}/api/2.0/workspace-conf"
    patched = await http.patch(url, headers=admin_auth, json={"maxTokenLifetimeDays": "30"})
    got = await http.get(
        url, params={"keys": "enableTokensConfig,maxTokenLifetimeDays"}, headers=admin_auth
    )
    assert patched.status_code == 204
    assert got.json() == {"enableTokensConfig": "true", "maxTokenLifetimeDays": "30"}
    assert emus.databricks.conf.max_token_lifetime_days == 30


async def test_token_management_shows_last_used_day_once_the_pat_authenticated(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    url = f"{emus.databricks_url}/api/2.0/token-management/tokens/{token.token_id}"
    unused = (await http.get(url, headers=admin_auth)).json()["token_info"]
    await scim_me(emus, http, bearer(token.value))
    used = (await http.get(url, headers=admin_auth)).json()["token_info"]
    listed = await http.get(
        f"{emus.databricks_url}/api/2.0/token/list", headers=bearer(token.value)
    )
    day_ms = 86_400_000
    assert "last_used_day" not in unused
    assert used["last_used_day"] == emus.clock.now_ms() // day_ms * day_ms
    assert "last_accessed_time" not in used
    assert listed.json()["token_infos"][0]["last_accessed_time"] >= token.creation_ms


@pytest.mark.parametrize("prefix", ["/api/2.0", "/api/2.0/preview"])
async def test_token_permission_levels_offer_can_use_to_admins(
    emus: Emulators,
    http: httpx.AsyncClient,
    admin_auth: dict[str, str],
    entra_auth: dict[str, str],
    prefix: str,
) -> None:
    url = f"{emus.databricks_url}{prefix}/permissions/authorization/tokens/permissionLevels"
    levels = (await http.get(url, headers=admin_auth)).json()["permission_levels"]
    refused = await http.get(url, headers=entra_auth)
    assert [level["permission_level"] for level in levels] == ["CAN_USE"]
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
