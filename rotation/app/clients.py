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

import contextlib
import dataclasses
import functools
import ipaddress
import logging
import os
import random
import ssl
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from rotation import errors
from rotation.backends.azure import AzureOptions
from rotation.backends.lock import Lock, NullLock
from rotation.backends.retry import RetryPolicy
from rotation.config.appsettings import AppSettings
from rotation.config.models import load_config
from rotation.engine.runtime import Runtime
from rotation.state import deployment_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import httpx
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.core.pipeline.policies import AsyncHTTPPolicy
    from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueClient

    from rotation.config.models import Config

__all__ = [
    "App",
    "Storage",
    "azure_transport",
    "is_loopback",
    "open_app",
    "open_runtime",
    "open_storage",
    "storage_failure",
    "trusting",
]

USER_AGENT = "pat-rotator/0.1"
_THROTTLED = 429
_log = logging.getLogger(__name__)


def is_loopback(url: str) -> bool:
    """Return whether *url* points at this machine (the local emulators)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _environment_matters() -> bool:
    """Return whether aiohttp's ``trust_env`` would find anything: proxy variables or a netrc."""
    import urllib.request  # noqa: PLC0415

    if urllib.request.getproxies_environment():
        return True
    netrc = os.environ.get("NETRC")
    candidates = [Path(netrc)] if netrc else [Path.home() / ".netrc", Path.home() / "_netrc"]
    with contextlib.suppress(OSError, RuntimeError):  # no home folder: no netrc either
        return any(path.is_file() for path in candidates)
    return False


def trusting(context: ssl.SSLContext, ca_file: str | None) -> ssl.SSLContext:
    """Return *context* trusting the CA bundle *ca_file* too (``ROTATION_CA_FILE``), if given.

    The bundle is added to the roots *context* already trusts, never a replacement for them. A
    file that holds no PEM certificate is a ``ConfigError`` naming the setting.
    """
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            msg = (
                f"ROTATION_CA_FILE names {ca_file}, which is not a CA bundle in PEM form "
                f"({getattr(exc, 'reason', None) or type(exc).__name__}): point it at the "
                "emulators' ca.pem (python -m emulators serve writes one), or unset it."
            )
            raise errors.ConfigError(msg) from None
    return context


