"""Small helpers shared by the HTTP adapters (Databricks, Prequel): errors in, facts out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["is_transient_status", "json_body", "retry_after"]

_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """Return whether an HTTP status means "try again later"."""
    return status in _TRANSIENT


def retry_after(response: httpx.Response) -> float | None:
    """Return the integer-seconds ``Retry-After`` of *response*, or None when absent or a date."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def json_body(response: httpx.Response) -> dict[str, Any]:
    """Return the JSON object body of *response*, or an empty dict when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
