"""Build the real clients a run needs (for the composition roots only: CLI and Function App).

Heavy imports (azure SDKs, httpx) happen inside :func:`open_runtime`, not at module import.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rotation.lock import Lock, NullLock
from rotation.principals import AzureOptions
from rotation.retry import RetryPolicy
from rotation.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline.transport import AioHttpTransport

    from rotation.config import Config

__all__ = ["azure_transport", "is_loopback", "open_runtime"]

USER_AGENT = "pat-rotator/0.1"


def is_loopback(url: str) -> bool:
    """Return whether *url* points at this machine (the local emulators)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@asynccontextmanager
async def azure_transport(ca_file: str | None = None) -> AsyncIterator[AioHttpTransport]:
    """Yield one aiohttp transport for every Azure client of a run, trusting *ca_file* too.

    Sharing it keeps one connection pool and one TLS context per run instead of one session per
    credential (and, with ``connection_verify``, one TLS context per request).
    """
    import aiohttp  # noqa: PLC0415
    from azure.core.pipeline.transport import AioHttpTransport  # noqa: PLC0415

    context = (
        ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    )
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=100), trust_env=True
    ) as session:
        yield AioHttpTransport(session=session, session_owner=False)


@asynccontextmanager
async def open_runtime(
    config: Config,
    *,
    credential: AsyncTokenCredential | None = None,
    ca_file: str | None = None,
    transport: AioHttpTransport | None = None,
    lock: Lock | None = None,
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] = time.time,
    http_timeout: float = 30.0,
    azure_timeout: float | None = None,
) -> AsyncIterator[Runtime]:
    """Yield a :class:`Runtime` with a Key Vault client and an HTTP client; close them after.

    *credential* defaults to ``DefaultAzureCredential`` (managed identity in Azure, ``AZURE_*``
    variables or a developer login locally). *ca_file* adds a CA bundle (the emulators' CA).
    *transport* is the shared Azure transport (default: a new one from :func:`azure_transport`).
    """
    import httpx  # noqa: PLC0415
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415
    from azure.keyvault.secrets.aio import SecretClient  # noqa: PLC0415

    from rotation.store import KeyVaultStore  # noqa: PLC0415

    retry = retry or RetryPolicy()
    async with AsyncExitStack() as stack:
        if transport is None:
            transport = await stack.enter_async_context(azure_transport(ca_file))
        azure = AzureOptions(transport=transport, read_timeout=azure_timeout)
        if credential is None:
            credential = DefaultAzureCredential(transport=transport)
            stack.push_async_callback(credential.close)
        client = SecretClient(
            config.key_vault_url,
            credential,
            verify_challenge_resource=not is_loopback(config.key_vault_url),
            retry_total=max(0, retry.attempts - 1),
            retry_backoff_factor=retry.wait_initial,
            retry_backoff_max=retry.wait_max,
            user_agent=USER_AGENT,
            **azure.client_kwargs(),
        )
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        http = httpx.AsyncClient(
            verify=verify,
            timeout=http_timeout,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=max(10, config.concurrency * 2)),
        )
        await stack.enter_async_context(client)
        await stack.enter_async_context(http)
        yield Runtime(
            config=config,
            store=KeyVaultStore(client),
            http=http,
            retry=retry,
            azure=azure,
            lock=lock or NullLock(),
            clock=clock,
        )
