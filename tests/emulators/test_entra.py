"""The Entra ID emulator works with the real azure-identity and answers like Entra ID."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, DefaultAzureCredential, EnvironmentCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators

DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
VAULT_SCOPE = "https://vault.azure.net/.default"


async def test_aio_credential_with_explicit_authority_gets_a_token(
    emus: Emulators, app: AppCredential, ca: str
) -> None:
    async with AsyncClientSecretCredential(
        app.tenant_id,
        app.client_id,
        app.client_secret,
        authority=emus.entra_url,
        connection_verify=ca,
    ) as credential:
        token = await credential.get_token(DATABRICKS_SCOPE)
    issued = emus.entra.resolve(token.token)
    assert issued is not None
    assert (issued.client_id, issued.audience) == (app.client_id, DATABRICKS_SCOPE[:-9])


def test_sync_credential_with_explicit_authority_gets_a_token(
    emus: Emulators, app: AppCredential, ca: str
) -> None:
    credential = ClientSecretCredential(
        app.tenant_id,
        app.client_id,
        app.client_secret,
        authority=emus.entra_url,
        connection_verify=ca,
        disable_instance_discovery=True,
    )
    token = credential.get_token(VAULT_SCOPE)
    issued = emus.entra.resolve(token.token)
    assert issued is not None
    assert issued.audience == "https://vault.azure.net"
    assert (
        emus.requests.count(
            "entra", "GET", rf"/{app.tenant_id}/v2.0/.well-known/openid-configuration"
        )
        >= 1
    )


def test_sync_credential_without_disable_instance_discovery_would_leave_loopback(
    emus: Emulators, app: AppCredential, ca: str, loopback_guard
) -> None:
    credential = ClientSecretCredential(
        app.tenant_id,
        app.client_id,
        app.client_secret,
        authority=emus.entra_url,
        connection_verify=ca,
    )
    with pytest.raises(ClientAuthenticationError):
        credential.get_token(VAULT_SCOPE)
    assert "login.microsoftonline.com" in loopback_guard.blocked


@pytest.fixture
def azure_env(
    emus: Emulators, app: AppCredential, ca: str, monkeypatch: pytest.MonkeyPatch
) -> AppCredential:
    for key, value in {
        "AZURE_AUTHORITY_HOST": emus.entra_url,
        "AZURE_TENANT_ID": app.tenant_id,
        "AZURE_CLIENT_ID": app.client_id,
        "AZURE_CLIENT_SECRET": app.client_secret,
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
        "SSL_CERT_FILE": ca,
        "REQUESTS_CA_BUNDLE": ca,
    }.items():
        monkeypatch.setenv(key, value)
    return app


def test_sync_environment_credential_from_env_vars_gets_a_token(
    emus: Emulators, azure_env: AppCredential
) -> None:
    token = EnvironmentCredential(disable_instance_discovery=True).get_token(DATABRICKS_SCOPE)
    assert emus.entra.resolve(token.token).client_id == azure_env.client_id


def test_sync_default_credential_from_env_vars_gets_a_token(
    emus: Emulators, azure_env: AppCredential
) -> None:
    token = DefaultAzureCredential(disable_instance_discovery=True).get_token(VAULT_SCOPE)
    assert emus.entra.resolve(token.token).client_id == azure_env.client_id


def test_aio_default_credential_from_env_vars_only_gets_a_token(
    emus: Emulators, azure_env: AppCredential
) -> None:
    # aiohttp builds its default TLS context when imported, so SSL_CERT_FILE must be set
    # before that: a fresh interpreter with nothing but environment variables.
    script = textwrap.dedent(
        f"""
        import asyncio
        from azure.identity.aio import DefaultAzureCredential

        async def main():
            async with DefaultAzureCredential() as credential:
                token = await credential.get_token({DATABRICKS_SCOPE!r})
            print(token.token)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert emus.entra.resolve(result.stdout.strip()).client_id == azure_env.client_id


async def test_aio_credential_with_a_wrong_secret_fails(
    emus: Emulators, app: AppCredential, ca: str
) -> None:
    async with AsyncClientSecretCredential(
        app.tenant_id, app.client_id, "wrong", authority=emus.entra_url, connection_verify=ca
    ) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await credential.get_token(DATABRICKS_SCOPE)


def _token_url(emus: Emulators, tenant: str | None = None) -> str:
    return f"{emus.entra_url}/{tenant or emus.tenant_id}/oauth2/v2.0/token"


def _form(app: AppCredential, **overrides: str) -> dict[str, str]:
    form = {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "grant_type": "client_credentials",
        "scope": DATABRICKS_SCOPE,
    }
    return {**form, **overrides}


async def test_token_response_has_the_entra_shape(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(_token_url(emus), data=_form(app))
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert emus.secrets.kind_of(body["access_token"]) == "access_token"


async def test_unknown_client_is_unauthorized_client(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        _token_url(emus), data=_form(app, client_id="00000000-0000-0000-0000-000000000000")
    )
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "unauthorized_client"
    assert body["error_description"].startswith("AADSTS700016: Application with identifier")
    assert body["error_codes"] == [700016]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


async def test_wrong_secret_is_invalid_client(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(_token_url(emus), data=_form(app, client_secret="nope"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"].startswith("AADSTS7000215: Invalid client secret")


async def test_unknown_tenant_is_invalid_tenant(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(_token_url(emus, "contoso.example"), data=_form(app))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert "AADSTS90002" in response.json()["error_description"]


async def test_scope_without_default_suffix_is_invalid_scope(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(_token_url(emus), data=_form(app, scope="all-apis"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert response.json()["error_description"].startswith("AADSTS70011:")


async def test_unknown_resource_is_invalid_resource(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    response = await http.post(_token_url(emus), data=_form(app, scope="api://nothing/.default"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_resource"
    assert (
        "AADSTS500011: The resource principal named api://nothing"
        in response.json()["error_description"]
    )


async def test_second_client_secret_works_and_removed_one_does_not(
    emus: Emulators, app: AppCredential, http: httpx.AsyncClient
) -> None:
    second = emus.entra.add_client_secret(app.client_id)
    emus.entra.remove_client_secret(app.client_id, app.client_secret)
    ok = await http.post(_token_url(emus), data=_form(app, client_secret=second))
    old = await http.post(_token_url(emus), data=_form(app))
    assert (ok.status_code, old.status_code) == (200, 401)


async def test_instance_discovery_points_at_the_emulator(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    authorize = f"{emus.entra_url}/{emus.tenant_id}/oauth2/v2.0/authorize"
    response = await http.get(
        f"{emus.entra_url}/common/discovery/instance",
        params={"api-version": "1.1", "authorization_endpoint": authorize},
    )
    assert response.json()["tenant_discovery_endpoint"] == (
        f"{emus.entra_url}/{emus.tenant_id}/v2.0/.well-known/openid-configuration"
    )


def test_expired_tokens_do_not_resolve(emus: Emulators, app: AppCredential) -> None:
    issued = emus.entra.issue(app.client_id, "https://vault.azure.net")
    emus.entra.expire_tokens(app.client_id)
    assert emus.entra.resolve(issued.access_token) is None
