"""How the Databricks emulator authenticates callers: PATs, Entra tokens, OAuth M2M."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests.emulators.helpers import DATABRICKS, bearer, scim_me, user_name

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators


async def test_no_credential_is_401(emus: Emulators, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{emus.databricks_url}/api/2.0/token/list")
    assert response.status_code == 401
    assert response.json()["error_code"] == 401
    assert re.fullmatch(
        r"Credential was not sent or was of an unsupported type for this API\."
        r" \[ReqId: [0-9a-f-]{36}\]",
        response.json()["message"],
    )


async def test_unknown_token_is_403_invalid_access_token(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    response = await scim_me(emus, http, bearer("dapi" + "0" * 32))
    assert response.status_code == 403
    assert response.json() == {"error_code": 403, "message": "Invalid access token."}
    assert response.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."


async def test_entra_token_of_a_workspace_sp_authenticates(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    body = (await scim_me(emus, http, entra_auth)).json()
    assert body["userName"] == sp.client_id
    assert body["id"] == str(emus.databricks.principal(sp.client_id).id)
    assert body["active"] is True


async def test_entra_token_of_an_sp_outside_the_workspace_is_not_authorized(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await scim_me(
        emus, http, bearer(emus.entra.issue(app.client_id, DATABRICKS).access_token)
    )
    assert response.status_code == 403
    assert response.json() == {"error_code": 403, "message": "User not authorized."}


async def test_entra_token_for_key_vault_is_invalid_here(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await scim_me(
        emus, http, bearer(emus.entra.issue(sp.client_id, "https://vault.azure.net").access_token)
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Invalid access token."


async def test_oauth_m2m_token_authenticates_the_sp(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    principal = emus.databricks.add_service_principal("databricks-managed-sp-1")
    secret = emus.databricks.add_oauth_secret(principal.application_id)
    response = await http.post(
        f"{emus.databricks_url}/oidc/v1/token",
        auth=(principal.application_id, secret),
        data={"grant_type": "client_credentials", "scope": "all-apis"},
    )
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "all-apis")
    assert await user_name(emus, http, body["access_token"]) == principal.application_id


async def test_oauth_m2m_with_a_wrong_secret_is_invalid_client(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    principal = emus.databricks.add_service_principal("databricks-managed-sp-2")
    response = await http.post(
        f"{emus.databricks_url}/oidc/v1/token",
        auth=(principal.application_id, "wrong"),
        data={"grant_type": "client_credentials", "scope": "all-apis"},
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed",
    }


async def test_entra_token_with_under_30_seconds_left_is_refused(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient
) -> None:
    lifetime = emus.entra.token_lifetime
    emus.entra.token_lifetime = 20
    try:
        token = emus.entra.issue(sp.client_id, DATABRICKS).access_token
    finally:
        emus.entra.token_lifetime = lifetime
    response = await scim_me(emus, http, bearer(token))
    assert response.status_code == 403
    assert response.json()["message"] == "Token is expiring within 30 seconds."


async def test_sp_removed_from_the_workspace_loses_access_and_tokens(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    token = emus.databricks.mint(sp.client_id, 3600, "seed")
    emus.databricks.remove_from_workspace(sp.client_id)
    response = await scim_me(emus, http, entra_auth)
    assert response.json()["message"] == "User not authorized."
    assert not emus.databricks.is_live(token.value)


async def test_oauth_discovery_points_at_the_token_endpoint(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    url = f"{emus.databricks_url}/oidc/.well-known/oauth-authorization-server"
    body = (await http.get(url)).json()
    assert body["token_endpoint"] == f"{emus.databricks_url}/oidc/v1/token"


async def test_host_metadata_is_served_without_auth_and_leads_to_the_token_endpoint(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    config = (await http.get(f"{emus.databricks_url}/.well-known/databricks-config")).json()
    discovery = await http.get(f"{config['oidc_endpoint']}/.well-known/oauth-authorization-server")
    assert config == {
        "oidc_endpoint": f"{emus.databricks_url}/oidc",
        "workspace_id": str(emus.databricks.workspace_id),
        "cloud": "azure",
    }
    assert discovery.json()["token_endpoint"] == f"{emus.databricks_url}/oidc/v1/token"
