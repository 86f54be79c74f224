"""The Function App's settings (environment variables), read and checked in one place.

| setting | meaning | default |
|---|---|---|
| ``ROTATION_CONFIG`` | config: a TOML/JSON path or inline JSON | required |
| ``ROTATION_SCHEDULE`` | timer NCRONTAB (read by the host) | ``0 0 */6 * * *`` in the samples |
| ``AzureWebJobsStorage`` | storage for the lock and the fan-out queue | required in Azure |
| ``AzureWebJobsStorage__blobServiceUri`` / ``__queueServiceUri`` | identity-based storage: the
  service URIs (any cloud) | unset |
| ``AzureWebJobsStorage__accountName`` | identity-based storage in the public cloud, when the
  URIs are unset | unset |
| ``ROTATION_FANOUT_THRESHOLD`` | more due targets than this → one queue message each | ``20`` |
| ``ROTATION_QUEUE`` | the fan-out queue's name | ``pat-rotations`` |
| ``ROTATION_LOCK_CONTAINER`` | blob container holding the lock blobs | ``pat-rotator-locks`` |
| ``ROTATION_CA_FILE`` | CA bundle trusted besides the public roots (local emulators) | unset |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rotation.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["AppSettings"]


@dataclass(frozen=True, slots=True)
class AppSettings:
    """Settings of the Function App beyond the rotation config."""

    storage: str | None = None
    storage_account_url: str | None = None
    """The blob service's URI (identity-based storage)."""
    queue_service_url: str | None = None
    """The queue service's URI (identity-based storage); None: derived from the blob one."""
    fanout_threshold: int = 20
    queue_name: str = "pat-rotations"
    lock_container: str = "pat-rotator-locks"
    ca_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        """Read the settings from *env* (default ``os.environ``); ``ConfigError`` when invalid."""
        env = os.environ if env is None else env
        raw = env.get("ROTATION_FANOUT_THRESHOLD", "20").strip()
        if not raw.isdigit() or int(raw) < 1:
            msg = f"ROTATION_FANOUT_THRESHOLD must be a whole number ≥ 1, got {raw!r}."
            raise ConfigError(msg)
        ca_file = env.get("ROTATION_CA_FILE") or None
        if ca_file and not Path(ca_file).is_file():
            msg = (
                f"ROTATION_CA_FILE names {ca_file}, which is not a readable file. Point it at the "
                "emulators' CA bundle (python -m emulators serve writes one), or unset it."
            )
            raise ConfigError(msg)
        account = env.get("AzureWebJobsStorage__accountName")
        blob = env.get("AzureWebJobsStorage__blobServiceUri") or None
        queue = env.get("AzureWebJobsStorage__queueServiceUri") or None
        if account and not blob:  # the public cloud's endpoints; other clouds set the URIs
            blob = f"https://{account}.blob.core.windows.net"
            queue = queue or f"https://{account}.queue.core.windows.net"
        return cls(
            storage=env.get("AzureWebJobsStorage") or None,
            storage_account_url=blob,
            queue_service_url=queue,
            fanout_threshold=int(raw),
            queue_name=env.get("ROTATION_QUEUE", "pat-rotations"),
            lock_container=env.get("ROTATION_LOCK_CONTAINER", "pat-rotator-locks"),
            ca_file=ca_file,
        )

    @property
    def storage_setting_name(self) -> str:
        """Return the name of the app setting the storage account comes from."""
        if self.storage:
            return "AzureWebJobsStorage"
        return "AzureWebJobsStorage__blobServiceUri / __queueServiceUri / __accountName"

    @property
    def has_storage(self) -> bool:
        """Return whether a storage account is configured (lock and fan-out available)."""
        return bool(self.storage or self.storage_account_url)
