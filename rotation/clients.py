"""The composition: build every real client a run needs, from the app settings and the config.

For the composition roots only (the CLI, the Function App's triggers, the sandbox and tests):
:func:`open_app` builds the shared Azure transport and credential, the app's storage account
(locks and the fan-out queue) and the :class:`~rotation.runtime.Runtime` (Key Vault and HTTP
clients); everything else receives them. Heavy imports (Azure SDKs, httpx) happen inside these
functions, not at module import. Storage calls fail fast (seconds, not the SDK's minutes of
backoff), and a storage account that cannot be used is an
:class:`~rotation.errors.AppStorageError` naming the setting it came from and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import ssl
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rotation import errors
from rotation.appsettings import AppSettings
from rotation.config import load_config
from rotation.lock import Lock, NullLock
from rotation.retry import RetryPolicy
from rotation.runtime import AzureOptions, Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import httpx
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueClient

    from rotation.config import Config

__all__ = [
    "App",
    "Storage",
    "azure_transport",
    "is_loopback",
    "open_app",
    "open_runtime",
    "open_storage",
    "storage_failure",
]

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
async def azure_transport(
    ca_file: str | None = None, *, read_timeout: float | None = None
) -> AsyncIterator[AioHttpTransport]:
    """Yield one aiohttp transport for every Azure client of a run, trusting *ca_file* too.

    Sharing it keeps one connection pool and one TLS context per run instead of one session per
    credential (and, with ``connection_verify``, one TLS context per request). *read_timeout* is its
    connect and read timeout in seconds (azure-core's defaults when None); the clients that use
    it cannot change it.
    """
    import aiohttp  # noqa: PLC0415
    from azure.core.pipeline.transport import AioHttpTransport  # noqa: PLC0415

    context = (
        ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    )
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=100), trust_env=True
    ) as session:
        timeouts = (
            {"connection_timeout": read_timeout, "read_timeout": read_timeout}
            if read_timeout
            else {}
        )
        yield AioHttpTransport(session=session, session_owner=False, **timeouts)


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
    *transport* is the shared Azure transport (default: a new one from :func:`azure_transport`
    with *azure_timeout*; a given transport keeps its own timeouts). *http_timeout* is the
    Databricks and consumer calls' timeout.
    """
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    from rotation.store import KeyVaultStore  # noqa: PLC0415

    retry = retry or RetryPolicy()
    async with AsyncExitStack() as stack:
        if transport is None:
            transport = await stack.enter_async_context(
                azure_transport(ca_file, read_timeout=azure_timeout)
            )
        azure = AzureOptions(transport=transport)
        if credential is None:
            credential = DefaultAzureCredential(transport=transport)
            stack.push_async_callback(credential.close)
        vault = _key_vault_client(config, credential, retry, azure)
        http = _http_client(config, ca_file, http_timeout)
        await stack.enter_async_context(vault)
        await stack.enter_async_context(http)
        yield Runtime(
            config=config,
            store=KeyVaultStore(vault),
            http=http,
            retry=retry,
            azure=azure,
            lock=lock or NullLock(),
            clock=clock,
        )


def _key_vault_client(
    config: Config, credential: AsyncTokenCredential, retry: RetryPolicy, azure: AzureOptions
) -> SecretClient:
    """Return the vault's client, retrying as *retry* says (the SDK's own retry policy)."""
    from azure.keyvault.secrets.aio import SecretClient  # noqa: PLC0415

    return SecretClient(
        config.key_vault_url,
        credential,
        verify_challenge_resource=not is_loopback(config.key_vault_url),
        retry_total=max(0, retry.attempts - 1),
        retry_backoff_factor=retry.wait_initial,
        retry_backoff_max=retry.wait_max,
        user_agent=USER_AGENT,
        **azure.client_kwargs(),
    )


def _http_client(config: Config, ca_file: str | None, timeout: float) -> httpx.AsyncClient:
    """Return the HTTP client for Databricks and the consumers: one pool, one TLS context."""
    import httpx  # noqa: PLC0415

    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    return httpx.AsyncClient(
        verify=verify,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=max(10, config.concurrency * 2)),
    )


