"""Fivetran emulator: Databricks destinations (REST v1), their PAT and their setup tests.

Follows ``docs/reference/consumers.md`` (section 2):

- ``GET /v1/destinations/{id}``, ``PATCH /v1/destinations/{id}`` (``config`` merged,
  ``run_setup_tests``) and ``POST /v1/destinations/{id}/test`` [C]; Basic auth with key:secret
  and ``Accept: application/json;version=2`` (or ``application/json``) [C], anything else 406.
- Answers ``{"code": "Success", "message", "data"}``; errors ``{"code", "message"}`` [C] (the
  codes other than ``NotFound_*`` are inferred). ``personal_access_token`` reads back as
  ``"******"`` [C].
- A setup test really calls the Databricks emulator (``GET /api/2.0/preview/scim/v2/Me``) with
  the stored token and sets ``setup_status`` ``connected`` / ``broken`` [C]. A PATCH is saved
  even when its test fails (F10, assumed). Over ``setup_tests_per_minute`` a setup-test request
  answers 429 with ``Retry-After`` and changes nothing (limit [C]; header and no-save inferred).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from emulators.dbprobe import probe_databricks
from emulators.fivetran_state import MASK, Destination, FivetranState, SetupTest
from emulators.web import BadBodyError, json_response, read_json_object, service_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["MASK", "FivetranState", "build_fivetran_app", "fivetran_error_body"]

_ACCEPTED = frozenset({"", "*/*", "application/json", "application/json;version=2"})
_GENERIC = {
    400: ("InvalidInput", "The request is not valid."),
    401: ("AuthFailed", "Unauthorized: the API key and secret are not valid."),
    403: ("AccessDenied", "Access denied."),
    404: ("NotFound", "Not found."),
    405: ("MethodNotAllowed", "Method not allowed."),
    406: ("NotAcceptable", "Use Accept: application/json;version=2."),
    409: ("Conflict", "Conflict."),
    429: ("TooManyRequests", "Too many setup test requests."),
    500: ("InternalError", "Internal server error."),
    503: ("ServiceUnavailable", "Service unavailable."),
}


def fivetran_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return a Fivetran-shaped error body for ``status`` (used by injected faults)."""
    del path
    code, message = _GENERIC.get(status, ("Error", f"HTTP {status}."))
    return {"code": code, "message": message}


class _FivetranError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _success(data: dict[str, Any], message: str | None = None) -> Response:
    body: dict[str, Any] = {"code": "Success", "data": data}
    if message:
        body["message"] = message
    return json_response(200, body)


class _FivetranApp:
    """Route handlers bound to one `FivetranState`."""

    def __init__(self, state: FivetranState) -> None:
        self.state = state

    def check_headers(self, request: Request) -> None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            key = secret = ""
        if scheme.lower() != "basic" or not self.state.key_valid(key, secret):
            raise _FivetranError(401, *_GENERIC[401])
        accept = request.headers.get("accept", "").replace(" ", "").lower()
        if accept not in _ACCEPTED:
            raise _FivetranError(406, *_GENERIC[406])

    def endpoint(
        self, handler: Callable[[Request, Destination], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                self.check_headers(request)
                return await handler(request, self._destination(request))
            except _FivetranError as exc:
                body = {"code": exc.code, "message": exc.message}
                return json_response(exc.status, body, exc.headers)
            except BadBodyError as exc:
                return json_response(400, {"code": "InvalidInput", "message": str(exc)})

        return run

    def _destination(self, request: Request) -> Destination:
        ident: str = request.path_params["ident"]
        destination = self.state.find(ident)
        if destination is None:
            raise _FivetranError(
                404, "NotFound_Destination", f"Destination with id '{ident}' doesn't exist"
            )
        return destination

    async def get_one(self, request: Request, destination: Destination) -> Response:
        del request
        with self.state.lock:
            return _success(destination.as_json())

    async def patch_one(self, request: Request, destination: Destination) -> Response:
        body = await read_json_object(request)
        config = body.get("config", {})
        if not isinstance(config, dict):
            raise _FivetranError(400, "InvalidInput", "Field 'config' must be an object.")
        token = config.get("personal_access_token")
        if "personal_access_token" in config and (not isinstance(token, str) or not token):
            raise _FivetranError(
                400, "InvalidInput", "Field 'config.personal_access_token' must be a string."
            )
        run_tests = body.get("run_setup_tests", False)
        if not isinstance(run_tests, bool):
            raise _FivetranError(400, "InvalidInput", "Field 'run_setup_tests' must be a boolean.")
        if run_tests:
            self._admit()
        with self.state.lock:
            destination.apply(config)
        if run_tests:
            await self._run_tests(destination, "patch")
        with self.state.lock:
            data = destination.as_json()
            if run_tests:
                data["setup_tests"] = list(destination.last_tests)
        return _success(data, "Destination has been updated")

    async def test_one(self, request: Request, destination: Destination) -> Response:
        body = await read_json_object(request, empty_ok=True)
        for name in ("trust_certificates", "trust_fingerprints"):
            if not isinstance(body.get(name, False), bool):
                raise _FivetranError(400, "InvalidInput", f"Field '{name}' must be a boolean.")
        self._admit()
        await self._run_tests(destination, "test")
        with self.state.lock:
            data = destination.as_json()
            data["setup_tests"] = list(destination.last_tests)
        return _success(data, "Setup tests were completed")

    def _admit(self) -> None:
        wait = self.state.admit_setup_test()
        if wait is not None:
            raise _FivetranError(
                429,
                "TooManyRequests",
                "Setup test requests limit exceeded. Try again later.",
                {"Retry-After": str(math.ceil(wait))},
            )

    async def _run_tests(self, destination: Destination, trigger: str) -> None:
        config = destination.config
        token = str(config.get("personal_access_token", ""))
        host = str(config.get("server_host_name", ""))
        port = int(config.get("port") or 443)
        result = await probe_databricks(self.state.trust, host, port, token)
        tests = [
            {
                "title": "Database Connection",
                "status": "PASSED" if result.ok else "FAILED",
                "message": "" if result.ok else result.message,
            }
        ]
        with self.state.lock:
            destination.setup_status = "connected" if result.ok else "broken"
            destination.last_tests = tests
        self.state.record_test(
            SetupTest(destination.id, trigger, token, ok=result.ok, message=result.message)
        )


def build_fivetran_app(state: FivetranState) -> Starlette:
    """Build the Fivetran ASGI app for ``state`` (without the fault/log middleware)."""
    app = _FivetranApp(state)
    one = "/v1/destinations/{ident}"
    return service_app(
        [
            Route(one, app.endpoint(app.get_one), methods=["GET"]),
            Route(one, app.endpoint(app.patch_one), methods=["PATCH"]),
            Route(f"{one}/test", app.endpoint(app.test_one), methods=["POST"]),
        ],
        fivetran_error_body,
    )
