"""The GitHub emulator: public keys, sealed-box PUTs (201/204), write-only secrets, errors."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING

import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators

VERSION = {"X-GitHub-Api-Version": "2022-11-28", "Accept": "application/vnd.github+json"}
ERROR_KEYS = {"message", "documentation_url", "status"}


@pytest.fixture
def repo(emus: Emulators) -> str:
    name = f"repo{uuid.uuid4().hex[:8]}"
    emus.github.add_repository("contoso", name)
    emus.github.add_environment("contoso", name, "prod")
    return name


@pytest.fixture
def headers(emus: Emulators, repo: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {emus.github.add_token([f'contoso/{repo}'])}", **VERSION}


def base(emus: Emulators, repo: str, environment: str | None = None) -> str:
    scope = f"environments/{environment}/secrets" if environment else "actions/secrets"
    return f"{emus.github_url}/repos/contoso/{repo}/{scope}"


def seal(key_b64: str, value: str) -> str:
    box = SealedBox(PublicKey(base64.b64decode(key_b64)))
    return base64.b64encode(box.encrypt(value.encode())).decode()


async def put(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], name: str, value: str
) -> httpx.Response:
    key = (await http.get(f"{url}/public-key", headers=headers)).json()
    body = {"encrypted_value": seal(key["key"], value), "key_id": key["key_id"]}
    return await http.put(f"{url}/{name}", headers=headers, json=body)


@pytest.mark.parametrize("environment", [None, "prod"])
async def test_create_then_update_201_204_and_the_value_arrives(
    emus: Emulators,
    http: httpx.AsyncClient,
    headers: dict[str, str],
    repo: str,
    environment: str | None,
) -> None:
    url = base(emus, repo, environment)
    created = await put(http, url, headers, "DATABRICKS_TOKEN", "dapi-one")
    first = (await http.get(f"{url}/DATABRICKS_TOKEN", headers=headers)).json()
    updated = await put(http, url, headers, "DATABRICKS_TOKEN", "dapi-two")
    second = (await http.get(f"{url}/DATABRICKS_TOKEN", headers=headers)).json()
    assert (created.status_code, updated.status_code) == (201, 204)
    secret = emus.github.secret("contoso", repo, "DATABRICKS_TOKEN", environment)
    assert secret.value == "dapi-two"
    assert secret.history == ["dapi-one", "dapi-two"]
    assert set(second) == {"name", "created_at", "updated_at"}
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]


async def test_environment_and_repository_secrets_are_apart(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    await put(http, base(emus, repo, "prod"), headers, "TOKEN", "dapi-env")
    response = await http.get(f"{base(emus, repo)}/TOKEN", headers=headers)
    assert response.status_code == 404
    assert response.json().keys() >= ERROR_KEYS


async def test_public_key_is_a_curve25519_key_of_the_scope(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    repo_key = (await http.get(f"{base(emus, repo)}/public-key", headers=headers)).json()
    env_key = (await http.get(f"{base(emus, repo, 'prod')}/public-key", headers=headers)).json()
    assert len(base64.b64decode(repo_key["key"])) == 32
    assert repo_key["key_id"] != env_key["key_id"]
    assert repo_key["key_id"] == emus.github.key("contoso", repo).key_id


async def test_a_stale_key_id_is_422_and_changes_nothing(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    key = (await http.get(f"{base(emus, repo)}/public-key", headers=headers)).json()
    emus.github.rotate_key("contoso", repo)
    body = {"encrypted_value": seal(key["key"], "dapi-x"), "key_id": key["key_id"]}
    response = await http.put(f"{base(emus, repo)}/TOKEN", headers=headers, json=body)
    assert response.status_code == 422
    assert response.json().keys() >= ERROR_KEYS
    assert emus.github.find_secret(("contoso", repo, None), "TOKEN") is None


async def test_a_value_sealed_for_another_key_is_422(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    key = (await http.get(f"{base(emus, repo)}/public-key", headers=headers)).json()
    stranger = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    body = {"encrypted_value": seal(stranger, "dapi-x"), "key_id": key["key_id"]}
    response = await http.put(f"{base(emus, repo)}/TOKEN", headers=headers, json=body)
    assert response.status_code == 422
    assert "encrypted_value" in response.json()["message"]


async def test_a_missing_key_id_is_422_in_githubs_words(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    response = await http.put(
        f"{base(emus, repo)}/TOKEN", headers=headers, json={"encrypted_value": "abc"}
    )
    assert response.status_code == 422
    assert response.json()["message"] == 'Invalid request.\n\n"key_id" wasn\'t supplied.'


async def test_bad_names_are_422(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    for name in ("1TOKEN", "GITHUB_TOKEN", "A-B"):
        response = await put(http, base(emus, repo), headers, name, "dapi-x")
        assert response.status_code == 422, name


@pytest.mark.parametrize(
    ("auth", "status"),
    [({}, 401), ({"Authorization": "Bearer github_pat_nope"}, 401)],
)
async def test_bad_credentials_are_401(
    emus: Emulators, http: httpx.AsyncClient, repo: str, auth: dict[str, str], status: int
) -> None:
    response = await http.get(f"{base(emus, repo)}/public-key", headers={**auth, **VERSION})
    assert response.status_code == status
    assert response.json().keys() >= ERROR_KEYS


async def test_a_token_for_another_repository_sees_404(
    emus: Emulators, http: httpx.AsyncClient, repo: str
) -> None:
    headers = {"Authorization": f"token {emus.github.add_token(['contoso/other'])}"}
    response = await http.get(f"{base(emus, repo)}/public-key", headers=headers)
    assert (response.status_code, response.json()["message"]) == (404, "Not Found")


async def test_a_read_only_token_cannot_put(
    emus: Emulators, http: httpx.AsyncClient, repo: str
) -> None:
    headers = {"Authorization": f"Bearer {emus.github.add_token(write=False)}", **VERSION}
    response = await put(http, base(emus, repo), headers, "TOKEN", "dapi-x")
    assert response.status_code == 403
    assert response.json()["message"] == "Resource not accessible by personal access token"


async def test_an_unknown_api_version_is_400(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    response = await http.get(
        f"{base(emus, repo)}/public-key", headers={**headers, "X-GitHub-Api-Version": "1999-01-01"}
    )
    assert response.status_code == 400


async def test_secondary_rate_limit_fault_has_retry_after_and_githubs_shape(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    emus.faults.add("github", "PUT", ".*/secrets/.*", status=403, headers={"Retry-After": "60"})
    response = await put(http, base(emus, repo), headers, "TOKEN", "dapi-x")
    assert response.status_code == 403
    assert response.headers["Retry-After"] == "60"
    assert "secondary rate limit" in response.json()["message"]
    assert emus.github.find_secret(("contoso", repo, None), "TOKEN") is None


async def test_a_pat_that_arrives_keeps_its_kind_in_the_registry(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, headers: dict[str, str], repo: str
) -> None:
    pat = emus.databricks.mint(sp.client_id, 3600, "gh").value
    await put(http, base(emus, repo), headers, "DATABRICKS_TOKEN", pat)
    assert emus.github.secret("contoso", repo, "DATABRICKS_TOKEN").value == pat
    assert emus.secrets.kind_of(pat) == "pat"


def test_tokens_and_values_are_registered_and_not_in_reprs(emus: Emulators, repo: str) -> None:
    token = emus.github.add_token()
    emus.github.set_secret("contoso", repo, "SEEDED", "dapi-seeded")
    assert emus.secrets.kind_of(token) == "github_token"
    assert emus.secrets.kind_of("dapi-seeded") == "actions_secret"
    assert "dapi-seeded" not in repr(emus.github.secret("contoso", repo, "SEEDED"))
