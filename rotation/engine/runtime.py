"""The dependencies a run receives: built by the composition roots (CLI, Function App)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotation.backends.lock import Lock, NullLock
from rotation.backends.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from azure.core.pipeline.transport import AioHttpTransport

    from rotation.backends.keyvault import KeyVaultStore
    from rotation.config.models import Config

__all__ = ["AzureOptions", "Runtime"]


@dataclass(frozen=True, slots=True)
class AzureOptions:
    """The transport Azure SDK clients share (one aiohttp session and its TLS context).

    None means each client makes its own (the SDK default).
    """

    transport: AioHttpTransport | None = None
    """Its timeouts are the transport's own: a client ignores timeouts given to it when it did
    not build its transport."""

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments every Azure SDK client and credential takes from these."""
        return {"transport": self.transport} if self.transport else {}


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
