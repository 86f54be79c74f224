"""Key Vault's service limits in the emulator (off unless set), and the rotator's client under them.

Documented: 300 secret creates and 4,000 other transactions per 10 s per vault, 429 ``Throttled``
over them, refused requests not counted; a captured 429 carries no ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import types
from typing import TYPE_CHECKING

import httpx
import pytest
import pytest_asyncio
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ClientSecretCredential

from emulators.entra_state import VAULT_RESOURCE
from emulators.keyvault_state import THROTTLED_MESSAGE, ServiceLimits, Throttle
from rotation.app import azure_transport
from rotation.backends import AzureOptions, RetryPolicy, key_vault_client, throttle_wait
from tests.emulators.helpers import bearer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from azure.keyvault.secrets.aio import SecretClient

    from emulators import AppCredential, Emulators

API = {"api-version": "7.6"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limits_off_after(emus: Emulators) -> Iterator[None]:
    yield
    emus.keyvault.set_limits(None)


@pytest.fixture
def auth(emus: Emulators, app: AppCredential) -> dict[str, str]:
    return bearer(emus.entra.issue(app.client_id, VAULT_RESOURCE).access_token)


def _name() -> str:
    return f"throttle-{secrets.token_hex(5)}"


async def _put(emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    return await http.put(
        f"{emus.keyvault_url}/secrets/{_name()}", params=API, headers=auth, json={"value": "v"}
    )


async def _list(emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    return await http.get(f"{emus.keyvault_url}/secrets", params=API, headers=auth)


# -- the count -----------------------------------------------------------------------------------


def test_creates_and_other_transactions_are_counted_apart_in_a_sliding_window() -> None:
    clock = FakeClock()
    throttle = Throttle(ServiceLimits(creates=2, others=3, window=10.0), clock)
    assert [throttle.admit(create=True) for _ in range(2)] == [None, None]
    clock.now += 4
    assert throttle.admit(create=True) == pytest.approx(6.0)  # the first create frees at +10 s
    assert [throttle.admit(create=False) for _ in range(3)] == [None, None, None]
    assert throttle.admit(create=False) == pytest.approx(10.0)
    clock.now += 6  # the two creates of t=0 leave the window
    assert throttle.admit(create=True) is None
    assert throttle.counts() == {"creates": 3, "others": 3, "throttled": 2}


def test_a_refused_request_does_not_count() -> None:
    clock = FakeClock()
    throttle = Throttle(ServiceLimits(creates=1, window=10.0), clock)
    assert throttle.admit(create=True) is None
    for step in range(9):  # knocking every second does not push the window back
        clock.now += 1
        assert throttle.admit(create=True) == pytest.approx(10.0 - step - 1)
    clock.now += 1
    assert throttle.admit(create=True) is None


def test_a_limit_of_zero_refuses_everything() -> None:
    throttle = Throttle(ServiceLimits(creates=0, window=2.0), FakeClock())
    assert throttle.admit(create=True) == 2.0


def test_the_documented_limits_are_the_default() -> None:
    assert ServiceLimits() == ServiceLimits(
        creates=300, others=4000, window=10.0, retry_after=False
    )


# -- the emulator over HTTP ----------------------------------------------------------------------


async def test_limits_are_off_unless_set(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert emus.keyvault.throttle is None
    answers = await asyncio.gather(*(_put(emus, http, auth) for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
    assert emus.keyvault.throttle_counts() == {"creates": 0, "others": 0, "throttled": 0}


@pytest.mark.usefixtures("limits_off_after")
async def test_over_the_limit_key_vault_answers_429_throttled_without_retry_after(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    clock = FakeClock()
    emus.keyvault.set_limits(ServiceLimits(creates=1, others=1, window=10.0), now=clock)
    assert (await _put(emus, http, auth)).status_code == 200
    refused = await _put(emus, http, auth)
    assert refused.status_code == 429
    assert refused.json() == {"error": {"code": "Throttled", "message": THROTTLED_MESSAGE}}
    assert "retry-after" not in refused.headers
    assert (await _list(emus, http, auth)).status_code == 200  # other transactions: own count
    assert (await _list(emus, http, auth)).status_code == 429
    clock.now += 10
    assert (await _put(emus, http, auth)).status_code == 200
    assert emus.keyvault.throttle_counts() == {"creates": 2, "others": 1, "throttled": 2}


@pytest.mark.usefixtures("limits_off_after")
async def test_retry_after_says_when_the_request_would_fit_when_asked_for(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    clock = FakeClock()
    emus.keyvault.set_limits(ServiceLimits(creates=1, window=10.0, retry_after=True), now=clock)
    await _put(emus, http, auth)
    clock.now += 2.5
    refused = await _put(emus, http, auth)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(math.ceil(7.5))


@pytest.mark.usefixtures("limits_off_after")
async def test_unauthenticated_challenges_are_not_counted(
    emus: Emulators, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emus.keyvault.set_limits(ServiceLimits(others=1), now=FakeClock())
    for _ in range(3):
        assert (await http.get(f"{emus.keyvault_url}/secrets", params=API)).status_code == 401
    assert (await _list(emus, http, auth)).status_code == 200


# -- the rotator's Key Vault client under the limits ---------------------------------------------

QUICK = RetryPolicy(throttle_wait_initial=0.05, throttle_wait_max=0.2)


@pytest_asyncio.fixture
async def rotator_vault(
    emus: Emulators, app: AppCredential, ca: str
) -> AsyncIterator[Callable[..., Awaitable[SecretClient]]]:
    """Build the rotator's own Key Vault client (its retry policy) over the rotator's transport."""
    clients: list[SecretClient] = []
    async with (
        azure_transport(ca) as transport,
        ClientSecretCredential(
            app.tenant_id,
            app.client_id,
            app.client_secret,
            authority=emus.entra_url,
            transport=transport,
        ) as credential,
    ):

        async def make(policy: RetryPolicy = QUICK) -> SecretClient:
            config = types.SimpleNamespace(key_vault_url=emus.keyvault_url)
            client = key_vault_client(
                config.key_vault_url, credential, policy, AzureOptions(transport)
            )
            clients.append(client)
            return client

        yield make
        for client in clients:
            await client.close()


def _throttled(emus: Emulators, method: str) -> int:
    return sum(1 for e in emus.requests.find("keyvault", method, r"/secrets/.*") if e.status == 429)


@pytest.mark.usefixtures("limits_off_after")
async def test_the_rotators_client_waits_out_throttled_creates_and_none_fails(
    emus: Emulators, rotator_vault: Callable[..., Awaitable[SecretClient]]
) -> None:
    vault = await rotator_vault()
    await vault.set_secret(_name(), "warm")  # challenge and token before the limits
    emus.requests.clear()
    emus.keyvault.set_limits(ServiceLimits(creates=2, window=0.5))
    stored = await asyncio.gather(*(vault.set_secret(_name(), "v") for _ in range(6)))
    assert len(stored) == 6
    assert _throttled(emus, "PUT") >= 1  # it was throttled, and it waited rather than failed
    assert emus.keyvault.throttle_counts()["creates"] == 6


@pytest.mark.usefixtures("limits_off_after")
async def test_a_throttled_patch_is_sent_again_too(
    emus: Emulators, rotator_vault: Callable[..., Awaitable[SecretClient]]
) -> None:
    vault = await rotator_vault()
    name = _name()
    await vault.set_secret(name, "v")
    emus.requests.clear()
    emus.keyvault.set_limits(ServiceLimits(others=1, window=0.5))
    await vault.get_secret(name)
    updated = await vault.update_secret_properties(name, tags={"stage": "current"})
    assert updated.tags == {"stage": "current"}
    assert _throttled(emus, "PATCH") >= 1


@pytest.mark.usefixtures("limits_off_after")
async def test_retry_after_is_honoured_when_key_vault_sends_it(
    emus: Emulators, rotator_vault: Callable[..., Awaitable[SecretClient]]
) -> None:
    vault = await rotator_vault()
    await vault.set_secret(_name(), "warm")
    emus.keyvault.set_limits(ServiceLimits(creates=1, window=1.0, retry_after=True))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(vault.set_secret(_name(), "a"), vault.set_secret(_name(), "b"))
    assert loop.time() - start >= 1.0  # Retry-After: 1, not the short jittered wait


@pytest.mark.usefixtures("limits_off_after")
async def test_the_client_gives_up_when_throttled_for_longer_than_its_timeout(
    emus: Emulators, rotator_vault: Callable[..., Awaitable[SecretClient]]
) -> None:
    policy = RetryPolicy(throttle_timeout=0.1, throttle_wait_initial=0.02, throttle_wait_max=0.04)
    vault = await rotator_vault(policy)
    await vault.set_secret(_name(), "warm")
    emus.requests.clear()
    emus.keyvault.set_limits(ServiceLimits(creates=0))
    with pytest.raises(HttpResponseError) as caught:
        await vault.set_secret(_name(), "v")
    assert caught.value.status_code == 429
    # waits of 0.01-0.02, then 0.02-0.04 s each: 3 to 5 fit in 0.1 s, so 4 to 6 sends
    assert 4 <= _throttled(emus, "PUT") <= 6


def test_throttle_waits_double_with_jitter_up_to_a_total_and_honour_a_bounded_retry_after() -> None:
    policy = RetryPolicy(throttle_timeout=60.0, throttle_wait_initial=1.0, throttle_wait_max=4.0)
    for throttled, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (9, 4.0)):
        for _ in range(20):
            wait = throttle_wait(policy, None, throttled, 0.0)
            assert wait is not None
            assert ceiling / 2 <= wait <= ceiling
    assert throttle_wait(policy, None, 20, 59.0) is None  # 2-4 s more would pass 60 s
    assert throttle_wait(policy, 3.0, 1, 0.0) == 3.0
    assert throttle_wait(policy, 3.0, 5, 58.0) is None
    assert throttle_wait(policy, policy.max_retry_after + 1, 1, 0.0) is None
