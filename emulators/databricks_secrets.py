"""The workspace's service-principal secrets proxy: create, list (paged) and delete OAuth secrets.

``/api/2.0/accounts/servicePrincipals/{id}/credentials/secrets`` on the workspace host, where
``{id}`` is the service principal's numeric (SCIM) id [C]. Workspace admins only [C: docs name
account and workspace admins]. What is inferred ([I]) and why is in
docs/reference/credential-apis.md: the refusal codes, the time format, the page size and token,
and a 404 for an unknown secret on delete.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from emulators.databricks_model import ApiError, Principal
from emulators.web import json_response, read_json_object

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from emulators.databricks_oauth import OAuthSecret
    from emulators.databricks_state import DatabricksState

__all__ = ["PATH", "create_secret", "delete_secret", "list_secrets"]

PATH = "accounts/servicePrincipals/{sp_id}/credentials/secrets"
_LIFETIME = re.compile(r"^\s*(\d+)(?:\.\d+)?s?\s*$")


def _target(state: DatabricksState, request: Request, caller: Principal) -> Principal:
    """Return the service principal named in the path, after the admin check."""
    if not caller.admin:
        raise ApiError(
            403,
            "PERMISSION_DENIED",
            "Only workspace admins can manage the OAuth secrets of service principals.",
        )
    raw = request.path_params["sp_id"]
    try:
        principal_id = int(raw)
    except ValueError:
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"Invalid service principal id: {raw[:40]!r}"
        ) from None
    principal = state.principal_by_id(principal_id)
    if principal is None or principal.kind != "service_principal" or not principal.in_workspace:
        raise ApiError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Service principal {principal_id} does not exist in this workspace.",
        )
    return principal


def _time(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_info(secret: OAuthSecret) -> dict[str, Any]:
    """Render a secret as ``SecretInfo`` (no value): what list shows and create extends."""
    info: dict[str, Any] = {
        "id": secret.secret_id,
        "secret_hash": secret.secret_hash,
        "create_time": _time(secret.create_ms),
        "update_time": _time(secret.create_ms),
        "status": "ACTIVE",
    }
    if secret.expire_ms is not None:
        info["expire_time"] = _time(secret.expire_ms)
    if secret.scopes:
        info["scopes"] = list(secret.scopes)
    return info


def _lifetime(raw: object) -> int | None:
    """Parse ``lifetime``: ``"3600s"`` (protobuf Duration), ``"3600"`` or 3600 [I: both forms]."""
    if raw is None:
        return None
    found = _LIFETIME.match(str(raw)) if isinstance(raw, str | int) else None
    if found is None or isinstance(raw, bool):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"Invalid lifetime {str(raw)[:40]!r}; use e.g. '3600s'"
        )
    return int(found.group(1))


def _scopes(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "scopes must be a list of scope names")
    return tuple(raw)


async def create_secret(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``POST …/credentials/secrets`` ``{lifetime?, scopes?}`` -> the secret, its value once."""
    principal = _target(state, request, caller)
    body = await read_json_object(request, empty_ok=True)
    secret = state.oauth_secrets.create(
        principal.id, _lifetime(body.get("lifetime")), _scopes(body.get("scopes"))
    )
    return json_response(200, {**secret_info(secret), "secret": secret.value})


def _encode(secret: OAuthSecret) -> str:
    raw = f"{secret.create_ms}:{secret.secret_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        create_ms, secret_id = raw.split(":", 1)
        return int(create_ms), secret_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Invalid page_token") from None


def _page_size(state: DatabricksState, raw: str | None) -> int:
    limit = state.oauth_secrets.page_size
    if raw is None:
        return limit
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid page_size {raw[:20]!r}")
    return min(int(raw), limit)


async def list_secrets(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``GET …/credentials/secrets?page_size=&page_token=`` -> ``{secrets, next_page_token?}``.

    Pages hold at most ``oauth_secrets.page_size`` entries whatever ``page_size`` asks; the token
    is a cursor (the last entry's creation time and id), so deletions between pages skip nothing.
    """
    principal = _target(state, request, caller)
    size = _page_size(state, request.query_params.get("page_size"))
    ordered = sorted(state.oauth_secrets.of(principal.id), key=lambda s: (s.create_ms, s.secret_id))
    token = request.query_params.get("page_token")
    if token:
        after = _decode(token)
        ordered = [s for s in ordered if (s.create_ms, s.secret_id) > after]
    page, rest = ordered[:size], ordered[size:]
    body: dict[str, Any] = {"secrets": [secret_info(s) for s in page]}
    if rest:
        body["next_page_token"] = _encode(page[-1])
    return json_response(200, body)


async def delete_secret(state: DatabricksState, request: Request, caller: Principal) -> Response:
    """``DELETE …/credentials/secrets/{secret_id}`` -> 200 ``{}``; unknown id -> 404 [I]."""
    principal = _target(state, request, caller)
    secret_id = request.path_params["secret_id"]
    if not state.oauth_secrets.delete(principal.id, secret_id):
        raise ApiError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Secret {secret_id[:40]} does not exist for service principal {principal.id}.",
        )
    return json_response(200, {})
