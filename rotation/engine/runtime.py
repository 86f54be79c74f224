"""The dependencies a run receives: built by the composition roots (CLI, Function App)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rotation.backends import AzureOptions, Lock, NullLock, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from rotation.backends import KeyVaultStore
    from rotation.config import Config

__all__ = ["Runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a rotation needs from outside: config, clients, lock, clock, policies."""

    config: Config
    store: KeyVaultStore
    http: httpx.AsyncClient
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    azure: AzureOptions = field(default_factory=AzureOptions)
    lock: Lock = field(default_factory=NullLock)
    clock: Callable[[], float] = time.time
    progress: dict[str, str] = field(default_factory=dict)
    """The step each running target is at (target → step), for reporting an interrupt."""
