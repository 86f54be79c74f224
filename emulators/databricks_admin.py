"""Databricks identity and admin routes: SCIM ``Me``, token permissions and workspace-conf."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from emulators.databricks_model import ApiError, Principal
from emulators.web import json_response, no_content, read_json_object

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from emulators.databricks_state import DatabricksState

__all__ = [
    "get_conf",
    "get_permissions",
    "me",
    "patch_conf",
    "permission_levels",
    "service_principals",
    "update_permissions",
]

_SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
_SCIM_WORKSPACE = "urn:ietf:params:scim:schemas:extension:workspace:2.0:User"
_CONF_KEYS = ("enableTokensConfig", "maxTokenLifetimeDays")
_MAX_LIFETIME_DAYS = 730


def _require_admin(caller: Principal, what: str) -> None:
    if not caller.admin:
        raise ApiError(403, "PERMISSION_DENIED", f"Only Admins can access {what}.")


async def me(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/preview/scim/v2/Me``: the caller as a SCIM user."""
    del state, request
    groups = [{"display": "admins", "type": "direct", "value": "admins"}] if caller.admin else []
    body: dict[str, Any] = {
        "id": str(caller.id),
        "userName": caller.user_name,
        "displayName": caller.display_name,
        "active": True,
        "schemas": [_SCIM_USER, _SCIM_WORKSPACE],
        "emails": [] if caller.application_id else [{"value": caller.user_name, "primary": True}],
        "groups": groups,
    }
    if caller.application_id:
        body["externalId"] = caller.application_id
    return json_response(200, body)


_FILTER = re.compile(r'^\s*applicationId\s+eq\s+"?([^"\s]+)"?\s*$', re.IGNORECASE)


async def service_principals(
    state: DatabricksState, request: Request, caller: Principal
) -> Response:
    """``GET /api/2.0/preview/scim/v2/ServicePrincipals?filter=applicationId eq "…"``.

    A SCIM ``ListResponse`` [C: databricks-sdk-py ``ServicePrincipalsAPI.list``]; only the
    ``applicationId eq`` filter is served, and only admins may ask (inferred).
    """
    _require_admin(caller, "service principals")
    raw = request.query_params.get("filter", "")
    found = _FILTER.match(raw)
    if raw and found is None:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter: {raw[:64]}")
    wanted = found.group(1) if found else None
    sps = [
        sp
        for sp in state.service_principals()
        if sp.in_workspace and (wanted is None or sp.application_id == wanted)
    ]
    resources = [
        {
            "id": str(sp.id),
            "applicationId": sp.application_id,
            "displayName": sp.display_name,
            "active": True,
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        }
        for sp in sps
    ]
    return json_response(
        200,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        },
    )


def _acl(state: DatabricksState) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "group_name": "admins",
            "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": False}],
        },
        *(
            {**entry, "all_permissions": [{"permission_level": "CAN_USE", "inherited": False}]}
            for entry in state.other_acl
        ),
    ]
    entries.extend(
        {
            "service_principal_name": sp.application_id,
            "display_name": sp.display_name,
            "all_permissions": [{"permission_level": "CAN_USE", "inherited": False}],
        }
        for sp in state.service_principals()
        if sp.can_use and sp.in_workspace
    )
    return {
        "object_id": "/authorization/tokens",
        "object_type": "tokens",
        "access_control_list": entries,
    }


async def get_permissions(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/permissions/authorization/tokens``."""
    del request
    _require_admin(caller, "permissions APIs")
    return json_response(200, _acl(state))


async def permission_levels(
    state: DatabricksState, request: Request, caller: Principal
) -> Response:
    """``GET /api/2.0/permissions/authorization/tokens/permissionLevels``.

    CAN_USE is the only ``TokenPermissionLevel`` (databricks-sdk-py 0.162); that admins alone
    may ask, and the description text, are inferred.
    """
    del state, request
    _require_admin(caller, "permissions APIs")
    levels = [{"permission_level": "CAN_USE", "description": "Can use personal access tokens"}]
    return json_response(200, {"permission_levels": levels})


def _parse_acl(
    state: DatabricksState, body: dict[str, Any]
) -> tuple[set[str], list[dict[str, Any]]]:
    entries = body.get("access_control_list")
    if not isinstance(entries, list):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", "Missing required field: access_control_list"
        )
    sp_names: set[str] = set()
    others: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ApiError(
                400, "MALFORMED_REQUEST", "Could not parse request object: access_control_list"
            )
        level = entry.get("permission_level")
        name = entry.get("service_principal_name")
        if entry.get("group_name") == "admins" and level == "CAN_MANAGE":
            continue
        if level != "CAN_USE":
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Permission level {level} is not supported for tokens",
            )
        if isinstance(name, str):
            sp = state.principal(name)
            if sp is None or not sp.in_workspace:
                raise ApiError(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    f"Principal: ServicePrincipalName({name}) does not exist",
                )
            sp_names.add(name)
        else:
            others.append({k: v for k, v in entry.items() if k in ("user_name", "group_name")})
    return sp_names, others


async def update_permissions(
    state: DatabricksState, request: Request, caller: Principal
) -> Response:
    """``PATCH`` merges CAN_USE grants; ``PUT`` replaces them, deleting omitted SPs' tokens."""
    _require_admin(caller, "permissions APIs")
    sp_names, others = _parse_acl(state, await read_json_object(request))
    replace = request.method == "PUT"
    if replace:
        state.other_acl = others
        for sp in state.service_principals():
            if sp.application_id not in sp_names and sp.can_use:
                state.set_can_use(sp.application_id or "", False)
    else:
        state.other_acl = [*state.other_acl, *(o for o in others if o not in state.other_acl)]
    for name in sp_names:
        state.set_can_use(name, True)
    return json_response(200, _acl(state))


def _conf_value(state: DatabricksState, key: str) -> str | None:
    if key == "enableTokensConfig":
        return "true" if state.conf.tokens_enabled else "false"
    days = state.conf.max_token_lifetime_days
    return None if days is None else str(days)


async def get_conf(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET /api/2.0/workspace-conf?keys=a,b``: a flat map of strings (null when unset)."""
    _require_admin(caller, "workspace configuration")
    keys = [k for k in request.query_params.get("keys", "").split(",") if k]
    unknown = [k for k in keys if k not in _CONF_KEYS]
    if not keys or unknown:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid keys: {unknown or keys}")
    return json_response(200, {k: _conf_value(state, k) for k in keys})


async def patch_conf(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``PATCH /api/2.0/workspace-conf``: set ``enableTokensConfig`` / ``maxTokenLifetimeDays``."""
    _require_admin(caller, "workspace configuration")
    body = await read_json_object(request)
    unknown = [k for k in body if k not in _CONF_KEYS]
    if unknown:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid keys: {unknown}")
    if "enableTokensConfig" in body:
        enabled = str(body["enableTokensConfig"]).lower()
        if enabled not in ("true", "false"):
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", "enableTokensConfig must be true or false"
            )
        state.conf.tokens_enabled = enabled == "true"
    if "maxTokenLifetimeDays" in body:
        state.conf.max_token_lifetime_days = _parse_days(body["maxTokenLifetimeDays"])
    return no_content()


def _parse_days(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        days = int(str(raw))
    except ValueError:
        days = 0
    if not 1 <= days <= _MAX_LIFETIME_DAYS:
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"maxTokenLifetimeDays must be between 1 and {_MAX_LIFETIME_DAYS}, got {raw!r}",
        )
    return days
