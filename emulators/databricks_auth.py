"""Who is calling a Databricks emulator route: PAT, Entra token or workspace OAuth token.

Also checks a scoped PAT against the route's API scope, and serves the workspace's own OAuth
M2M endpoints (``/oidc/v1/token`` and discovery) and its host metadata.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import TYPE_CHECKING

from emulators.databricks_model import ApiError, Principal
from emulators.databricks_state import OAUTH_TOKEN_SECONDS, DatabricksState
from emulators.entra_state import DATABRICKS_RESOURCE
from emulators.web import base_url, json_response, read_form

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

__all__ = ["authenticate", "host_metadata", "oauth_metadata", "oidc_token"]

_EXPIRY_MARGIN_SECONDS = 30


def _invalid_token() -> ApiError:
    return ApiError(
        403,
        403,
        "Invalid access token.",
        {"X-Databricks-Reason-Phrase": "Invalid access token."},
    )


def _missing_scope() -> ApiError:
    """Refuse a scoped PAT outside its scopes.

    The message is the one Databricks answered a token without an endpoint's scopes
    (databricks-sdk-go #546, account API); the 403 ``PERMISSION_DENIED`` around it is inferred.
    """
    return ApiError(
        403, "PERMISSION_DENIED", "Your token is missing the required scopes for this endpoint"
    )


def authenticate(state: DatabricksState, request: Request, scope: str | None) -> Principal:
    """Return the calling principal or raise the `ApiError` Databricks would answer.

    ``scope`` is the API scope of the route (None: every scope reaches it). Only PATs carry
    scopes; a PAT refused for its scopes still counts as used, since it authenticated.
    """
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise ApiError(
            401,
            401,
            "Credential was not sent or was of an unsupported type for this API."
            f" [ReqId: {uuid.uuid4()}]",
        )
    if credential.startswith("dapi"):
        token = state.authenticate_pat(credential)
        if token is None:
            raise _invalid_token()
        if not token.allows(scope):
            raise _missing_scope()
        return token.owner
    entra_token = state.entra.lookup(credential)
    if entra_token is not None:
        left = entra_token.seconds_left()
        if entra_token.audience != DATABRICKS_RESOURCE or left <= 0:
            raise _invalid_token()
        if left <= _EXPIRY_MARGIN_SECONDS:
            raise ApiError(403, 403, "Token is expiring within 30 seconds.")
        principal = state.principal(entra_token.client_id)
        if principal is None or not principal.in_workspace:
            raise ApiError(403, 403, "User not authorized.")
        return principal
    principal = state.resolve_oauth_token(credential)
    if principal is None or not principal.in_workspace:
        raise _invalid_token()
    return principal


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return json_response(status, {"error": error, "error_description": description})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


async def oidc_token(state: DatabricksState, request: Request) -> JSONResponse:
    """``POST /oidc/v1/token``: OAuth client credentials (HTTP Basic or form fields)."""
    form = await read_form(request)
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported")
    scope = form.get("scope", "all-apis")
    if scope.split() != ["all-apis"]:
        return _oauth_error(400, "invalid_scope", f"Invalid scope: {scope}")
    credentials = _basic_credentials(request)
    if credentials is None and form.get("client_id") and form.get("client_secret"):
        credentials = (form["client_id"], form["client_secret"])
    token = state.issue_oauth_token(*credentials) if credentials else None
    if token is None:
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    return json_response(
        200,
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": OAUTH_TOKEN_SECONDS,
            "scope": "all-apis",
        },
    )


async def oauth_metadata(request: Request) -> JSONResponse:
    """``GET /oidc/.well-known/oauth-authorization-server``."""
    base = base_url(request)
    return json_response(
        200,
        {
            "issuer": f"{base}/oidc",
            "authorization_endpoint": f"{base}/oidc/v1/authorize",
            "token_endpoint": f"{base}/oidc/v1/token",
            "jwks_uri": f"{base}/oidc/jwks.json",
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "response_types_supported": ["code", "id_token"],
            "scopes_supported": ["all-apis", "offline_access", "openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
        },
    )


async def host_metadata(state: DatabricksState, request: Request) -> JSONResponse:
    """``GET /.well-known/databricks-config``: unauthenticated host metadata.

    databricks-sdk-py 0.162 reads ``oidc_endpoint`` (the root it appends
    ``/.well-known/oauth-authorization-server`` to), ``workspace_id`` (a string there) and
    ``cloud`` (parsed case-insensitively). The lower-case ``"azure"`` is inferred.
    """
    return json_response(
        200,
        {
            "oidc_endpoint": f"{base_url(request)}/oidc",
            "workspace_id": str(state.workspace_id),
            "cloud": "azure",
        },
    )
