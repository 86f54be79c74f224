"""Prequel emulator: sources, destinations and import sources whose Databricks PAT can be swapped.

Every response is the envelope ``{status, data, message}`` (documented); a bad API key is 401
and an unknown id 404 in that envelope (the status codes are inferred). A connection test
(``test-connection``, ``test-source``) really calls the Databricks emulator
(``GET /api/2.0/preview/scim/v2/Me``) over HTTPS with the merged, unsaved config; only loopback
hosts are ever contacted.

Import routes (Prequel's import product): ``PATCH /import/sources/{id}``,
``POST /import/sources/{id}/test-source`` (an optional partial ``{"source": ...}`` body, tested
without saving) and ``POST /import/test-source`` are documented; ``GET /import/sources/{id}`` and
the import source's ``databricks`` layout are inferred from the export side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.prequel_state import Connection, ConnectionTest, PrequelState, redact, token_of
from emulators.web import BadBodyError, json_response, read_json_object, service_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["Connection", "PrequelState", "build_prequel_app", "prequel_error_body"]

API_VERSION = "2023-12-01"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_TEST_TIMEOUT_SECONDS = 10.0
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class _Kind:
    """A collection: its key in `PrequelState`, its body key and its name in messages."""

    store: str
    body: str
    label: str


_SOURCE = _Kind("source", "source", "source")
_DESTINATION = _Kind("destination", "destination", "destination")
_IMPORT_SOURCE = _Kind("import_source", "source", "import source")

Handler = Callable[[Request, _Kind], Awaitable[Response]]


class _EnvelopeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def prequel_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return a Prequel-shaped error envelope for ``status`` (used by injected faults)."""
    del path
    return {"status": "error", "data": None, "message": _REASONS.get(status, f"HTTP {status}")}


def _ok(data: object, message: str = "") -> Response:
    return json_response(200, {"status": "success", "data": data, "message": message})


def _target(config: dict[str, Any]) -> tuple[str, str] | None:
    """Return ``(host:port, hostname)`` of a config's Databricks host, or None if unset."""
    settings = config.get("databricks") or {}
    host = (
        str(settings.get("host") or "").removeprefix("https://").removeprefix("http://").rstrip("/")
    )
    if not host:
        return None
    hostname, sep, port = host.rpartition(":")
    if not sep or not port.isdigit():
        hostname, host = host, f"{host}:{settings.get('port') or 443}"
    return host, hostname


