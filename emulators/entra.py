"""Entra ID emulator: OIDC discovery and the client-credentials token endpoint of one tenant.

Works with azure-identity's ``ClientSecretCredential`` (sync via MSAL, aio via its own
client) given ``authority="https://127.0.0.1:PORT"`` or ``AZURE_AUTHORITY_HOST``. Sync
credentials need ``disable_instance_discovery=True``: MSAL asks login.microsoftonline.com
about any authority host it does not know.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators.entra_state import KNOWN_RESOURCES, AppCredential, EntraState, IssuedToken
from emulators.web import base_url, json_response, read_form

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["AppCredential", "EntraState", "IssuedToken", "build_entra_app", "entra_error_body"]

_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_NO_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
_GENERIC = {
    400: ("invalid_request", 900144, "The request is not valid."),
    401: ("invalid_client", 7000215, "Client authentication failed."),
    403: ("access_denied", 50105, "The signed in user is not assigned to a role."),
    404: ("not_found", 90002, "Not found."),
    429: ("temporarily_unavailable", 50196, "The server is throttling requests."),
    500: ("server_error", 90033, "A transient error has occurred. Please try again."),
    503: ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
}


def entra_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return an Entra-shaped error body for ``status`` (used by injected faults)."""
    del path
    error, code, text = _GENERIC.get(status, ("server_error", 90033, f"HTTP {status}."))
    return _error_body(error, code, text)


def _error_body(
    error: str, code: int, text: str, correlation_id: str | None = None
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    trace_id, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation}"
            f" Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


class _EntraApp:
    """Route handlers bound to one `EntraState`."""

    def __init__(self, state: EntraState) -> None:
        self.state = state

    def _error(
        self, request: Request, status: int, error: str, code: int, text: str
    ) -> JSONResponse:
        body = _error_body(error, code, text, request.headers.get("client-request-id"))
        return json_response(status, body, _NO_CACHE)

    def _tenant_known(self, tenant: str) -> bool:
        return tenant.lower() == self.state.tenant_id.lower()

    def _unknown_tenant(self, request: Request, tenant: str) -> JSONResponse:
        text = (
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and"
            " are signing into the correct cloud. Check with your subscription administrator, this"
            " may happen if there are no active subscriptions for the tenant."
        )
        return self._error(request, 400, "invalid_tenant", 90002, text)

    async def openid_configuration(self, request: Request) -> JSONResponse:
        tenant: str = request.path_params["tenant"]
        if not self._tenant_known(tenant):
            return self._unknown_tenant(request, tenant)
        base = f"{base_url(request)}/{self.state.tenant_id}"
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/openid/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid", "appid"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    async def instance_discovery(self, request: Request) -> JSONResponse:
        endpoint = request.query_params.get("authorization_endpoint", "")
        parts = urlparse(endpoint).path.split("/")
        tenant = parts[1] if len(parts) > 1 and parts[1] else self.state.tenant_id
        host = request.url.netloc
        return json_response(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{base_url(request)}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            },
        )

    async def keys(self, request: Request) -> JSONResponse:
        del request
        return json_response(200, {"keys": []})

    async def token(self, request: Request) -> JSONResponse:
        tenant: str = request.path_params["tenant"]
        if not self._tenant_known(tenant):
            return self._unknown_tenant(request, tenant)
        form = await read_form(request)
        problem = self._check_client(request, form)
        if problem is not None:
            return problem
        client_id = form["client_id"]
        scope_or_error = self._audience(request, form.get("scope", ""))
        if isinstance(scope_or_error, JSONResponse):
            return scope_or_error
        issued = self.state.issue(client_id, scope_or_error)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.state.token_lifetime,
                "ext_expires_in": self.state.token_lifetime,
                "access_token": issued.access_token,
            },
            _NO_CACHE,
        )

    def _check_client(self, request: Request, form: dict[str, str]) -> JSONResponse | None:
        grant_type = form.get("grant_type")
        if not grant_type:
            text = "The request body must contain the following parameter: 'grant_type'."
            return self._error(request, 400, "invalid_request", 900144, text)
        if grant_type != "client_credentials":
            text = (
                "The provided value for the input parameter 'grant_type' is not valid:"
                f" {grant_type}."
            )
            return self._error(request, 400, "unsupported_grant_type", 70003, text)
        client_id = form.get("client_id", "")
        if not client_id:
            text = "The request body must contain the following parameter: 'client_id'."
            return self._error(request, 400, "invalid_request", 900144, text)
        return self._check_secret(request, client_id, form.get("client_secret"))

    def _check_secret(
        self, request: Request, client_id: str, secret: str | None
    ) -> JSONResponse | None:
        if not self.state.has_app(client_id):
            text = (
                f"Application with identifier '{client_id}' was not found in the directory"
                f" '{self.state.tenant_id}'. This can happen if the application has not been"
                " installed by the administrator of the tenant or consented to by any user in the"
                " tenant. You may have sent your authentication request to the wrong tenant."
            )
            return self._error(request, 400, "unauthorized_client", 700016, text)
        if not secret:
            text = (
                "The request body must contain the following parameter: 'client_assertion' or"
                " 'client_secret'."
            )
            return self._error(request, 401, "invalid_client", 7000218, text)
        status = self.state.secret_status(client_id, secret)
        if status == "expired":
            text = (
                f"The provided client secret keys for app '{client_id}' are expired. Visit the"
                " Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or"
                " consider using certificate credentials for added security:"
                " https://aka.ms/certCreds."
            )
            return self._error(request, 401, "invalid_client", 7000222, text)
        if status != "valid":
            # Also a secret added through Graph that has not replicated here yet: Entra cannot
            # tell "not yet" from "wrong" (contract sheet, credential-apis.md).
            text = (
                "Invalid client secret provided. Ensure the secret being sent in the request is the"
                f" client secret value, not the client secret ID, for a secret added to app"
                f" '{client_id}'."
            )
            return self._error(request, 401, "invalid_client", 7000215, text)
        return None

    def _audience(self, request: Request, scope: str) -> str | JSONResponse:
        scopes = [s for s in scope.split() if s not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            text = (
                "The provided request must include a 'scope' input parameter. The provided value"
                " for the input parameter 'scope' is not valid. The scope requested is not valid"
                f" for the client credentials flow: '{scope}'. Use a scope like"
                " '<resource>/.default'."
            )
            return self._error(request, 400, "invalid_scope", 70011, text)
        resource = scopes[0].removesuffix("/.default").rstrip("/")
        audience = KNOWN_RESOURCES.get(resource)
        if audience is None:
            text = (
                f"The resource principal named {resource} was not found in the tenant named"
                f" {self.state.tenant_id}. This can happen if the application has not been"
                " installed by the administrator of the tenant or consented to by any user in the"
                " tenant. You might have sent your authentication request to the wrong tenant."
            )
            return self._error(request, 400, "invalid_resource", 500011, text)
        return audience


def build_entra_app(state: EntraState) -> Starlette:
    """Build the Entra ID ASGI app for ``state`` (without the fault/log middleware)."""
    handlers = _EntraApp(state)
    return Starlette(
        routes=[
            Route("/common/discovery/instance", handlers.instance_discovery, methods=["GET"]),
            Route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                handlers.openid_configuration,
                methods=["GET"],
            ),
            Route("/{tenant}/discovery/v2.0/keys", handlers.keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", handlers.token, methods=["POST"]),
        ]
    )
