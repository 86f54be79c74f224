"""The harness: start/stop, shared plumbing, extra workspaces, and behaviour at scale."""

from __future__ import annotations

import math
import ssl
import threading
import time

import httpx
import pytest

from emulators import Clock, Emulators, SecretRegistry


def emulators_tls(emulators: Emulators) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emulators.ca_path))


def test_all_four_start_within_two_seconds_and_stop_cleanly() -> None:
    started = time.monotonic()
    emulators = Emulators()
    emulators.start()
    elapsed = time.monotonic() - started
    ca = emulators.ca_path
    urls = [
        emulators.entra_url,
        emulators.databricks_url,
        emulators.keyvault_url,
        emulators.prequel_url,
    ]
    emulators.stop()
    assert elapsed < 2
    assert len(set(urls)) == 4
    assert all(u.startswith("https://127.0.0.1:") for u in urls)
    assert not ca.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{urls[1]}/api/2.0/token/list", verify=False, timeout=2)  # noqa: S501


def test_start_is_idempotent_and_the_context_manager_returns_itself() -> None:
    with Emulators() as emulators:
        url = emulators.databricks_url
        emulators.start()
        assert emulators.databricks_url == url


def test_servers_trust_only_the_harness_ca(emus: Emulators) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emus.databricks_url}/api/2.0/token/list", verify=True, trust_env=False)
    assert (
        httpx.get(
            f"{emus.databricks_url}/api/2.0/token/list", verify=emulators_tls(emus)
        ).status_code
        == 401
    )


def test_a_shared_clock_drives_virtual_time() -> None:
    clock = Clock()
    emulators = Emulators(clock=clock)
    clock.advance(86_400)
    version = emulators.keyvault.set_secret("later", "v")
    assert emulators.keyvault.versions("later")[0].version == version
    assert emulators.keyvault.latest("later").created >= time.time() + 86_000


def test_every_issued_secret_is_registered_with_its_kind(emus: Emulators) -> None:
    app = emus.entra.add_app()
    emus.databricks.add_service_principal(app.client_id)
    pat = emus.databricks.mint(app.client_id, 60, "x").value
    key = emus.prequel.add_api_key()
    oauth = emus.databricks.add_oauth_secret(app.client_id)
    kinds = {emus.secrets.kind_of(v) for v in (app.client_secret, pat, key, oauth)}
    assert kinds == {"client_secret", "pat", "api_key", "oauth_secret"}
    assert pat not in repr(emus.databricks.tokens_of(app.client_id))
    assert app.client_secret not in repr(app)


async def test_add_workspace_serves_a_separate_workspace(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    state, url = emus.add_workspace()
    app = emus.entra.add_app()
    state.add_service_principal(app.client_id)
    pat = state.mint(app.client_id, 600, "second").value
    here = await http.get(
        f"{url}/api/2.0/preview/scim/v2/Me", headers={"Authorization": f"Bearer {pat}"}
    )
    there = await http.get(
        f"{emus.databricks_url}/api/2.0/preview/scim/v2/Me",
        headers={"Authorization": f"Bearer {pat}"},
    )
    assert (here.status_code, there.status_code) == (200, 403)
    assert emus.requests.find("databricks", path="/api/2.0/preview/scim/v2/Me")[
        -2
    ].host == url.removeprefix("https://")


async def test_listing_a_thousand_secrets_takes_one_call_per_25() -> None:
    with Emulators() as emulators:
        for i in range(1010):
            emulators.keyvault.set_secret(f"bulk-{i:04d}", "v", tags={"i": str(i)})
        app = emulators.entra.add_app()
        token = emulators.entra.issue(app.client_id, "https://vault.azure.net").access_token
        names: list[str] = []
        async with httpx.AsyncClient(
            verify=emulators_tls(emulators), headers={"Authorization": f"Bearer {token}"}
        ) as client:
            url: str | None = f"{emulators.keyvault_url}/secrets?api-version=7.6"
            while url:
                page = (await client.get(url)).json()
                names += [item["id"].rsplit("/", 1)[1] for item in page["value"]]
                url = page["nextLink"]
        assert names == [f"bulk-{i:04d}" for i in range(1010)]
        assert emulators.requests.count("keyvault", "GET", "/secrets") == math.ceil(1010 / 25)


async def test_thousands_of_tokens_keep_lookups_per_principal() -> None:
    with Emulators() as emulators:
        apps = [emulators.entra.add_app() for _ in range(10)]
        for app in apps:
            emulators.databricks.add_service_principal(app.client_id)
            for _ in range(500):
                emulators.databricks.mint(app.client_id, 3600, "bulk")
        pat = emulators.databricks.tokens_of(apps[0].client_id)[0].value
        async with httpx.AsyncClient(
            verify=emulators_tls(emulators), headers={"Authorization": f"Bearer {pat}"}
        ) as client:
            listed = (await client.get(f"{emulators.databricks_url}/api/2.0/token/list")).json()
        assert len(listed["token_infos"]) == 500
        assert len(emulators.databricks.all_tokens()) == 5000


def test_stop_releases_held_requests_and_returns() -> None:
    emulators = Emulators()
    emulators.start()
    fault = emulators.faults.add("databricks", "GET", "/api/2.0/token/list", mode="hold")
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(
                httpx.get(
                    f"{emulators.databricks_url}/api/2.0/token/list",
                    verify=emulators_tls(emulators),
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert fault.arrived.wait(10)
    emulators.stop()
    caller.join(10)
    assert not caller.is_alive()
    assert len(outcome) == 1


@pytest.mark.parametrize(
    ("service", "path", "shape"),
    [
        ("devops", "/org/_apis/distributedtask/variablegroups/1", {"message", "typeKey", "$id"}),
        ("fivetran", "/v1/destinations/d", {"code", "message"}),
        ("github", "/repos/o/r/actions/secrets/public-key", {"message", "documentation_url"}),
        ("webhook", "/hooks/h", {"ok", "reason"}),
    ],
)
async def test_the_consumers_run_beside_the_others_with_their_own_error_shape(
    emus: Emulators, http: httpx.AsyncClient, service: str, path: str, shape: set[str]
) -> None:
    url = getattr(emus, f"{service}_url")
    others = {emus.entra_url, emus.databricks_url, emus.keyvault_url, emus.prequel_url}
    emus.faults.add(service, "*", path, status=503, headers={"Retry-After": "2"})
    response = await http.request("PUT" if service == "devops" else "GET", f"{url}{path}")
    assert url.startswith("https://127.0.0.1:")
    assert url not in others
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert shape <= response.json().keys()
    assert emus.requests.find(service, path=path)[-1].faulted == "respond"


@pytest.mark.parametrize("service", ["devops", "fivetran", "github", "webhook"])
def test_the_process_cluster_can_build_each_consumer(emus: Emulators, service: str) -> None:
    from emulators import processes

    spec = processes._Spec(
        service,
        emus._tls,
        emus.tenant_id,
        b"k",
        ("127.0.0.1", 9),
    )
    state, app, error_body = processes._build(spec, SecretRegistry(), Clock())
    assert type(state).__name__.lower().startswith(service[:4])
    assert callable(app)
    assert error_body(503, "/")
