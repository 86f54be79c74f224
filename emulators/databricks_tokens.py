"""Databricks token routes: ``token/*``, ``token-management/*`` and on-behalf-of creation.

Each handler takes the workspace state, the request and the authenticated caller, and
returns JSON or raises `ApiError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.databricks_model import ApiError, Principal, public_token_info, token_info
from emulators.web import json_response, read_json_object

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from emulators.databricks_state import DatabricksState

__all__ = [
    "create_token",
    "delete_own_token",
    "list_own_tokens",
    "management_delete",
    "management_get",
    "management_list",
    "on_behalf_of",
]


def _lifetime(body: dict[str, Any]) -> int | None:
    raw = body.get("lifetime_seconds")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ApiError(400, "MALFORMED_REQUEST", "Could not parse request object: lifetime_seconds")
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            400, "MALFORMED_REQUEST", "Could not parse request object: lifetime_seconds"
        ) from None


def _comment_and_scopes(body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Read ``comment`` and ``scopes``; ``autoscope_enabled`` is accepted (a boolean) and unused."""
    comment = body.get("comment") or ""
    scopes = body.get("scopes") or []
    if not isinstance(comment, str):
        raise ApiError(400, "MALFORMED_REQUEST", "Could not parse request object: comment")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ApiError(400, "MALFORMED_REQUEST", "Could not parse request object: scopes")
    if not isinstance(body.get("autoscope_enabled", False), bool):
        raise ApiError(
            400, "MALFORMED_REQUEST", "Could not parse request object: autoscope_enabled"
        )
    return comment, tuple(scopes)


def _require_admin(caller: Principal) -> None:
    if not caller.admin:
        raise ApiError(403, "PERMISSION_DENIED", "Only Admins can access token management APIs.")


def _not_found(token_id: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Token with id {token_id} does not exist.")


async def create_token(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``POST /api/2.0/token/create``: a new PAT for the caller."""
    body = await read_json_object(request, empty_ok=True)
    comment, scopes = _comment_and_scopes(body)
    token = state.create_token(caller, caller, _lifetime(body), comment, scopes)
    return json_response(200, {"token_value": token.value, "token_info": public_token_info(token)})


async def list_own_tokens(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/token/list``: the caller's unexpired tokens (no use of them)."""
    del request
    state.require_token_permission(caller)
    tokens = state.tokens_owned_by(caller)
    return json_response(200, {"token_infos": [public_token_info(t) for t in tokens]})


async def delete_own_token(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``POST /api/2.0/token/delete``: revoke one of the caller's own tokens."""
    body = await read_json_object(request)
    token_id = body.get("token_id")
    if not isinstance(token_id, str) or not token_id:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: token_id")
    state.require_token_permission(caller)
    token = state.get(token_id)
    if token is None or token.owner is not caller:
        raise _not_found(token_id)
    state.revoke(token_id)
    return json_response(200, {})


async def management_list(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/token-management/tokens``: all tokens, filtered by creator."""
    _require_admin(caller)
    by_id = request.query_params.get("created_by_id")
    by_name = request.query_params.get("created_by_username")
    tokens = [
        t
        for t in state.all_tokens()
        if (not by_id or str(t.created_by.id) == by_id)
        and (not by_name or t.created_by.user_name == by_name)
    ]
    infos = [token_info(t, state.workspace_id) for t in tokens]
    return json_response(200, {"token_infos": infos})


async def management_get(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/token-management/tokens/{token_id}``."""
    _require_admin(caller)
    token_id: str = request.path_params["token_id"]
    token = state.get(token_id)
    if token is None:
        raise _not_found(token_id)
    return json_response(200, {"token_info": token_info(token, state.workspace_id)})


async def management_delete(
    state: DatabricksState, request: Request, caller: Principal
) -> Response:
    """``DELETE /api/2.0/token-management/tokens/{token_id}``."""
    _require_admin(caller)
    token_id: str = request.path_params["token_id"]
    if not state.revoke(token_id):
        raise _not_found(token_id)
    return json_response(200, {})


async def on_behalf_of(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``POST /api/2.0/token-management/on-behalf-of/tokens``: an admin mints for an SP."""
    _require_admin(caller)
    if not state.conf.obo_enabled:
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            "On-behalf-of token creation for service principals is not enabled for this workspace",
        )
    body = await read_json_object(request)
    application_id = body.get("application_id")
    if not isinstance(application_id, str) or not application_id:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing required field: application_id")
    owner = state.principal(application_id)
    if owner is None or not owner.in_workspace:
        raise ApiError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Service principal with application id {application_id} does not exist.",
        )
    comment, scopes = _comment_and_scopes(body)
    token = state.create_token(owner, caller, _lifetime(body), comment, scopes)
    info = token_info(token, state.workspace_id)
    return json_response(200, {"token_value": token.value, "token_info": info})