def storage_failure(settings: AppSettings, exc: Exception) -> errors.AppStorageError:
    """Return the error to raise when the app's storage account failed with *exc*."""
    where = settings.storage_setting_name
    status = getattr(exc, "status_code", None)
    why = f"{status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__
    msg = (
        f"The app's storage account ({where}) cannot be used ({why}); it holds the per-target "
        f"locks and the fan-out queue. Locally: start Azurite, or unset {where} to run without a "
        "lock. In Azure: check the setting and that the app's identity may use blobs and queues."
    )
    return errors.AppStorageError(msg)


@dataclass(frozen=True, slots=True)
class Storage:
    """The app's storage account: blob service (locks) and the fan-out queue."""

    blobs: BlobServiceClient
    queue: QueueClient


@asynccontextmanager
async def open_storage(
    settings: AppSettings, credential: AsyncTokenCredential
) -> AsyncIterator[Storage | None]:
    """Yield the storage clients, or None when no storage account is configured."""
    if not settings.has_storage:
        yield None
        return
    from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415

    blobs, queue = _storage_clients(settings, credential)
    async with blobs, queue:
        try:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
        except AzureError as exc:
            raise storage_failure(settings, exc) from None
        yield Storage(blobs, queue)


def _storage_clients(
    settings: AppSettings, credential: AsyncTokenCredential
) -> tuple[BlobServiceClient, QueueClient]:
    """Return the blob and queue clients of the app's storage account, failing fast."""
    from azure.storage.blob.aio import BlobServiceClient  # noqa: PLC0415
    from azure.storage.queue import TextBase64EncodePolicy  # noqa: PLC0415
    from azure.storage.queue.aio import QueueClient  # noqa: PLC0415

    encode = TextBase64EncodePolicy()  # the Functions queue trigger expects base64 messages
    # The SDK's default backoff (15 s + 3^n, plus jitter) hangs a failing run for minutes;
    # these keyword arguments configure each client's own ExponentialRetry policy.
    retry: dict[str, Any] = {
        "initial_backoff": 0.5,
        "increment_base": 2,
        "retry_total": 2,
        "random_jitter_range": 0.25,
        "connection_timeout": 3,
    }
    if settings.storage:
        return (
            BlobServiceClient.from_connection_string(settings.storage, **retry),
            QueueClient.from_connection_string(
                settings.storage, settings.queue_name, message_encode_policy=encode, **retry
            ),
        )
    url = str(settings.storage_account_url)
    return (
        BlobServiceClient(url, credential=credential, **retry),
        QueueClient(
            url.replace(".blob.", ".queue."),
            settings.queue_name,
            credential=credential,
            message_encode_policy=encode,
            **retry,
        ),
    )


@dataclass(frozen=True, slots=True)
class App:
    """One invocation's runtime, settings and storage."""

    rt: Runtime
    settings: AppSettings
    storage: Storage | None


@asynccontextmanager
async def open_app(
    config: Config | None = None, env: Mapping[str, str] | None = None, *, locking: bool = True
) -> AsyncIterator[App]:
    """Build the clients from the app settings (managed identity in Azure) and close them after.

    *config* defaults to ``load_config()`` (``ROTATION_CONFIG``). With a storage account
    configured (and *locking*), targets are locked by blob leases; otherwise by nothing
    (``NullLock``) and storage is never contacted — for read-only commands.
    """
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    from rotation.lease import BlobLeaseLock  # noqa: PLC0415 — imports azure-storage

    settings = AppSettings.from_env(env)
    if not locking:
        settings = dataclasses.replace(settings, storage=None, storage_account_url=None)
    config = config or load_config()
    async with (
        azure_transport(settings.ca_file) as transport,
        DefaultAzureCredential(transport=transport) as credential,
        open_storage(settings, credential) as storage,
    ):
        lock = BlobLeaseLock(storage.blobs, container=settings.lock_container) if storage else None
        async with open_runtime(
            config, credential=credential, ca_file=settings.ca_file, lock=lock, transport=transport
        ) as rt:
            yield App(rt, settings, storage)
