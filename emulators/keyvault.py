"""Key Vault emulator: the secrets REST API with challenge auth, paging and soft delete.

Works with the real ``azure.keyvault.secrets`` clients (sync and aio) built with
``verify_challenge_resource=False`` and ``connection_verify=<ca.pem>``.

Key Vault's service limits (`KeyVaultState.set_limits`, off by default) refuse an authenticated
request over the limit with 429 ``Throttled``, counted as Key Vault counts: secret creates
(``PUT``) apart from every other transaction, refused requests not at all.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.entra_state import VAULT_RESOURCE, EntraState
from emulators.keyvault_state import (
    MAX_VALUE_BYTES,
    THROTTLED_MESSAGE,
    KeyVaultError,
    KeyVaultState,
    SecretVersion,
    check_content_type,
    check_name,
    check_tags,
)
from emulators.keyvault_wire import (
    bundle,
    cursor_of,
    deleted_bundle,
    keyvault_error_body,
    max_results,
    next_link,
    opt_int,
    patch_changes,
)
from emulators.web import (
    BadBodyError,
    base_url,
    json_response,
    no_content,
    read_json_object,
    service_app,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["KeyVaultState", "SecretVersion", "build_keyvault_app", "keyvault_error_body"]

Handler = Callable[[Request], Awaitable[Response]]


class _KeyVaultApp:
    """Route handlers bound to one `KeyVaultState` and the Entra emulator that issues tokens."""

    def __init__(self, state: KeyVaultState, entra: EntraState) -> None:
        self.state = state
        self.entra = entra

    def challenge(self, message: str) -> KeyVaultError:
        return KeyVaultError(401, "Unauthorized", message)

    def caller(self, request: Request) -> str:
        """Return the client id behind the bearer token or raise 401 with the challenge."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "pop") or not token.strip():
            raise self.challenge("AKV10000: Request is missing a Bearer or PoP token.")
        issued = self.entra.lookup(token.strip())
        if issued is None:
            raise self.challenge(
                "AKV10032: Invalid issuer. The token was not issued by this tenant."
            )
        if issued.audience != VAULT_RESOURCE:
            raise self.challenge(
                f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {issued.audience}."
            )
        if issued.tenant_id != self.state.tenant_id:
            raise self.challenge(
                f"AKV10032: Invalid issuer. Expected one for tenant {self.state.tenant_id}."
            )
        if issued.seconds_left() <= 0:
            raise self.challenge("AKV10013: Token has expired.")
        return issued.client_id

    def guard(self, request: Request, *, write: bool) -> None:
        """Raise unless the caller is authenticated, authorised and the request well-formed."""
        client_id = self.caller(request)
        if "api-version" not in request.query_params:
            raise KeyVaultError(
                400, "BadParameter", "The 'api-version' query parameter is required."
            )
        allowed = self.state.writers if write else self.state.readers
        if allowed is not None and client_id not in allowed:
            raise KeyVaultError(403, "Forbidden", _forbidden(client_id, request), "ForbiddenByRbac")
        name = request.path_params.get("name")
        if name is not None:
            check_name(name)

    def admit(self, *, create: bool) -> None:
        """Raise 429 ``Throttled`` when the vault's service limits refuse this request."""
        throttle = self.state.throttle
        if throttle is None:
            return
        wait = throttle.admit(create=create)
        if wait is not None:
            raise _ThrottledError(wait, retry_after=throttle.limits.retry_after)

    def endpoint(self, handler: Handler, *, write: bool, create: bool = False) -> Handler:
        async def run(request: Request) -> Response:
            try:
                self.guard(request, write=write)
                self.admit(create=create)
                return await handler(request)
            except _ThrottledError as exc:
                return json_response(429, exc.body(), exc.headers())
            except KeyVaultError as exc:
                headers = self._challenge_header() if exc.status == 401 else None
                return json_response(exc.status, exc.body(), headers)
            except BadBodyError as exc:
                return json_response(400, {"error": {"code": "BadParameter", "message": str(exc)}})

        return run

    def _challenge_header(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer authorization="https://login.windows.net/{self.state.tenant_id}",'
                f' resource="{VAULT_RESOURCE}"'
            )
        }

    async def put_secret(self, request: Request) -> Response:
        body = await read_json_object(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise KeyVaultError(
                400, "BadParameter", "The parameter 'value' is required and must be a string."
            )
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise KeyVaultError(
                400,
                "BadParameter",
                f"Secret value exceeds the maximum size of {MAX_VALUE_BYTES} bytes.",
            )
        tags = body.get("tags") or {}
        if not isinstance(tags, dict):
            raise KeyVaultError(400, "BadParameter", "tags must be an object.")
        check_tags(tags)
        check_content_type(body.get("contentType"))
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise KeyVaultError(400, "BadParameter", "attributes must be an object.")
        enabled = attributes.get("enabled")
        version = self.state.put(
            request.path_params["name"],
            value,
            tags=tags,
            enabled=True if enabled is None else bool(enabled),
            nbf=opt_int(attributes.get("nbf"), "nbf"),
            exp=opt_int(attributes.get("exp"), "exp"),
            content_type=body.get("contentType"),
        )
        return json_response(200, bundle(base_url(request), version, value=True))

    async def get_secret(self, request: Request) -> Response:
        version = self.state.get(request.path_params["name"], request.path_params.get("version"))
        if not version.enabled:
            raise KeyVaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                "SecretDisabled",
            )
        return json_response(200, bundle(base_url(request), version, value=True))

    async def patch_secret(self, request: Request) -> Response:
        changes = patch_changes(await read_json_object(request))
        version = self.state.update(
            request.path_params["name"], request.path_params.get("version"), changes
        )
        return json_response(200, bundle(base_url(request), version, value=False))

    async def list_secrets(self, request: Request) -> Response:
        items, cursor = self.state.page_latest(cursor_of(request), max_results(request))
        base = base_url(request)
        value = [bundle(base, v, value=False, versioned=False) for v in items]
        return json_response(200, {"value": value, "nextLink": next_link(request, cursor)})

    async def list_versions(self, request: Request) -> Response:
        cursor_text = cursor_of(request) or "0"
        if not cursor_text.isdigit():
            raise KeyVaultError(400, "BadParameter", "Invalid $skiptoken.")
        offset = int(cursor_text)
        items, nxt = self.state.page_versions(
            request.path_params["name"], offset, max_results(request)
        )
        base = base_url(request)
        value = [bundle(base, v, value=False) for v in items]
        cursor = None if nxt is None else str(nxt)
        return json_response(200, {"value": value, "nextLink": next_link(request, cursor)})

    async def delete_secret(self, request: Request) -> Response:
        version, deleted = self.state.delete(request.path_params["name"])
        return json_response(200, deleted_bundle(base_url(request), version, deleted))

    async def get_deleted(self, request: Request) -> Response:
        version, deleted = self.state.get_deleted(request.path_params["name"])
        return json_response(200, deleted_bundle(base_url(request), version, deleted))

    async def list_deleted(self, request: Request) -> Response:
        base = base_url(request)
        value = [deleted_bundle(base, v, d) for v, d in self.state.list_deleted()]
        return json_response(200, {"value": value, "nextLink": None})

    async def recover(self, request: Request) -> Response:
        version = self.state.recover(request.path_params["name"])
        return json_response(200, bundle(base_url(request), version, value=False))

    async def purge(self, request: Request) -> Response:
        self.state.purge(request.path_params["name"])
        return no_content()


