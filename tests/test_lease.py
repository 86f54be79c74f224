"""The blob-lease lock against a real Azurite: busy, lost, and transient renewal failures."""

from __future__ import annotations

import re

import pytest
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from rotation.backends.lease import BlobLeaseLock, _BlobLease
from rotation.errors import BusyError, LockLostError
from tests.azurite import _free_port


async def test_a_second_holder_is_told_busy(azurite) -> None:  # type: ignore[no-untyped-def]
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        lock = BlobLeaseLock(blobs, container="lease-test")
        async with lock.hold("t1") as lease:
            await lease.check()
            with pytest.raises(BusyError, match="another run"):
                async with lock.hold("t1"):
                    pass
        async with lock.hold("t1") as again:  # released at the end of the block
            await again.check()


async def test_a_broken_lease_is_lost_at_the_next_check(azurite) -> None:  # type: ignore[no-untyped-def]
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        lock = BlobLeaseLock(blobs, container="lease-test")
        async with lock.hold("t2") as lease:
            blob = blobs.get_blob_client("lease-test", "t2.lock")
            await BlobLeaseClient(blob).break_lease(lease_break_period=0)
            with pytest.raises(LockLostError, match="was lost"):
                await lease.check()


async def test_an_unreachable_storage_does_not_lose_a_fresh_lease(azurite) -> None:  # type: ignore[no-untyped-def]
    dead = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{_free_port()}", azurite.connection_string)
    async with BlobServiceClient.from_connection_string(dead, retry_total=0) as blobs:
        client = BlobLeaseClient(blobs.get_blob_client("c", "t3.lock"))
        lease = _BlobLease(client, "t3", duration=60)
        await lease.check()  # the renewal fails (connection refused) but the lease is fresh
        assert not lease.lost
        stale = _BlobLease(client, "t3", duration=0)
        with pytest.raises(LockLostError):
            await stale.check()
