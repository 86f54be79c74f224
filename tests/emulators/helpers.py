"""Small helpers shared by the emulator tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from emulators import Emulators

DATABRICKS = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
"""Azure Databricks' application id: the audience of Entra tokens for Databricks."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_token(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await http.post(
        f"{emus.databricks_url}/api/2.0/token/create", headers=headers, json=body
    )


async def scim_me(
    emus: Emulators, http: httpx.AsyncClient, headers: dict[str, str]
) -> httpx.Response:
    return await http.get(f"{emus.databricks_url}/api/2.0/preview/scim/v2/Me", headers=headers)


async def user_name(emus: Emulators, http: httpx.AsyncClient, token: str) -> str | None:
    """Return the SCIM ``userName`` the token authenticates as, or None if it is refused."""
    response = await scim_me(emus, http, bearer(token))
    return response.json()["userName"] if response.status_code == 200 else None