class _ThrottledError(KeyVaultError):
    """429 ``Throttled``: over the vault's service limits; ``wait`` is when it would fit."""

    def __init__(self, wait: float, *, retry_after: bool) -> None:
        super().__init__(429, "Throttled", THROTTLED_MESSAGE)
        self.wait = wait
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        """Return ``Retry-After`` (whole seconds, at least 1) when the limits say to send it."""
        return {"Retry-After": str(max(1, math.ceil(self.wait)))} if self.retry_after else None


def _forbidden(client_id: str, request: Request) -> str:
    return (
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny"
        " assignments or role definitions were changed recently, please observe propagation"
        f" time.\r\nCaller: appid={client_id}\r\nAction: '{request.method} {request.url.path}'\r\n"
        "Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n"
    )


def build_keyvault_app(state: KeyVaultState, entra: EntraState) -> Starlette:
    """Build the vault ASGI app for ``state`` (without the fault/log middleware)."""
    kv = _KeyVaultApp(state, entra)

    def read(handler: Handler) -> Handler:
        return kv.endpoint(handler, write=False)

    def write(handler: Handler) -> Handler:
        return kv.endpoint(handler, write=True)

    def create(handler: Handler) -> Handler:
        return kv.endpoint(handler, write=True, create=True)

    return service_app(
        [
            Route("/secrets", read(kv.list_secrets), methods=["GET"]),
            Route("/secrets/{name}/versions", read(kv.list_versions), methods=["GET"]),
            Route("/secrets/{name}", create(kv.put_secret), methods=["PUT"]),
            Route("/secrets/{name}", write(kv.delete_secret), methods=["DELETE"]),
            Route("/secrets/{name}", read(kv.get_secret), methods=["GET"]),
            Route("/secrets/{name}/", read(kv.get_secret), methods=["GET"]),
            Route("/secrets/{name}/", write(kv.patch_secret), methods=["PATCH"]),
            Route("/secrets/{name}/{version}", read(kv.get_secret), methods=["GET"]),
            Route("/secrets/{name}/{version}", write(kv.patch_secret), methods=["PATCH"]),
            Route("/deletedsecrets", read(kv.list_deleted), methods=["GET"]),
            Route("/deletedsecrets/{name}", read(kv.get_deleted), methods=["GET"]),
            Route("/deletedsecrets/{name}", write(kv.purge), methods=["DELETE"]),
            Route("/deletedsecrets/{name}/recover", write(kv.recover), methods=["POST"]),
        ],
        keyvault_error_body,
    )
