"""Small request/response helpers shared by the emulator apps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from starlette.requests import Request
    from starlette.routing import BaseRoute

__all__ = [
    "BadBodyError",
    "base_url",
    "json_response",
    "no_content",
    "read_form",
    "read_json_object",
    "service_app",
]


class BadBodyError(ValueError):
    """The request body is not what the route expects."""


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer ``body`` as JSON with ``status``."""
    return JSONResponse(body, status_code=status, headers=headers)


def no_content() -> Response:
    """Answer 204 without a body."""
    return Response(status_code=204)


def base_url(request: Request) -> str:
    """Return ``https://host:port`` as the client addressed this server (no trailing slash)."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def read_json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """Parse the body as a JSON object; an empty body is ``{}`` when ``empty_ok``."""
    raw = await request.body()
    if not raw.strip():
        if empty_ok:
            return {}
        raise BadBodyError("the request body is empty; a JSON object is required")
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBodyError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadBodyError("the request body must be a JSON object")
    return parsed


async def read_form(request: Request) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (first value of each field)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}


def service_app(
    routes: Sequence[BaseRoute], error_body: Callable[[int, str], dict[str, Any]]
) -> Starlette:
    """Build a Starlette app whose 404/405 answers use the service's own error shape."""

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return json_response(status, error_body(status, request.url.path))

    return Starlette(routes=routes, exception_handlers={404: http_error, 405: http_error})
