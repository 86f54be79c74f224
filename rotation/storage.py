"""Storage clients for the lock (blobs) and the fan-out queue, from the app's settings.

Calls fail fast (a few seconds, not the storage SDK's default minutes of backoff) and a storage
account that cannot be reached or used is reported as :class:`~rotation.errors.AppStorageError`
naming the app setting it came from and what to do.
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotation import errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueClient

    from rotation.appsettings import AppSettings

__all__ = ["Storage", "open_storage", "storage_failure"]


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
        blobs = BlobServiceClient.from_connection_string(settings.storage, **retry)
        queue = QueueClient.from_connection_string(
            settings.storage, settings.queue_name, message_encode_policy=encode, **retry
        )
    else:
        url = str(settings.storage_account_url)
        blobs = BlobServiceClient(url, credential=credential, **retry)
        queue = QueueClient(
            url.replace(".blob.", ".queue."),
            settings.queue_name,
            credential=credential,
            message_encode_policy=encode,
            **retry,
        )
    async with blobs, queue:
        try:
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()
        except AzureError as exc:
            raise storage_failure(settings, exc) from None
        yield Storage(blobs, queue)
