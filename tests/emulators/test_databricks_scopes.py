"""Scoped PATs: scopes are echoed back and a scoped PAT is refused outside them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.emulators.helpers import bearer, create_token, scim_me

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators

MISSING_SCOPE = {
    "error_code": "PERMISSION_DENIED",
    "message": "Your token is missing the required scopes for this endpoint",
}


async def _scoped_pat(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], *scopes: str
) -> str:
    response = await create_token(emus, http, headers, comment="scoped", scopes=list(scopes))
    assert response.status_code == 200, response.text
    return str(response.json()["token_value"])


async def _own_token_calls(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str]
) -> list[httpx.Response]:
    base = f"{emus.databricks_url}/api/2.0/token"
    return [
        await create_token(emus, http, headers),
        await http.get(f"{base}/list", headers=headers),
        await http.post(f"{base}/delete", headers=headers, json={"token_id": "0" * 64}),
    ]


async def test_scopes_are_echoed_on_create_list_and_token_management(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    created = await create_token(
        emus, http, entra_auth, scopes=["sql", "scim"], autoscope_enabled=False
    )
    token_id = created.json()["token_info"]["token_id"]
    listed = await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=entra_auth)
    admin = bearer(emus.databricks.add_admin_user())
    managed = await http.get(
        f"{emus.databricks_url}/api/2.0/token-management/tokens/{token_id}", headers=admin
    )
    assert created.json()["token_info"]["scopes"] == ["sql", "scim"]
    assert [t["scopes"] for t in listed.json()["token_infos"]] == [["sql", "scim"]]
    assert managed.json()["token_info"]["scopes"] == ["sql", "scim"]
    assert emus.databricks.get(token_id).scopes == ("sql", "scim")  # type: ignore[union-attr]


async def test_on_behalf_of_tokens_carry_their_scopes(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    url = f"{emus.databricks_url}/api/2.0/token-management/on-behalf-of/tokens"
    body = {"application_id": sp.client_id, "scopes": ["sql"], "autoscope_enabled": True}
    response = await http.post(url, headers=admin_auth, json=body)
    info = response.json()["token_info"]
    assert info["scopes"] == ["sql"]
    refused = await http.get(
        f"{emus.databricks_url}/api/2.0/token/list",
        headers=bearer(response.json()["token_value"]),
    )
    assert (refused.status_code, refused.json()) == (403, MISSING_SCOPE)


async def test_a_non_boolean_autoscope_enabled_is_malformed(
    emus: Emulators, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    response = await create_token(emus, http, entra_auth, autoscope_enabled="yes")
    assert response.status_code == 400
    assert response.json()["error_code"] == "MALFORMED_REQUEST"


async def test_a_sql_pat_is_refused_on_every_token_route_but_reaches_scim_me(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    pat = bearer(await _scoped_pat(emus, http, entra_auth, "sql"))
    calls = await _own_token_calls(emus, http, pat)
    me = await scim_me(emus, http, pat)
    assert [(r.status_code, r.json()) for r in calls] == [(403, MISSING_SCOPE)] * 3
    assert me.status_code == 200
    assert me.json()["userName"] == sp.client_id


async def test_an_authentication_pat_may_create_list_and_delete_tokens(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    pat = bearer(await _scoped_pat(emus, http, entra_auth, "authentication"))
    created = await create_token(emus, http, pat, scopes=["sql"])
    token_id = created.json()["token_info"]["token_id"]
    listed = await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=pat)
    deleted = await http.post(
        f"{emus.databricks_url}/api/2.0/token/delete", headers=pat, json={"token_id": token_id}
    )
    assert created.status_code == 200
    assert token_id in [t["token_id"] for t in listed.json()["token_infos"]]
    assert deleted.status_code == 200


@pytest.mark.parametrize("scopes", [(), ("all-apis",)], ids=["unscoped", "all-apis"])
async def test_an_unscoped_or_all_apis_pat_is_allowed_everywhere(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str], scopes: tuple[str, ...]
) -> None:
    pat = bearer(await _scoped_pat(emus, http, admin_auth, *scopes))
    base = f"{emus.databricks_url}/api/2.0"
    responses = [
        *(await _own_token_calls(emus, http, pat))[:2],
        await scim_me(emus, http, pat),
        await http.get(f"{base}/token-management/tokens", headers=pat),
        await http.get(f"{base}/permissions/authorization/tokens", headers=pat),
        await http.get(
            f"{base}/workspace-conf", params={"keys": "enableTokensConfig"}, headers=pat
        ),
    ]
    assert [r.status_code for r in responses] == [200] * 6


_ADMIN_ROUTES = {
    "token-management/tokens": "authentication",
    "permissions/authorization/tokens": "access-management",
    "permissions/authorization/tokens/permissionLevels": "access-management",
    "workspace-conf?keys=enableTokensConfig": "all-apis",
}


@pytest.mark.parametrize("scope", ["authentication", "access-management", "scim"])
async def test_an_admins_scoped_pat_reaches_only_the_admin_routes_of_its_scope(
    emus: Emulators, http: httpx.AsyncClient, admin_auth: dict[str, str], scope: str
) -> None:
    pat = bearer(await _scoped_pat(emus, http, admin_auth, scope))
    statuses = {
        route: (await http.get(f"{emus.databricks_url}/api/2.0/{route}", headers=pat)).status_code
        for route in _ADMIN_ROUTES
    }
    assert statuses == {
        route: 200 if needed == scope else 403 for route, needed in _ADMIN_ROUTES.items()
    }
