"""The managed identity endpoint, through azure-identity's real ``ManagedIdentityCredential``.

azure-identity reads ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` when the credential is built,
so each test sets them (monkeypatch) before building one.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import aiohttp
import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity import CredentialUnavailableError
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from emulators import Emulators
from tests.emulators.helpers import DATABRICKS, bearer, create_token, scim_me

if TYPE_CHECKING:
    from emulators import ManagedIdentity

SCOPE = f"{DATABRICKS}/.default"
TOKEN_PATH = "/msi/token"


@pytest.fixture
def identity_env(emus: Emulators, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` as App Service does."""
    env = emus.identity_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("IDENTITY_SERVER_THUMBPRINT", raising=False)  # else: Service Fabric
    return env


@pytest.fixture
def user_assigned(emus: Emulators) -> ManagedIdentity:
    """A fresh user-assigned identity of the app, a service principal of the workspace."""
    client_id = emus.add_managed_identity(name="uami")
    emus.databricks.add_service_principal(client_id, "uami")
    (identity,) = [i for i in emus.entra.managed_identities() if i.client_id == client_id]
    return identity


def _system_identity(emus: Emulators) -> str:
    client_id = emus.add_managed_identity(system=True)
    if emus.databricks.principal(client_id) is None:
        emus.databricks.add_service_principal(client_id, "function-app")
    return client_id


async def _acts_as(emus: Emulators, http: httpx.AsyncClient, token: str, client_id: str) -> None:
    """Assert *token* is *client_id* to Databricks: SCIM Me, then a PAT it owns."""
    me = await scim_me(emus, http, bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["userName"] == client_id
    created = await create_token(emus, http, bearer(token), lifetime_seconds=3600, comment="mi")
    assert created.status_code == 200, created.text
    token_id = created.json()["token_info"]["token_id"]
    assert token_id in [t.token_id for t in emus.databricks.tokens_of(client_id)]
    assert emus.databricks.get(token_id).owner.application_id == client_id  # type: ignore[union-attr]


def _identity_calls(emus: Emulators) -> list[str]:
    return [e.query for e in emus.requests.find("identity", "GET", TOKEN_PATH)]


async def test_system_assigned_identity_gets_a_databricks_token_and_acts_as_itself(
    emus: Emulators, http: httpx.AsyncClient, identity_env: dict[str, str]
) -> None:
    client_id = _system_identity(emus)
    before = len(_identity_calls(emus))
    async with ManagedIdentityCredential() as credential:
        token = await credential.get_token(SCOPE)
    calls = _identity_calls(emus)[before:]
    assert calls == [f"api-version=2019-08-01&resource={DATABRICKS}"]
    issued = emus.entra.lookup(token.token)
    assert issued is not None
    assert (issued.client_id, issued.audience, issued.tenant_id) == (
        client_id,
        DATABRICKS,
        emus.tenant_id,
    )
    assert abs(token.expires_on - issued.expires_real) < 1
    await _acts_as(emus, http, token.token, client_id)


async def test_user_assigned_identity_by_client_id_acts_as_itself(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
) -> None:
    _system_identity(emus)  # the app has one too: client_id must choose the other
    async with ManagedIdentityCredential(client_id=user_assigned.client_id) as credential:
        token = await credential.get_token(SCOPE)
        again = await credential.get_token(SCOPE)  # cached under the echoed resource
    assert again.token == token.token
    assert _identity_calls(emus)[-1].endswith(f"&client_id={user_assigned.client_id}")
    assert sum(user_assigned.client_id in q for q in _identity_calls(emus)) == 1
    await _acts_as(emus, http, token.token, user_assigned.client_id)


@pytest.mark.parametrize("selector", ["object_id", "principal_id", "mi_res_id"])
async def test_user_assigned_identity_by_object_or_resource_id(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
    selector: str,
) -> None:
    value = user_assigned.resource_id if selector == "mi_res_id" else user_assigned.principal_id
    async with ManagedIdentityCredential(identity_config={selector: value}) as credential:
        token = await credential.get_token(SCOPE)
    me = await scim_me(emus, http, bearer(token.token))
    assert me.json()["userName"] == user_assigned.client_id


def test_the_sync_credential_through_msal_gets_the_same_kind_of_token(
    emus: Emulators, identity_env: dict[str, str], user_assigned: ManagedIdentity
) -> None:
    credential = SyncManagedIdentityCredential(client_id=user_assigned.client_id)
    token = credential.get_token(SCOPE)
    issued = emus.entra.lookup(token.token)
    assert issued is not None
    assert (issued.client_id, issued.audience) == (user_assigned.client_id, DATABRICKS)
    wrong = SyncManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(CredentialUnavailableError, match="400, Unable to load the proper"):
        wrong.get_token(SCOPE)


async def test_a_vault_token_of_the_identity_reads_key_vault(
    emus: Emulators, identity_env: dict[str, str], user_assigned: ManagedIdentity, ca: str
) -> None:
    emus.keyvault.set_secret("mi-readable", "v1")
    async with (
        ManagedIdentityCredential(client_id=user_assigned.client_id) as credential,
        SecretClient(
            emus.keyvault_url, credential, verify_challenge_resource=False, connection_verify=ca
        ) as client,
    ):
        secret = await client.get_secret("mi-readable")
    assert secret.value == "v1"
    assert _identity_calls(emus)[-1].startswith("api-version=2019-08-01&resource=https")


async def test_the_endpoint_is_plain_http_and_a_tls_transport_still_reaches_it(
    emus: Emulators, identity_env: dict[str, str], user_assigned: ManagedIdentity, ca: str
) -> None:
    """As in Azure: an app's one shared TLS transport (trusting a CA) serves the credential."""
    assert identity_env["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    assert identity_env["IDENTITY_ENDPOINT"].endswith(TOKEN_PATH)
    context = ssl.create_default_context(cafile=ca)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        transport = AioHttpTransport(session=session, session_owner=False)
        credential = ManagedIdentityCredential(
            client_id=user_assigned.client_id, transport=transport
        )
        token = await credential.get_token(SCOPE)
    assert emus.entra.resolve(token.token) is not None


async def test_a_wrong_identity_header_fails_with_401(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    issued_before = len(emus.entra.issued(user_assigned.client_id))
    async with ManagedIdentityCredential(client_id=user_assigned.client_id) as credential:
        with pytest.raises(ClientAuthenticationError, match="X-IDENTITY-HEADER") as caught:
            await credential.get_token(SCOPE)
    assert caught.value.status_code == 401
    assert emus.requests.find("identity", "GET", TOKEN_PATH)[-1].status == 401
    assert len(emus.entra.issued(user_assigned.client_id)) == issued_before
    bare = await http.get(
        identity_env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": DATABRICKS},
    )
    assert bare.status_code == 401
    assert set(bare.json()) == {"statusCode", "message", "correlationId"}


async def test_an_unknown_client_id_fails_with_the_app_service_error(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    async with ManagedIdentityCredential(client_id=unknown) as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            await credential.get_token(SCOPE)
    assert caught.value.status_code == 400
    assert "Unable to load the proper Managed Identity." in str(caught.value)
    response = await http.get(
        identity_env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": DATABRICKS, "client_id": unknown},
        headers={"X-IDENTITY-HEADER": identity_env["IDENTITY_HEADER"]},
    )
    body = response.json()
    assert response.status_code == 400
    assert body["statusCode"] == 400
    assert body["message"] == "Unable to load the proper Managed Identity."
    assert response.headers["x-correlation-id"] == body["correlationId"]


def test_without_a_system_assigned_identity_no_client_id_is_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Emulators() as emulators:
        client_id = emulators.add_managed_identity()
        for name, value in emulators.identity_env().items():
            monkeypatch.setenv(name, value)
        system = SyncManagedIdentityCredential()
        with pytest.raises(CredentialUnavailableError, match="Unable to load the proper"):
            system.get_token(SCOPE)
        assert SyncManagedIdentityCredential(client_id=client_id).get_token(SCOPE).token


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"api-version": "2019-08-01", "resource": "api://unknown"}, 500, "unexpected error"),
        ({"api-version": "2017-09-01", "resource": DATABRICKS}, 400, "api-version"),
        ({"api-version": "2019-08-01"}, 400, "resource"),
        (  # a selector naming no identity never falls back to the system-assigned one
            {"api-version": "2019-08-01", "resource": DATABRICKS, "mi_res_id": "/x"},
            400,
            "Unable to load the proper Managed Identity.",
        ),
        (
            {
                "api-version": "2019-08-01",
                "resource": DATABRICKS,
                "client_id": "a",
                "object_id": "b",
            },
            400,
            "Only one of",
        ),
    ],
)
def test_bad_requests_answer_the_app_service_error_shape(
    emus: Emulators, params: dict[str, str], status: int, message: str
) -> None:
    _system_identity(emus)
    response = httpx.get(
        emus.identity_endpoint,
        params=params,
        headers={"X-IDENTITY-HEADER": emus.identity_header},
        trust_env=False,
    )
    assert response.status_code == status
    assert response.json()["statusCode"] == status
    assert message in response.json()["message"]