async def _probe(state: PrequelState, config: dict[str, Any]) -> tuple[bool, str, str]:
    """Ask Databricks who the config's token belongs to; return (ok, message, host)."""
    target = _target(config)
    token = token_of(config)
    if target is None:
        return False, "The connection has no Databricks host.", ""
    host, hostname = target
    if not token:
        return False, "The connection has no access token.", host
    if hostname not in _LOOPBACK:
        return False, f"Could not connect to {host}: the emulator only reaches loopback.", host
    try:
        async with httpx.AsyncClient(
            verify=state.ssl_context(), trust_env=False, timeout=_TEST_TIMEOUT_SECONDS
        ) as client:
            response = await client.get(
                f"https://{host}/api/2.0/preview/scim/v2/Me",
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        return False, f"Could not connect to Databricks at {host}: {type(exc).__name__}.", host
    if response.status_code == 200:
        user = response.json().get("userName", "?")
        return True, f"Connection successful: authenticated as {user}.", host
    try:
        detail = response.json().get("message", "")
    except ValueError:
        detail = ""
    return (
        False,
        f"Databricks rejected the credentials: HTTP {response.status_code} {detail}".rstrip(),
        host,
    )


class _PrequelApp:
    """Route handlers bound to one `PrequelState`."""

    def __init__(self, state: PrequelState) -> None:
        self.state = state

    def check_headers(self, request: Request) -> None:
        """Raise unless the API key is live and the API version header is the supported one."""
        key = request.headers.get("x-api-key", "")
        if not key or not self.state.key_valid(key):
            raise _EnvelopeError(401, "Unauthorized: invalid API key")
        version = request.headers.get("x-prequel-api-version")
        if version is None:
            raise _EnvelopeError(400, "Missing required header: X-Prequel-Api-Version")
        if version != API_VERSION:
            raise _EnvelopeError(400, f"Unsupported X-Prequel-Api-Version: {version}")

    def endpoint(
        self, handler: Handler, kind: _Kind, *, documented: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            if not documented and self.state.documented_only:  # as if the route did not exist
                return json_response(404, prequel_error_body(404))
            try:
                self.check_headers(request)
                return await handler(request, kind)
            except _EnvelopeError as exc:
                return json_response(
                    exc.status, {"status": "error", "data": None, "message": exc.message}
                )
            except BadBodyError as exc:
                return json_response(400, {"status": "error", "data": None, "message": str(exc)})

        return run

    def _connection(self, request: Request, kind: _Kind) -> Connection:
        ident: str = request.path_params["ident"]
        connection = self.state.find(kind.store, ident)
        if connection is None:
            raise _EnvelopeError(404, f"{kind.label} {ident} not found")
        return connection

    @staticmethod
    async def _changes(request: Request, kind: _Kind, *, allow_empty: bool) -> dict[str, Any]:
        body = await read_json_object(request, empty_ok=allow_empty)
        key = kind.body
        changes = body.get(key, {} if allow_empty else None)
        if not isinstance(changes, dict):
            raise _EnvelopeError(400, f'The request body must be {{"{key}": {{...}}}}.')
        settings = changes.get("databricks")
        if settings is not None and not isinstance(settings, dict):
            raise _EnvelopeError(400, f"{key}.databricks must be an object.")
        auth = (settings or {}).get("access_token_auth")
        if auth is not None:
            token = auth.get("access_token") if isinstance(auth, dict) else None
            if not isinstance(token, str) or not token:
                raise _EnvelopeError(
                    400,
                    f"{key}.databricks.access_token_auth.access_token must be a non-empty string.",
                )
        return changes

    async def list_all(self, request: Request, kind: _Kind) -> Response:
        del request
        items = [redact(c.config) for c in self.state.connections(kind.store)]
        return _ok({f"{kind.body}s": items, "has_next": False, "next_url": None})

    async def get_one(self, request: Request, kind: _Kind) -> Response:
        return _ok({kind.body: redact(self._connection(request, kind).config)})

    async def patch_one(self, request: Request, kind: _Kind) -> Response:
        connection = self._connection(request, kind)
        changes = await self._changes(request, kind, allow_empty=False)
        return _ok({kind.body: connection.apply(changes)}, f"{kind.body.capitalize()} updated.")

    async def test_one(self, request: Request, kind: _Kind) -> Response:
        connection = self._connection(request, kind)
        config = connection.merged(await self._changes(request, kind, allow_empty=True))
        saved = connection.access_token
        return await self._test(kind, connection.id, config, saved=saved)

    async def test_unsaved(self, request: Request, kind: _Kind) -> Response:
        config = await self._changes(request, kind, allow_empty=False)
        return await self._test(kind, None, config)

    async def _test(
        self, kind: _Kind, ident: str | None, config: dict[str, Any], saved: str | None = None
    ) -> Response:
        ok, message, host = await _probe(self.state, config)
        token = token_of(config)
        is_saved = token is not None and token == saved
        test = ConnectionTest(kind.store, ident, host, token, ok, message, token_saved=is_saved)
        self.state.record_test(test)
        result = {"status": "success" if ok else "failure", "message": message}
        return _ok(result, "Connection test completed.")


def build_prequel_app(state: PrequelState) -> Starlette:
    """Build the Prequel ASGI app for ``state`` (without the fault/log middleware).

    Routes are marked documented (Prequel's docs, or its own client ``@prequel/react``: the
    deprecated ``/export/`` forms) or inferred; ``state.documented_only`` turns the inferred
    ones off. ``/export/sources/...`` is the ``/export/`` form the versioning page names for
    ``/sources``.
    """
    app = _PrequelApp(state)
    routes: list[Route] = []
    # (prefix, kind, is GET/PATCH {id} documented, is {id}/test-connection documented)
    for prefix, kind, one_documented, test_documented in (
        ("/sources", _SOURCE, False, False),
        ("/export/sources", _SOURCE, True, True),
        ("/destinations", _DESTINATION, True, False),
        ("/export/destinations", _DESTINATION, True, True),
    ):
        one = f"{prefix}/{{ident}}"
        routes += [
            Route(prefix, app.endpoint(app.list_all, kind), methods=["GET"]),
            Route(one, app.endpoint(app.get_one, kind, documented=one_documented), methods=["GET"]),
            Route(
                one,
                app.endpoint(app.patch_one, kind, documented=one_documented),
                methods=["PATCH"],
            ),
            Route(
                f"{one}/test-connection",
                app.endpoint(app.test_one, kind, documented=test_documented),
                methods=["POST"],
            ),
        ]
    one = "/import/sources/{ident}"
    routes += [
        Route("/test-destination", app.endpoint(app.test_unsaved, _DESTINATION), methods=["POST"]),
        Route(one, app.endpoint(app.get_one, _IMPORT_SOURCE, documented=False), methods=["GET"]),
        Route(one, app.endpoint(app.patch_one, _IMPORT_SOURCE), methods=["PATCH"]),
        Route(f"{one}/test-source", app.endpoint(app.test_one, _IMPORT_SOURCE), methods=["POST"]),
        Route(
            "/import/test-source", app.endpoint(app.test_unsaved, _IMPORT_SOURCE), methods=["POST"]
        ),
    ]
    return service_app(routes, prequel_error_body)
