"""``httpx.Auth`` implementations that put a bearer token on Databricks calls.

Tokens travel as :class:`~rotation.secret.Secret`; the auth objects' ``repr`` shows no value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Generator

    from rotation.secret import Secret

DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
"""Azure Databricks' first-party application in Entra ID: the scope of every Entra token for it."""

__all__ = ["DATABRICKS_SCOPE", "BearerAuth", "StaticBearerAuth"]


class BearerAuth(httpx.Auth):
    """Fetch a bearer token from an async provider for every request (the provider caches)."""

    def __init__(self, provider: Callable[[], Awaitable[Secret]]) -> None:
        self._provider = provider

    async def token(self) -> Secret:
        """Return a token from the provider now (it raises what the provider raises)."""
        return await self._provider()

    def __repr__(self) -> str:
        return "BearerAuth([secure])"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Refuse: the token provider is async."""
        del request
        msg = "BearerAuth works with httpx.AsyncClient only"
        raise RuntimeError(msg)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Set the ``Authorization`` header from the provider."""
        token = await self._provider()
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        yield request


class StaticBearerAuth(httpx.Auth):
    """Send one fixed token, e.g. a PAT under test or an admin PAT."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticBearerAuth([secure])"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the ``Authorization`` header."""
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request