@asynccontextmanager
async def azure_transport(
    ca_file: str | None = None, *, read_timeout: float | None = None
) -> AsyncIterator[AioHttpTransport]:
    """Yield one aiohttp transport for every Azure client of a run, trusting *ca_file* too.

    Sharing it keeps one connection pool and one TLS context per run instead of one session per
    credential (and, with ``connection_verify``, one TLS context per request). *read_timeout* is its
    connect and read timeout in seconds (azure-core's defaults when None); the clients that use
    it cannot change it. The session trusts the environment (proxy variables, a netrc file) only
    when there is something to find there: aiohttp looks both up in a worker thread on every
    request otherwise.
    """
    import aiohttp  # noqa: PLC0415
    from azure.core.pipeline.transport import AioHttpTransport  # noqa: PLC0415

    context = trusting(ssl.create_default_context(), ca_file)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=100), trust_env=_environment_matters()
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
    variables or a developer login locally). *ca_file* adds a CA bundle (the emulators' CA) to
    the public roots.
    *transport* is the shared Azure transport (default: a new one from :func:`azure_transport`
    with *azure_timeout*; a given transport keeps its own timeouts). *http_timeout* is the
    Databricks and consumer calls' timeout.
    """
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    from rotation.backends.keyvault import KeyVaultStore  # noqa: PLC0415

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
    """Return the vault's client, retrying as *retry* says (see `_key_vault_retry`)."""
    from azure.keyvault.secrets.aio import SecretClient  # noqa: PLC0415

    return SecretClient(
        config.key_vault_url,
        credential,
        verify_challenge_resource=not is_loopback(config.key_vault_url),
        retry_policy=_key_vault_retry()(retry),
        user_agent=USER_AGENT,
        **azure.client_kwargs(),
    )


def _throttle_wait(
    policy: RetryPolicy, retry_after: float | None, throttled: int, waited: float
) -> float | None:
    """Return how long to wait before sending a request Key Vault throttled again, or None.

    *throttled* counts the 429s in a row so far, *waited* the seconds already waited for them.
    ``Retry-After`` when given (above ``max_retry_after``: None, give up); otherwise, as Key Vault
    sends none, a wait doubling from ``throttle_wait_initial`` to ``throttle_wait_max``, each
    50-100 % of that. None once the waits would pass ``throttle_timeout`` in all.
    """
    if retry_after is not None:
        wait = retry_after if retry_after <= policy.max_retry_after else None
    else:
        ceiling = min(policy.throttle_wait_max, policy.throttle_wait_initial * 2 ** (throttled - 1))
        wait = float(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 # nosec B311 - jitter
    if wait is None or waited + wait > policy.throttle_timeout:
        return None
    return wait


@functools.cache
def _key_vault_retry() -> Callable[[RetryPolicy], AsyncHTTPPolicy[Any, Any]]:
    """Return the class of the vault client's retry policy (azure-core is imported on first use).

    Everything but 429 is azure-core's retry policy as *retry* configures it: ``attempts - 1``
    retries, exponential backoff from ``wait_initial`` up to ``wait_max``, ``Retry-After``
    honoured. A 429 is Key Vault's throttling (300 secret creates and 4,000 other transactions per
    10 s per vault): the request was not processed, so it is sent again whatever its method, as
    :func:`_throttle_wait` says — short waits use each window's capacity as it frees, and jitter
    keeps the senders from hammering in step (429s do not count against the limit).
    """
    from azure.core.pipeline.policies import AsyncRetryPolicy  # noqa: PLC0415

    class KeyVaultRetryPolicy(AsyncRetryPolicy[Any, Any]):
        def __init__(self, policy: RetryPolicy) -> None:
            super().__init__(
                retry_total=max(0, policy.attempts - 1),
                retry_backoff_factor=policy.wait_initial,
                retry_backoff_max=policy.wait_max,
            )
            self.policy = policy

        def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
            if response.http_response.status_code == _THROTTLED:
                return False  # sent again by send(), on its own budget
            return bool(super().is_retry(settings, response))

        async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
            transport = cast("AsyncHttpTransport[Any, Any]", request.context.transport)
            throttled, waited = 0, 0.0
            while True:
                response = await super().send(request)
                if response.http_response.status_code != _THROTTLED:
                    return response
                throttled += 1
                retry_after = self.get_retry_after(response)
                wait = _throttle_wait(self.policy, retry_after, throttled, waited)
                if wait is None:
                    return response
                waited += wait
                _log.info(
                    "Key Vault throttled a request (429, %d in a row); sending it again in %.1f s",
                    throttled,
                    wait,
                )
                await transport.sleep(wait)

    return KeyVaultRetryPolicy


def _http_client(config: Config, ca_file: str | None, timeout: float) -> httpx.AsyncClient:
    """Return the HTTP client for Databricks and the consumers: pools per host, one TLS context.

    Every host's pools (:class:`~rotation.backends.http.HostPools`) share the one TLS context
    built here: what httpx trusts by default (certifi, or ``SSL_CERT_FILE``), plus *ca_file*.
    """
    import httpx  # noqa: PLC0415

    from rotation.backends.http import HostPools  # noqa: PLC0415

    context = trusting(httpx.create_ssl_context(verify=True, trust_env=True), ca_file)
    limits = httpx.Limits(max_connections=max(10, config.concurrency * 2))
    return httpx.AsyncClient(
        verify=context,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=limits,
        transport=HostPools(ssl_context=context, limits=limits),
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

    try:
        blobs, queue = _storage_clients(settings, credential)
    except ValueError:  # the SDKs' words for a malformed connection string; never its value
        msg = (
            f"{settings.storage_setting_name} is not a usable storage account setting: give a "
            "connection string (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;…), "
            "UseDevelopmentStorage=true for Azurite, or https:// service URIs; or unset it to run "
            "without a lock."
        )
        raise errors.ConfigError(msg) from None
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
            settings.queue_service_url or url.replace(".blob.", ".queue."),
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

    from rotation.backends.lease import BlobLeaseLock  # noqa: PLC0415 — imports azure-storage
    from rotation.backends.local_lock import LocalFileLock  # noqa: PLC0415

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
