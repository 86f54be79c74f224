"""The webhook receiver: Standard Webhooks signatures, pat.test (tried, not saved), pat.rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from emulators.webhook import sign

if TYPE_CHECKING:
    import httpx

    from emulators import AppCredential, Emulators


@pytest.fixture
def receiver(emus: Emulators) -> tuple[str, str]:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    return name, emus.webhook.add_receiver(name, databricks_host=emus.databricks_url, pat="dapi-0")


def event(kind: str, pat: str) -> bytes:
    body = {"type": kind, "timestamp": "2026-12-06T08:00:00Z", "data": {"target": "t", "pat": pat}}
    return json.dumps(body).encode()


def signed(
    emus: Emulators, secret: str, body: bytes, *, msg_id: str | None = None, skew: int = 0
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(emus.clock.now()) + skew
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
        "content-type": "application/json",
    }


async def deliver(
    emus: Emulators, http: httpx.AsyncClient, name: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(f"{emus.webhook_url}/hooks/{name}", content=body, headers=headers)


def test_sign_follows_the_standard_webhooks_example_construction() -> None:
    key = b"\x01" * 24
    secret = "whsec_" + base64.b64encode(key).decode()
    mac = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(secret, "msg_1", 1_700_000_000, b"{}") == "v1," + base64.b64encode(mac).decode()


async def test_pat_test_with_a_live_pat_is_ok_and_not_saved(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    pat = emus.databricks.mint(sp.client_id, 3600, "hook").value
    body = event("pat.test", pat)
    response = await deliver(emus, http, name, body, signed(emus, secret, body))
    held = emus.webhook.receiver(name)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert held.pat == "dapi-0"
    assert held.events[-1].type == "pat.test"
    assert held.events[-1].pat == pat
    assert emus.requests.find("databricks", "GET", "/api/2.0/preview/scim/v2/Me")[-1].status == 200


async def test_pat_test_with_a_dead_pat_is_422_with_a_reason(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    body = event("pat.test", "dapi-dead")
    response = await deliver(emus, http, name, body, signed(emus, secret, body))
    assert response.status_code == 422
    assert response.json()["ok"] is False
    assert "Databricks rejected" in response.json()["reason"]
    assert "dapi-dead" not in response.text


async def test_pat_rotated_saves_the_pat(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    body = event("pat.rotated", "dapi-1")
    response = await deliver(emus, http, name, body, signed(emus, secret, body))
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert emus.webhook.receiver(name).pat == "dapi-1"
    assert emus.webhook.receiver(name).history == ["dapi-0", "dapi-1"]


async def test_a_redelivery_gets_the_first_answer_and_does_nothing_more(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    body = event("pat.rotated", "dapi-1")
    headers = signed(emus, secret, body)
    await deliver(emus, http, name, body, headers)
    emus.webhook.receiver(name).save("dapi-local")
    again = await deliver(emus, http, name, body, headers)
    assert (again.status_code, again.json()) == (200, {"ok": True})
    assert emus.webhook.receiver(name).pat == "dapi-local"
    assert emus.webhook.receiver(name).events[-1].replayed


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ("body", 401),
        ("secret", 401),
        ("stale", 401),
        ("future", 401),
        ("missing", 400),
        ("not-a-number", 400),
    ],
)
async def test_bad_signatures_and_timestamps_are_refused_and_change_nothing(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str], tamper: str, status: int
) -> None:
    name, secret = receiver
    body = event("pat.rotated", "dapi-evil")
    other = "whsec_" + base64.b64encode(b"\x02" * 32).decode()
    headers = {
        "body": signed(emus, secret, event("pat.rotated", "dapi-good")),
        "secret": signed(emus, other, body),
        "stale": signed(emus, secret, body, skew=-301),
        "future": signed(emus, secret, body, skew=301),
        "missing": {k: v for k, v in signed(emus, secret, body).items() if k != "webhook-id"},
        "not-a-number": {**signed(emus, secret, body), "webhook-timestamp": "soon"},
    }[tamper]
    response = await deliver(emus, http, name, body, headers)
    assert response.status_code == status
    assert response.json()["ok"] is False
    assert response.json()["reason"]
    assert emus.webhook.receiver(name).pat == "dapi-0"


async def test_the_tolerance_follows_the_virtual_clock(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    body = event("pat.rotated", "dapi-1")
    headers = signed(emus, secret, body, skew=-200)
    emus.clock.advance(150)
    try:
        response = await deliver(emus, http, name, body, headers)
    finally:
        emus.clock.advance(-150)
    assert response.status_code == 401


async def test_any_of_several_signatures_and_keys_may_match(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, old = receiver
    new = emus.webhook.add_secret(name)
    body = event("pat.rotated", "dapi-1")
    headers = signed(emus, new, body)
    stale = sign(old, headers["webhook-id"], int(headers["webhook-timestamp"]), b"other")
    headers["webhook-signature"] = f"{stale} {headers['webhook-signature']}"
    response = await deliver(emus, http, name, body, headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "pat.deleted", "data": {"pat": "dapi-1"}},
        {"type": "pat.rotated", "data": {"pat": ""}},
        {"type": "pat.rotated"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_events_are_400(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str], payload: Any
) -> None:
    name, secret = receiver
    body = json.dumps(payload).encode()
    response = await deliver(emus, http, name, body, signed(emus, secret, body))
    assert response.status_code == 400
    assert set(response.json()) == {"ok", "reason"}
    assert emus.webhook.receiver(name).pat == "dapi-0"


async def test_unknown_receiver_and_faults_use_the_receivers_shape(
    emus: Emulators, http: httpx.AsyncClient, receiver: tuple[str, str]
) -> None:
    name, secret = receiver
    body = event("pat.rotated", "dapi-1")
    missing = await deliver(emus, http, "nobody", body, signed(emus, secret, body))
    emus.faults.add("webhook", "POST", "/hooks/.*", status=503)
    faulted = await deliver(emus, http, name, body, signed(emus, secret, body))
    assert (missing.status_code, faulted.status_code) == (404, 503)
    assert set(missing.json()) == set(faulted.json()) == {"ok", "reason"}
    assert emus.webhook.receiver(name).pat == "dapi-0"


def test_signing_secrets_are_registered(emus: Emulators, receiver: tuple[str, str]) -> None:
    name, secret = receiver
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert emus.secrets.kind_of(secret) == "webhook_secret"
    assert secret not in repr(emus.webhook.receiver(name))
