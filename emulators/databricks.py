"""Databricks workspace emulator: token, token-management, SCIM, permissions and OAuth routes.

Also the service-principal secrets proxy (`emulators.databricks_secrets`), whose secrets
authenticate at ``/oidc/v1/token``.

Every ``/api`` route authenticates the caller (PAT, Entra token for Azure Databricks, or a
token from this workspace's ``/oidc/v1/token``) before its handler runs, and refuses a scoped
PAT outside its scopes. The API scope of each route:

=========================================================  ===================================
route                                                      scope
=========================================================  ===================================
``token/create``, ``token/list``, ``token/delete``         ``authentication`` [C]
``token-management/*`` (with on-behalf-of)                 ``authentication`` [I]
``permissions/authorization/tokens`` (+ permissionLevels)  ``access-management`` [docs page]
``preview/scim/v2/Me``                                     any scope [docs page]
``preview/scim/v2/ServicePrincipals``                      ``access-management`` [I]
``workspace-conf``                                         ``all-apis`` only (none found) [I]
``accounts/servicePrincipals/{id}/credentials/secrets``    ``all-apis`` only (none found) [I]
=========================================================  ===================================

``all-apis`` reaches every route, an unscoped PAT too. "docs page" is Databricks' API scope
list (docs.databricks.com/api/workspace/scopes), which names the permission operations under
``access-management`` and lists SCIM ``Me`` under every scope it shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators import databricks_admin as admin
from emulators import databricks_secrets as sp_secrets
from emulators import databricks_tokens as tokens
from emulators.databricks_auth import authenticate, host_metadata, oauth_metadata, oidc_token
from emulators.databricks_model import ALL_APIS, ApiError, DatabricksConf, Principal, Token
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

_AUTHENTICATION = "authentication"
_ACCESS_MANAGEMENT = "access-management"
_ANY_SCOPE = None

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


def _api(
    state: DatabricksState, handler: Handler, scope: str | None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            caller = authenticate(state, request, scope)
            return await handler(state, request, caller)
        except ApiError as exc:
            return json_response(exc.status, exc.body(), exc.headers)
        except BadBodyError as exc:
            return json_response(400, {"error_code": "MALFORMED_REQUEST", "message": str(exc)})

    return endpoint


def build_databricks_app(state: DatabricksState) -> Starlette:
    """Build the workspace ASGI app for ``state`` (without the fault/log middleware)."""

    def api(path: str, handler: Handler, scope: str | None, *methods: str) -> list[Route]:
        endpoint = _api(state, handler, scope)
        routes = [Route(f"/api/2.0/{path}", endpoint, methods=list(methods))]
        if path.startswith(("token-management/", "permissions/")):
            routes.append(Route(f"/api/2.0/preview/{path}", endpoint, methods=list(methods)))
        return routes

    async def token_endpoint(request: Request) -> Response:
        return await oidc_token(state, request)

    async def config_endpoint(request: Request) -> Response:
        return await host_metadata(state, request)

    tokens_acl = "permissions/authorization/tokens"
    return service_app(
        [
            *api("token/create", tokens.create_token, _AUTHENTICATION, "POST"),
            *api("token/list", tokens.list_own_tokens, _AUTHENTICATION, "GET"),
            *api("token/delete", tokens.delete_own_token, _AUTHENTICATION, "POST"),
            *api("token-management/tokens", tokens.management_list, _AUTHENTICATION, "GET"),
            *api(
                "token-management/tokens/{token_id}",
                tokens.management_get,
                _AUTHENTICATION,
                "GET",
            ),
            *api(
                "token-management/tokens/{token_id}",
                tokens.management_delete,
                _AUTHENTICATION,
                "DELETE",
            ),
            *api(
                "token-management/on-behalf-of/tokens",
                tokens.on_behalf_of,
                _AUTHENTICATION,
                "POST",
            ),
            *api("preview/scim/v2/Me", admin.me, _ANY_SCOPE, "GET"),
            *api(
                "preview/scim/v2/ServicePrincipals",
                admin.service_principals,
                _ACCESS_MANAGEMENT,
                "GET",
            ),
            *api(tokens_acl, admin.get_permissions, _ACCESS_MANAGEMENT, "GET"),
            *api(tokens_acl, admin.update_permissions, _ACCESS_MANAGEMENT, "PATCH", "PUT"),
            *api(
                f"{tokens_acl}/permissionLevels",
                admin.permission_levels,
                _ACCESS_MANAGEMENT,
                "GET",
            ),
            *api("workspace-conf", admin.get_conf, ALL_APIS, "GET"),
            *api("workspace-conf", admin.patch_conf, ALL_APIS, "PATCH"),
            *api(sp_secrets.PATH, sp_secrets.create_secret, ALL_APIS, "POST"),
            *api(sp_secrets.PATH, sp_secrets.list_secrets, ALL_APIS, "GET"),
            *api(f"{sp_secrets.PATH}/{{secret_id}}", sp_secrets.delete_secret, ALL_APIS, "DELETE"),
            Route("/oidc/v1/token", token_endpoint, methods=["POST"]),
            Route("/oidc/.well-known/oauth-authorization-server", oauth_metadata, methods=["GET"]),
            Route("/.well-known/databricks-config", config_endpoint, methods=["GET"]),
        ],
        databricks_error_body,
    )
