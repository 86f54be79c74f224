"""Storage clients for the lock (blobs) and the fan-out queue, from the app's settings."""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from azure.core.credentials_async import AsyncTokenCredential
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueClient

    from rotation.appsettings import AppSettings

__all__ = ["Storage", "open_storage"]


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
    from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415
    from azure.storage.blob.aio import BlobServiceClient  # noqa: PLC0415
    from azure.storage.queue import TextBase64EncodePolicy  # noqa: PLC0415
    from azure.storage.queue.aio import QueueClient  # noqa: PLC0415

    encode = TextBase64EncodePolicy()  # the Functions queue trigger expects base64 messages
    retry: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.5}  # never hang minutes
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
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
        yield Storage(blobs, queue)
