"""Fault plans (respond, drop, drop_after, delay, hold, stall) and the request log, per service."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from emulators import AppCredential, Emulators

DATABRICKS = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
CREATE = "/api/2.0/token/create"


@pytest.fixture
def auth(emus: Emulators, sp: AppCredential) -> dict[str, str]:
    return {"Authorization": f"Bearer {emus.entra.issue(sp.client_id, DATABRICKS).access_token}"}


async def test_respond_answers_without_processing(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emus.faults.add("databricks", "POST", CREATE, status=429, headers={"Retry-After": "3"})
    response = await http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert emus.databricks.tokens_of(sp.client_id) == []


@pytest.mark.parametrize(
    ("service", "path", "shape"),
    [
        ("databricks", "/api/2.0/token/list", {"error_code", "message"}),
        ("keyvault", "/secrets", {"error"}),
        ("entra", "/common/discovery/instance", {"error", "error_description", "error_codes"}),
        ("prequel", "/sources", {"status", "data", "message"}),
        ("graph", "/v1.0/applications/x", {"error"}),
    ],
)
async def test_respond_uses_each_services_error_shape(
    emus: Emulators, http: httpx.AsyncClient, service: str, path: str, shape: set[str]
) -> None:
    emus.faults.add(service, "GET", path, status=503)
    response = await http.get(f"{getattr(emus, f'{service}_url')}{path}")
    assert response.status_code == 503
    assert shape <= response.json().keys()


async def test_respond_with_a_custom_body(emus: Emulators, http: httpx.AsyncClient) -> None:
    emus.faults.add("prequel", "*", "/sources/.*", status=500, body={"oops": True})
    response = await http.patch(f"{emus.prequel_url}/sources/abc", json={})
    assert (response.status_code, response.json()) == (500, {"oops": True})


async def test_fault_applies_times_then_is_exhausted(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    fault = emus.faults.add("databricks", "GET", "/api/2.0/token/list", status=503, times=2)
    statuses = [
        (await http.get(f"{emus.databricks_url}/api/2.0/token/list")).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 401]
    assert (fault.hits, fault.remaining, fault.exhausted) == (2, 0, True)


async def test_drop_closes_the_connection_without_processing(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emus.faults.add("databricks", "POST", CREATE, mode="drop")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={})
    assert emus.databricks.tokens_of(sp.client_id) == []
    [entry] = emus.requests.find("databricks", "POST", CREATE)[-1:]
    assert (entry.status, entry.faulted) == (0, "drop")


async def test_drop_after_processes_then_closes_the_connection(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emus.faults.add("databricks", "POST", CREATE, mode="drop_after")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={"comment": "lost"})
    assert [t.comment for t in emus.databricks.tokens_of(sp.client_id)] == ["lost"]
    assert emus.requests.find("databricks", "POST", CREATE)[-1].faulted == "drop_after"


async def test_client_recovers_after_a_drop(emus: Emulators, http: httpx.AsyncClient) -> None:
    emus.faults.add("keyvault", "GET", "/secrets", mode="drop")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await http.get(f"{emus.keyvault_url}/secrets")
    assert (await http.get(f"{emus.keyvault_url}/secrets")).status_code == 401


async def test_delay_slows_the_response_and_then_processes(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    emus.faults.add("entra", "GET", "/common/discovery/instance", mode="delay", delay=0.3)
    started = time.monotonic()
    response = await http.get(f"{emus.entra_url}/common/discovery/instance")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_hold_waits_until_released(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    fault = emus.faults.add("databricks", "POST", CREATE, mode="hold")
    call = asyncio.create_task(http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={}))
    assert await asyncio.to_thread(fault.arrived.wait, 10)
    assert not call.done()
    assert emus.databricks.tokens_of(sp.client_id) == []
    fault.release()
    response = await call
    assert response.status_code == 200
    assert len(emus.databricks.tokens_of(sp.client_id)) == 1


async def test_hold_does_not_block_other_requests(emus: Emulators, http: httpx.AsyncClient) -> None:
    fault = emus.faults.add("prequel", "GET", "/sources", mode="hold")
    held = asyncio.create_task(http.get(f"{emus.prequel_url}/sources"))
    assert await asyncio.to_thread(fault.arrived.wait, 10)
    other = await http.get(f"{emus.prequel_url}/destinations")
    assert other.status_code == 401
    assert not held.done()
    fault.release()
    assert (await held).status_code == 401


async def test_stall_keeps_the_request_until_the_client_gives_up(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    fault = emus.faults.add("databricks", "POST", CREATE, mode="stall")
    with pytest.raises(httpx.ReadTimeout):
        await http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={}, timeout=0.2)
    assert await asyncio.to_thread(fault.abandoned.wait, 10), "the server never saw the client go"
    assert emus.databricks.tokens_of(sp.client_id) == []
    [entry] = emus.requests.find("databricks", "POST", CREATE)[-1:]
    assert (entry.status, entry.faulted) == (0, "stall")


async def test_a_released_stall_drops_the_connection(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    fault = emus.faults.add("databricks", "POST", CREATE, mode="stall")
    call = asyncio.create_task(http.post(f"{emus.databricks_url}{CREATE}", headers=auth, json={}))
    assert await asyncio.to_thread(fault.arrived.wait, 10)
    assert not call.done()
    emus.faults.clear()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await call
    assert not fault.abandoned.is_set()
    assert emus.databricks.tokens_of(sp.client_id) == []


async def test_request_log_counts_by_service_method_and_path_regex(
    emus: Emulators, http: httpx.AsyncClient
) -> None:
    emus.requests.clear()
    await http.get(f"{emus.keyvault_url}/secrets/a", params={"api-version": "7.6"})
    await http.get(f"{emus.keyvault_url}/secrets/b")
    await http.get(f"{emus.databricks_url}/api/2.0/token/list")
    entry = emus.requests.entries()[0]
    assert (entry.service, entry.method, entry.path, entry.query, entry.status) == (
        "keyvault",
        "GET",
        "/secrets/a",
        "api-version=7.6",
        401,
    )
    assert emus.requests.count() == 3
    assert emus.requests.count("keyvault") == 2
    assert emus.requests.count(path=r"/secrets/[ab]") == 2
    assert emus.requests.count("keyvault", "POST") == 0
    assert emus.requests.count(path="/secrets") == 0


def test_unknown_fault_mode_is_refused(emus: Emulators) -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        emus.faults.add("databricks", "GET", "/x", mode="explode")


def test_skip_lets_the_first_matching_requests_through() -> None:
    from emulators.faults import FaultPlan

    plan = FaultPlan()
    fault = plan.add("prequel", "POST", "/x", status=503, skip=2, times=1)
    assert plan.take("prequel", "POST", "/x") is None
    assert plan.take("prequel", "POST", "/x") is None
    assert plan.take("prequel", "POST", "/x") is fault
    assert plan.take("prequel", "POST", "/x") is None


def test_finished_is_set_once_a_held_request_was_processed(emus) -> None:  # type: ignore[no-untyped-def]
    import ssl

    import httpx

    fault = emus.faults.add("prequel", "GET", "/sources", mode="hold")
    assert not fault.finished.is_set()
    fault.release()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(emus.ca_path))) as client:
        client.get(f"{emus.prequel_url}/sources", headers={"X-API-KEY": "nope"})
    assert fault.finished.wait(10)
    emus.faults.clear()
