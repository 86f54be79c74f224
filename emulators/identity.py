"""The App Service / Functions managed identity endpoint (``IDENTITY_ENDPOINT``), on loopback.

What azure-identity 1.27 sends and reads (``_credentials/app_service.py``,
``_internal/managed_identity_client.py``; the sync credential goes through MSAL 1.39's
``_obtain_token_on_app_service``, which sends the same):

- ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>`` with the header
  ``X-IDENTITY-HEADER: {IDENTITY_HEADER}``; ``resource`` is the scope without ``/.default``.
  A user-assigned identity adds ``client_id`` (or, from ``identity_config``, ``object_id`` /
  ``principal_id`` / ``mi_res_id``); the system-assigned one adds nothing.
- 200: ``{"access_token", "expires_on": "<epoch seconds as a string>", "resource", "token_type",
  "client_id"}`` (the documented sample). ``expires_on`` must be epoch seconds (it goes through
  ``int()``); ``resource`` is echoed as requested, since azure-identity caches the token under it.
- Errors are ``{"statusCode", "message", "correlationId"}`` (the App Service shape, with an
  ``X-CORRELATION-ID`` header). The aio credential raises ``ClientAuthenticationError`` with the
  status and the body's ``message``; the sync one (MSAL) ``CredentialUnavailableError`` with
  "<statusCode>, <message>". Published reports show two of them: an identity not assigned to
  the app is 400 "Unable to load the proper Managed Identity.", and an unknown resource 500
  "An unexpected error occured while fetching the AAD Token." (azure-core retries a 500 on GET).
  Inferred: a missing or wrong ``X-IDENTITY-HEADER`` is 401 (the status users report; the
  message is ours); a missing ``resource``, an ``api-version`` other than 2019-08-01 (the older
  2017-09-01 protocol is not served) and more than one selector are 400; a selector naming no
  assigned user-assigned identity never falls back to the system-assigned one, and no selector
  without a system-assigned identity is 400 too.

The real endpoint is plain HTTP on a loopback or link-local address, and azure-identity takes
any scheme there; so is this one (``http://127.0.0.1:<port>/msi/token``), so a client's TLS
settings neither help nor hurt it, as in Azure. Tokens are `EntraState.issue`'s, exactly what
the Entra emulator's token endpoint issues, so Databricks and Key Vault accept them alike.
"""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from emulators.entra_state import ManagedIdentity, audience_of
from emulators.server import ServerThread
from emulators.web import json_response, service_app

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.datastructures import QueryParams
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.types import ASGIApp

    from emulators.entra_state import EntraState
    from emulators.tls import LoopbackTLS

__all__ = [
    "API_VERSION",
    "IDENTITY_PATH",
    "IdentityServerThread",
    "build_identity_app",
    "identity_error_body",
]

API_VERSION = "2019-08-01"
IDENTITY_PATH = "/msi/token"
"""The endpoint's path (App Service's own ``IDENTITY_ENDPOINT`` ends with it too)."""

_SELECTORS = ("client_id", "principal_id", "object_id", "mi_res_id")
_NO_IDENTITY = "Unable to load the proper Managed Identity."
_NO_TOKEN = "An unexpected error occured while fetching the AAD Token."  # sic, as served
_GENERIC = {
    400: "Bad Request.",
    401: "Unauthorized.",
    404: "Not Found.",
    405: "Method Not Allowed.",
    429: "Too many requests.",
    500: _NO_TOKEN,
    503: "Service Unavailable.",
}


def identity_error_body(status: int, path: str = "", message: str | None = None) -> dict[str, Any]:
    """Return the App Service identity endpoint's error body for ``status``."""
    del path
    return {
        "statusCode": status,
        "message": message or _GENERIC.get(status, f"HTTP {status}."),
        "correlationId": str(uuid.uuid4()),
    }


def _error(status: int, message: str) -> JSONResponse:
    body = identity_error_body(status, message=message)
    return json_response(status, body, {"X-CORRELATION-ID": body["correlationId"]})


class _IdentityApp:
    """The token route bound to one `EntraState` and the app's ``IDENTITY_HEADER``."""

    def __init__(self, state: EntraState, header: str) -> None:
        self.state = state
        self.header = header

    async def token(self, request: Request) -> JSONResponse:
        problem = self._check_request(request)
        if problem is not None:
            return problem
        identity = self._identity(request.query_params)
        if not isinstance(identity, ManagedIdentity):
            return identity
        resource = request.query_params["resource"]
        audience = audience_of(resource)
        if audience is None:
            return _error(500, _NO_TOKEN)
        issued = self.state.issue(identity.client_id, audience)
        return json_response(
            200,
            {
                "access_token": issued.access_token,
                "expires_on": str(int(issued.expires_real)),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            },
        )

    def _check_request(self, request: Request) -> JSONResponse | None:
        sent = request.headers.get("x-identity-header", "")
        if not secrets.compare_digest(sent.encode(), self.header.encode()):
            return _error(401, "The X-IDENTITY-HEADER header is missing or not this app's.")
        version = request.query_params.get("api-version", "")
        if version != API_VERSION:
            return _error(400, f"The api-version '{version}' is not supported; use {API_VERSION}.")
        if not request.query_params.get("resource"):
            return _error(400, "The 'resource' query parameter is required.")
        return None

    def _identity(self, query: QueryParams) -> ManagedIdentity | JSONResponse:
        chosen = {name: query[name] for name in _SELECTORS if query.get(name)}
        if len(chosen) > 1:
            names = ", ".join(sorted(chosen))
            return _error(
                400, f"Only one of client_id, principal_id, mi_res_id may be given: {names}."
            )
        identity = self.state.find_managed_identity(
            client_id=chosen.get("client_id"),
            principal_id=chosen.get("principal_id") or chosen.get("object_id"),
            resource_id=chosen.get("mi_res_id"),
        )
        return _error(400, _NO_IDENTITY) if identity is None else identity


def build_identity_app(state: EntraState, header: str) -> Starlette:
    """Build the identity endpoint's ASGI app (without the fault/log middleware)."""
    handlers = _IdentityApp(state, header)
    return service_app(
        [
            Route(IDENTITY_PATH, handlers.token, methods=["GET"]),
            Route(f"{IDENTITY_PATH}/", handlers.token, methods=["GET"]),
        ],
        identity_error_body,
    )


class IdentityServerThread(ServerThread):
    """A `ServerThread` serving plain HTTP on 127.0.0.1, as App Service's identity endpoint does."""

    def __init__(self, app: ASGIApp, tls: LoopbackTLS, name: str) -> None:
        super().__init__(app, tls, name)
        config = self._server.config
        config.ssl_certfile = config.ssl_keyfile = None  # uvicorn loads TLS only with these

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"