async def test_faults_apply_to_the_identity_endpoint(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
) -> None:
    fault = emus.faults.add("identity", "GET", TOKEN_PATH, status=503)
    async with ManagedIdentityCredential(client_id=user_assigned.client_id) as credential:
        token = await credential.get_token(SCOPE)  # azure-core retries the 503 at once
    assert fault.hits == 1
    last_two = emus.requests.find("identity", "GET", TOKEN_PATH)[-2:]
    assert [(e.status, e.faulted) for e in last_two] == [(503, "respond"), (200, None)]
    assert emus.entra.resolve(token.token) is not None
    emus.faults.add("identity", "GET", TOKEN_PATH, status=400)
    response = await http.get(emus.identity_endpoint)
    assert response.status_code == 400
    assert set(response.json()) == {"statusCode", "message", "correlationId"}


async def test_an_unassigned_identity_gets_no_token_but_its_tokens_stay_valid(
    emus: Emulators,
    http: httpx.AsyncClient,
    identity_env: dict[str, str],
    user_assigned: ManagedIdentity,
) -> None:
    async with ManagedIdentityCredential(client_id=user_assigned.client_id) as credential:
        token = await credential.get_token(SCOPE)
    emus.entra.remove_managed_identity(user_assigned.client_id)
    async with ManagedIdentityCredential(client_id=user_assigned.client_id) as credential:
        with pytest.raises(ClientAuthenticationError, match="Unable to load the proper"):
            await credential.get_token(SCOPE)
    assert (await scim_me(emus, http, bearer(token.token))).status_code == 200
