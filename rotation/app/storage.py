"""The app's storage account: the blob service (per-target locks) and the fan-out queue.

Storage calls fail fast (seconds, not the SDK's minutes of backoff); a storage account that cannot
be used is an :class:`~rotation.errors.AppStorageError` naming the setting it came from.
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

    from rotation.config import AppSettings

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
