"""What the Azure SDK clients of one process share: one transport (aiohttp session, TLS context)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.pipeline.transport import AioHttpTransport

__all__ = ["AzureOptions"]


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
