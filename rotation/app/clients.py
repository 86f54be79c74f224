"""The composition: build every real client a run needs, from the app settings and the config.

For the composition roots only (the CLI, the Function App's triggers, the sandbox and tests):
:func:`open_app` builds the shared Azure transport and credential, the app's storage account
(locks and the fan-out queue) and the :class:`~rotation.engine.runtime.Runtime` (Key Vault and HTTP
clients); everything else receives them. Heavy imports (Azure SDKs, httpx) happen inside these
functions, not at module import. Storage calls fail fast (seconds, not the SDK's minutes of
backoff), and a storage account that cannot be used is an
:class:`~rotation.errors.AppStorageError` naming the setting it came from and what to do.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation.app.storage import Storage, open_storage
from rotation.app.transport import azure_transport, http_client
from rotation.backends import (
    AzureOptions,
    BlobLeaseLock,
    KeyVaultStore,
    LocalFileLock,
    Lock,
    NullLock,
    RetryPolicy,
    key_vault_client,
)
from rotation.config import AppSettings, load_config
from rotation.engine import Runtime
from rotation.state import deployment_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline.transport import AioHttpTransport

    from rotation.config import Config

__all__ = ["App", "Storage", "azure_transport", "open_app", "open_runtime"]


async def _default_credential(
    stack: AsyncExitStack, transport: AioHttpTransport
) -> AsyncTokenCredential:
    """Return ``DefaultAzureCredential`` on *transport*, closed with *stack*."""
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    credential = DefaultAzureCredential(transport=transport)
    stack.push_async_callback(credential.close)
    return credential


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

    *credential*: ``DefaultAzureCredential`` by default. *ca_file*: a CA bundle trusted beside
    the public roots. *transport*: the shared Azure transport (default: a new one with
    *azure_timeout*). *http_timeout*: the Databricks and consumer calls' timeout.
    """
    retry = retry or RetryPolicy()
    async with AsyncExitStack() as stack:
        if transport is None:
            transport = await stack.enter_async_context(
                azure_transport(ca_file, read_timeout=azure_timeout)
            )
        azure = AzureOptions(transport=transport)
        credential = credential or await _default_credential(stack, transport)
        vault = key_vault_client(config.key_vault_url, credential, retry, azure)
        http = http_client(config, ca_file, http_timeout)
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


@dataclass(frozen=True, slots=True)
class App:
    """One invocation's runtime, settings and storage."""

    rt: Runtime
    settings: AppSettings
    storage: Storage | None


@asynccontextmanager
async def open_app(
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
    *,
    locking: bool = True,
    local_lock: bool = False,
) -> AsyncIterator[App]:
    """Build the clients from the app settings (managed identity in Azure) and close them after.

    *config* defaults to ``load_config()`` (``ROTATION_CONFIG``). With a storage account
    configured (and *locking*), targets are locked by blob leases. Without one, *local_lock*
    (the CLI) locks them by file on this machine; otherwise nothing locks them (``NullLock``):
    read-only commands, and the Function App, whose writing triggers then refuse to rotate
    (``App.storage`` is None). Without *locking* storage is never contacted.
    """
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    settings = AppSettings.from_env(env)
    if not locking:
        settings = dataclasses.replace(
            settings, storage=None, storage_account_url=None, queue_service_url=None
        )
    config = config or load_config()
    async with (
        azure_transport(settings.ca_file) as transport,
        DefaultAzureCredential(transport=transport) as credential,
        open_storage(settings, credential) as storage,
    ):
        lock: Lock | None = None
        if storage is not None:
            lock = BlobLeaseLock(storage.blobs, container=settings.lock_container)
        elif locking and local_lock:
            lock = LocalFileLock(deployment_of(config.key_vault_url))
        async with open_runtime(
            config, credential=credential, ca_file=settings.ca_file, lock=lock, transport=transport
        ) as rt:
            yield App(rt, settings, storage)
