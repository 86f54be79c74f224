"""A per-target lock across all triggers: a blob lease in the app's storage account (I5).

Each target has a blob ``<container>/<target>.lock``. Holding the lock means holding a lease on
it (``duration`` seconds, renewed in the background every ``duration / 3`` and at every step
boundary). A second holder gets 409 ``LeaseAlreadyPresent`` → :class:`BusyError`. When renewing
fails (the lease expired or was broken) the lease is *lost*: the next step boundary raises
:class:`LockLostError` and the rotation stops before its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError

from rotation import errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient

__all__ = ["BlobLeaseLock"]

log = logging.getLogger("rotation")

_CONFLICT = 409
_GONE = frozenset({409, 412})  # the lease was broken, expired and taken, or changed


class _BlobLease:
    """A held blob lease; ``check`` renews it and raises once it is lost.

    A renewal that fails for a transient reason (network, 5xx) does not lose the lease by
    itself; the lease counts as lost once no renewal has succeeded for most of its duration.
    """

    def __init__(self, lease: BlobLeaseClient, target: str, duration: float) -> None:
        self._lease = lease
        self._target = target
        self._duration = duration
        self._renewed = time.monotonic()
        self.lost = False

    async def renew(self) -> None:
        if self.lost:
            return
        try:
            await self._lease.renew()
        except HttpResponseError as exc:
            if exc.status_code in _GONE:
                self._lose(f"{exc.status_code} {exc.reason}")
                return
            self._stale(f"{exc.status_code} {exc.reason}")
        except AzureError as exc:
            self._stale(type(exc).__name__)
        else:
            self._renewed = time.monotonic()

    def _stale(self, why: str) -> None:
        if time.monotonic() - self._renewed > self._duration * 0.8:
            self._lose(f"no renewal for most of the lease ({why})")
        else:
            log.info("target=%s lock renewal failed, will retry: %s", self._target, why)

    def _lose(self, why: str) -> None:
        self.lost = True
        log.warning("target=%s lock lost: %s", self._target, why)

    async def check(self) -> None:
        await self.renew()
        if self.lost:
            msg = (
                f"The lock of target {self._target} was lost (its blob lease expired or was "
                "broken); the run stopped at a step boundary and the next run resumes it."
            )
            raise errors.LockLostError(msg)


class BlobLeaseLock:
    """Per-target blob leases in one container of a storage account."""

    def __init__(
        self,
        service: BlobServiceClient,
        *,
        container: str = "pat-rotator-locks",
        duration: int = 60,
    ) -> None:
        self._service = service
        self._container = container
        self._duration = duration
        self._ready = False
        self.description = f"blob-lease lock in container {container!r} of the storage account"
        self.exclusive = True

    async def _blob(self, target: str) -> BlobClient:
        container = self._service.get_container_client(self._container)
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
            self._ready = True
        blob = container.get_blob_client(f"{target}.lock")
        with contextlib.suppress(ResourceExistsError):
            await blob.upload_blob(b"", overwrite=False)
        return blob

    @asynccontextmanager
    async def hold(self, target: str) -> AsyncIterator[_BlobLease]:
        """Hold *target*'s lease for the block; ``BusyError`` when another run holds it."""
        try:
            blob = await self._blob(target)
            client = await blob.acquire_lease(lease_duration=self._duration)
        except HttpResponseError as exc:
            if exc.status_code == _CONFLICT:
                msg = f"Target {target} is being rotated by another run right now; try again later."
                raise errors.BusyError(msg) from None
            msg = (
                f"Could not take the lock of target {target} ({exc.status_code} {exc.reason}). "
                "Check the app's identity may read and write blobs in its storage account."
            )
            raise errors.AppStorageError(msg, transient=(exc.status_code or 0) >= 500) from None  # noqa: PLR2004
        except AzureError as exc:
            msg = (
                f"Could not reach the app's storage account (AzureWebJobsStorage) to lock target "
                f"{target} ({type(exc).__name__}). Locally: start Azurite, or unset the setting "
                "to run without a lock."
            )
            raise errors.AppStorageError(msg) from None
        lease = _BlobLease(client, target, self._duration)
        renewer = asyncio.create_task(self._keep(lease))
        try:
            yield lease
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
            if not lease.lost:
                with contextlib.suppress(AzureError):
                    await client.release()

    async def _keep(self, lease: _BlobLease) -> None:
        """Renew in the background for steps that outlast a third of the lease."""
        while not lease.lost:
            await asyncio.sleep(self._duration / 3)
            with contextlib.suppress(Exception):  # renew() reports; the loop must live on
                await lease.renew()
