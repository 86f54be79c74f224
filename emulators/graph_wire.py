"""Graph's wire format: error bodies, timestamps, passwordCredential, directory objects."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from emulators.graph_state import GraphError
from emulators.web import json_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from emulators.entra_model import PasswordCredential, ServicePrincipal

__all__ = [
    "NEVER",
    "ROOT",
    "error_response",
    "graph_error_body",
    "inner_error",
    "parse_time",
    "password_json",
    "sp_json",
    "stamp",
]

ROOT = "https://graph.microsoft.com/v1.0"
NEVER = "2299-12-31T23:59:59Z"
"""``endDateTime`` shown for a seeded secret that never expires (the old portal's "Never") [I]."""
_GENERIC = {
    400: ("BadRequest", "The request is invalid."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "The requested resource does not exist."),
    405: ("Request_BadRequest", "The HTTP method is not allowed on this resource."),
    409: ("Directory_ConcurrencyViolation", "Another operation is in progress on the object."),
    429: ("TooManyRequests", "Too many requests. Please retry after the time in Retry-After."),
    500: ("InternalServerError", "An internal server error occurred."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The gateway timed out."),
}


def inner_error(client_request_id: str | None = None) -> dict[str, str]:
    """Return an error's ``innerError``: date, request id, the client's request id (echoed)."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": client_request_id or str(uuid.uuid4()),
    }


def graph_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return a Graph-shaped error body for ``status`` (injected faults, 404/405)."""
    del path
    code, message = _GENERIC.get(status, ("UnknownError", f"HTTP {status}."))
    return {"error": {"code": code, "message": message, "innerError": inner_error()}}


def error_response(request: Request, exc: GraphError) -> Response:
    """Answer a `GraphError` in Graph's error shape."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    body["innerError"] = inner_error(request.headers.get("client-request-id"))
    return json_response(exc.status, {"error": body}, exc.headers)


def stamp(epoch: float | None) -> str:
    """Render virtual epoch seconds as Graph's UTC ``dateTimeOffset`` (None: never)."""
    if epoch is None:
        return NEVER
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(raw: object, name: str) -> float | None:
    """Parse an ISO 8601 ``dateTimeOffset`` (naive: UTC) to epoch seconds; 400 if unreadable."""
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        parsed = None
    if parsed is None or not isinstance(raw, str):
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid value specified for property '{name}' of resource 'PasswordCredential'.",
        )
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def password_json(credential: PasswordCredential, *, with_secret: bool) -> dict[str, Any]:
    """Render a client secret as Graph's ``passwordCredential``."""
    return {
        "customKeyIdentifier": None,
        "displayName": credential.display_name,
        "endDateTime": stamp(credential.end),
        "hint": credential.hint,
        "keyId": credential.key_id,
        "secretText": credential.secret_text if with_secret else None,
        "startDateTime": stamp(credential.start),
    }


def sp_json(sp: ServicePrincipal) -> dict[str, Any]:
    """Render a service principal as the directory object Graph lists (e.g. among owners)."""
    return {
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": sp.object_id,
        "appId": sp.client_id,
        "displayName": sp.display_name,
        "servicePrincipalType": sp.kind,
    }
