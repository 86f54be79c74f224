"""A per-target lock on this machine only, for the CLI when no storage account is configured.

Two CLI runs on one machine never rotate one target at once: each holds a file lock
(``filelock``) named after the vault and the target, in ``PAT_ROTATOR_LOCK_DIR`` (default: a
``pat-rotator-locks`` folder in the temporary directory). Nothing is excluded across machines,
so the lock is not ``exclusive``: the sweep keeps its minimum orphan age, and every run says
that there is no lock across machines. The Function App never runs on this lock: without its
storage account it refuses to rotate.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from rotation import errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["LOCK_DIR_SETTING", "LocalFileLock"]

LOCK_DIR_SETTING = "PAT_ROTATOR_LOCK_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _Held:
    async def check(self) -> None:
        """Do nothing: a file lock held by this process is not lost while it lives."""


class LocalFileLock:
    """Per-target file locks in one folder of this machine (one vault's targets)."""

    exclusive = False
    description = (
        "a file lock on this machine only (AzureWebJobsStorage is not set): no lock across "
        "machines — never rotate one target from two machines at once"
    )

    def __init__(self, vault: str, folder: Path | None = None) -> None:
        where = folder or Path(
            os.environ.get(LOCK_DIR_SETTING) or Path(tempfile.gettempdir()) / "pat-rotator-locks"
        )
        self._folder = where
        self._vault = _UNSAFE.sub("_", vault)

    @asynccontextmanager
    async def hold(self, target: str) -> AsyncIterator[_Held]:
        """Hold *target*'s file lock for the block; ``BusyError`` when another run holds it."""
        path = self._folder / f"{self._vault}--{_UNSAFE.sub('_', target)}.lock"
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(path)
            lock.acquire(blocking=False)
        except filelock.Timeout:
            msg = f"Target {target} is being rotated by another run on this machine; try later."
            raise errors.BusyError(msg) from None
        except OSError as exc:
            msg = (
                f"Could not take the file lock {path} for target {target} ({exc.strerror}); set "
                f"{LOCK_DIR_SETTING} to a folder you may write."
            )
            raise errors.ConfigError(msg) from None
        try:
            yield _Held()
        finally:
            lock.release()
