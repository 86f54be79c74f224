"""The per-target lock seam (invariant I5: one writer per target).

A lock is held for a whole run of one target; ``await lease.check()`` is called at every step
boundary and raises ``LockLostError`` when the lock was lost (for a blob lease: renewing it
failed), so the run stops before its next write.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

__all__ = ["Lease", "Lock", "NullLock"]


class Lease(Protocol):
    """A held lock."""

    async def check(self) -> None:
        """Raise ``LockLostError`` if the lock is no longer held (may extend it)."""
        ...


class Lock(Protocol):
    """Hands out per-target leases."""

    description: str
    exclusive: bool
    """True when holding a lease really excludes every other run (not so for ``NullLock``)."""

    def hold(self, target: str) -> AbstractAsyncContextManager[Lease]:
        """Hold *target*'s lock for the block (an async context manager); ``BusyError`` if taken."""
        ...


class _NoLease:
    async def check(self) -> None:
        return None


class NullLock:
    """No lock at all: for single-process use where nothing else writes (says so in reports)."""

    description = "no lock (storage not configured): do not run two rotations of a target at once"
    exclusive = False

    @asynccontextmanager
    async def hold(self, target: str) -> AsyncIterator[Lease]:
        """Yield a lease that is never lost."""
        del target
        yield _NoLease()
