"""Databricks workspace emulator: token, token-management, SCIM, permissions and OAuth routes.

Every ``/api`` route authenticates the caller (PAT, Entra token for Azure Databricks, or a
token from this workspace's ``/oidc/v1/token``) before its handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators import databricks_admin as admin
from emulators import databricks_tokens as tokens
from emulators.databricks_auth import authenticate, oauth_metadata, oidc_token
from emulators.databricks_model import ApiError, DatabricksConf, Principal, Token
from emulators.databricks_state import DatabricksState
from emulators.web import BadBodyError, json_response, service_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "DatabricksConf",
    "DatabricksState",
    "Principal",
    "Token",
    "build_databricks_app",
    "databricks_error_body",
]

Handler = Callable[[DatabricksState, Request, Principal], Awaitable[Response]]

_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "NOT_IMPLEMENTED",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "BAD_GATEWAY",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OAUTH_ERRORS = {
    400: ("invalid_request", "Invalid request"),
    401: ("invalid_client", "Client authentication failed"),
    429: ("invalid_request", "Temporarily throttled, too many requests"),
    503: ("temporarily_unavailable", "The service is temporarily unavailable"),
}


def databricks_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return a Databricks-shaped error body (OAuth-shaped under ``/oidc``)."""
    if path.startswith("/oidc"):
        error, text = _OAUTH_ERRORS.get(status, ("server_error", f"HTTP {status}"))
        return {"error": error, "error_description": text}
    code = _CODES.get(status, "UNKNOWN")
    return {
        "error_code": code,
        "message": f"{code.replace('_', ' ').capitalize()} (HTTP {status}).",
    }


def _api(state: DatabricksState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            caller = authenticate(state, request)
            return await handler(state, request, caller)
        except ApiError as exc:
            return json_response(exc.status, exc.body(), exc.headers)
        except BadBodyError as exc:
            return json_response(400, {"error_code": "MALFORMED_REQUEST", "message": str(exc)})

    return endpoint


def build_databricks_app(state: DatabricksState) -> Starlette:
    """Build the workspace ASGI app for ``state`` (without the fault/log middleware)."""

    def api(path: str, handler: Handler, *methods: str) -> list[Route]:
        routes = [Route(f"/api/2.0/{path}", _api(state, handler), methods=list(methods))]
        if path.startswith(("token-management/", "permissions/")):
            routes.append(
                Route(f"/api/2.0/preview/{path}", _api(state, handler), methods=list(methods))
            )
        return routes

    async def token_endpoint(request: Request) -> Response:
        return await oidc_token(state, request)

    return service_app(
        [
            *api("token/create", tokens.create_token, "POST"),
            *api("token/list", tokens.list_own_tokens, "GET"),
            *api("token/delete", tokens.delete_own_token, "POST"),
            *api("token-management/tokens", tokens.management_list, "GET"),
            *api("token-management/tokens/{token_id}", tokens.management_get, "GET"),
            *api("token-management/tokens/{token_id}", tokens.management_delete, "DELETE"),
            *api("token-management/on-behalf-of/tokens", tokens.on_behalf_of, "POST"),
            *api("preview/scim/v2/Me", admin.me, "GET"),
            *api("permissions/authorization/tokens", admin.get_permissions, "GET"),
            *api("permissions/authorization/tokens", admin.update_permissions, "PATCH", "PUT"),
            *api("workspace-conf", admin.get_conf, "GET"),
            *api("workspace-conf", admin.patch_conf, "PATCH"),
            Route("/oidc/v1/token", token_endpoint, methods=["POST"]),
            Route("/oidc/.well-known/oauth-authorization-server", oauth_metadata, methods=["GET"]),
        ],
        databricks_error_body,
    )
