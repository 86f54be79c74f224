"""The Databricks emulator revokes a PAT not used for 90 days, whatever its expiry, lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.emulators.helpers import bearer, scim_me

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from emulators import AppCredential, Emulators

DAY = 86_400


@pytest.fixture(autouse=True)
def _rewind_clock(emus: Emulators) -> Iterator[None]:
    """Put the shared virtual clock back where it was, so other tests keep their time."""
    saved = emus.clock.offset
    yield
    emus.clock.advance(saved - emus.clock.offset)


async def _listed_ids(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str]
) -> list[str]:
    response = await http.get(f"{emus.databricks_url}/api/2.0/token/list", headers=headers)
    return [t["token_id"] for t in response.json()["token_infos"]]


async def test_a_pat_unused_for_90_days_stops_authenticating_and_leaves_every_list(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    token = emus.databricks.mint(sp.client_id, 2 * 365 * DAY, "long-lived")
    emus.clock.advance(90 * DAY)
    admin = bearer(emus.databricks.add_admin_user())
    managed = f"{emus.databricks_url}/api/2.0/token-management/tokens"
    listed = (await http.get(managed, headers=admin)).json()["token_infos"]
    got = await http.get(f"{managed}/{token.token_id}", headers=admin)
    me = await scim_me(emus, http, bearer(token.value))
    assert token.token_id not in await _listed_ids(emus, http, entra_auth)
    assert token.token_id not in [t["token_id"] for t in listed]
    assert got.status_code == 404
    assert me.status_code == 403
    assert me.json() == {"error_code": 403, "message": "Invalid access token."}
    assert emus.databricks.revocation_reason(token.token_id) == "inactive"


def test_creation_counts_as_use_until_the_90th_day(emus: Emulators, sp: AppCredential) -> None:
    token = emus.databricks.mint(sp.client_id, None, "never used")
    assert emus.databricks.last_used(token.token_id) == token.creation_ms
    emus.clock.advance(90 * DAY - 60)
    assert emus.databricks.is_live(token.value)
    emus.clock.advance(60)
    assert not emus.databricks.is_live(token.value)
    assert emus.databricks.get(token.token_id) is None


async def test_authenticating_with_the_pat_restarts_its_90_days(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient
) -> None:
    token = emus.databricks.mint(sp.client_id, None, "used")
    emus.clock.advance(60 * DAY)
    before = emus.clock.now_ms()
    assert (await scim_me(emus, http, bearer(token.value))).status_code == 200
    used = emus.databricks.last_used(token.token_id)
    assert used is not None
    assert before <= used <= emus.clock.now_ms()
    emus.clock.advance(89 * DAY)
    assert emus.databricks.is_live(token.value)
    emus.clock.advance(DAY)
    assert not emus.databricks.is_live(token.value)
    assert emus.databricks.last_used(token.token_id) == used


async def test_listing_as_the_principal_is_no_use_of_its_pats(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient, entra_auth: dict[str, str]
) -> None:
    token = emus.databricks.mint(sp.client_id, None, "listed, never used")
    emus.clock.advance(45 * DAY)
    assert token.token_id in await _listed_ids(emus, http, entra_auth)
    assert emus.databricks.last_used(token.token_id) == token.creation_ms
    emus.clock.advance(45 * DAY)
    assert token.token_id not in await _listed_ids(emus, http, entra_auth)


async def test_listing_with_the_pat_itself_is_use(
    emus: Emulators, sp: AppCredential, http: httpx.AsyncClient
) -> None:
    token = emus.databricks.mint(sp.client_id, None, "lists itself")
    emus.clock.advance(45 * DAY)
    assert token.token_id in await _listed_ids(emus, http, bearer(token.value))
    emus.clock.advance(45 * DAY)
    assert emus.databricks.is_live(token.value)
