"""GitHub emulator: Actions secrets of repositories and environments (REST, 2022-11-28).

Follows ``docs/reference/consumers.md`` (section 4):

- ``GET …/actions/secrets/public-key`` → ``{key_id, key}`` (base64 Curve25519) [C];
  ``PUT …/actions/secrets/{name}`` with ``{encrypted_value, key_id}`` (a base64 libsodium
  sealed box) → **201** created / **204** updated [C]; ``GET …/actions/secrets/{name}`` →
  ``{name, created_at, updated_at}``, never the value [C]. Environment secrets under
  ``/repos/{owner}/{repo}/environments/{env}/secrets/…`` alike [C].
- Auth ``Authorization: Bearer <token>`` (``token <token>`` too) [C]; ``X-GitHub-Api-Version``
  2022-11-28 (or 2026-03-10) when sent [C]; an unknown version is 400 (inferred).
- Errors ``{"message", "documentation_url", "status"}``: 401 "Bad credentials", 404 "Not Found"
  for a repository the token cannot see, 403 "Resource not accessible by personal access token"
  for a read-only token (GitHub's words, [O]); a missing ``key_id`` is 422 with GitHub's
  reported message [O]; a stale ``key_id`` or a value that does not open is 422 (inferred).
  Secondary rate limits (403/429 with ``Retry-After``) come from the fault plan.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from emulators.github_state import GitHubState, Scope
from emulators.web import BadBodyError, json_response, no_content, read_json_object, service_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["GitHubState", "build_github_app", "github_error_body"]

API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
_DOCS = "https://docs.github.com/rest/actions/secrets"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REASONS = {
    400: "Bad Request",
    401: "Bad credentials",
    403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try"
    " again.",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Validation Failed",
    429: "You have exceeded a secondary rate limit. Please wait a few minutes before you try"
    " again.",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}


def github_error_body(status: int, path: str = "", message: str | None = None) -> dict[str, Any]:
    """Return a GitHub-shaped error body for ``status`` (used by injected faults)."""
    del path
    return {
        "message": message or _REASONS.get(status, f"HTTP {status}"),
        "documentation_url": _DOCS,
        "status": str(status),
    }


class _GitHubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _GitHubApp:
    """Route handlers bound to one `GitHubState`."""

    def __init__(self, state: GitHubState) -> None:
        self.state = state

    def authorise(self, request: Request, scope: Scope, *, write: bool) -> None:
        """Raise unless the token may read (or write) the scope's secrets."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise _GitHubError(401, "Requires authentication")
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            raise _GitHubError(400, f"The API version {version} is not supported.")
        owner, repo, _ = scope
        access = self.state.token_access(token.strip(), owner, repo)
        if access is None:
            raise _GitHubError(401, "Bad credentials")
        if access == "none" or not self.state.has_scope(scope):
            raise _GitHubError(404, "Not Found")
        if write and access != "write":
            raise _GitHubError(403, "Resource not accessible by personal access token")

    def endpoint(
        self, handler: Callable[[Request, Scope], Awaitable[Response]], *, write: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            params = request.path_params
            scope: Scope = (params["owner"], params["repo"], params.get("environment"))
            try:
                self.authorise(request, scope, write=write)
                return await handler(request, scope)
            except _GitHubError as exc:
                return json_response(exc.status, github_error_body(exc.status, message=exc.message))
            except BadBodyError as exc:
                return json_response(
                    400, github_error_body(400, message=f"Problems parsing JSON: {exc}")
                )

        return run

    async def public_key(self, request: Request, scope: Scope) -> Response:
        del request
        key = self.state.key(*scope)
        return json_response(200, {"key_id": key.key_id, "key": key.public_b64})

    async def get_secret(self, request: Request, scope: Scope) -> Response:
        found = self.state.find_secret(scope, request.path_params["name"])
        if found is None:
            raise _GitHubError(404, "Not Found")
        return json_response(200, found.as_json())

    async def put_secret(self, request: Request, scope: Scope) -> Response:
        name: str = request.path_params["name"]
        body = await read_json_object(request)
        for fieldname in ("encrypted_value", "key_id"):
            if not isinstance(body.get(fieldname), str) or not body[fieldname]:
                raise _GitHubError(422, f'Invalid request.\n\n"{fieldname}" wasn\'t supplied.')
        if not _NAME.match(name) or name.upper().startswith("GITHUB_"):
            raise _GitHubError(
                422,
                "Secret names can only contain alphanumeric characters ([a-z], [A-Z],"
                " [0-9]) or underscores (_), must not start with a number or GITHUB_.",
            )
        key = self.state.key(*scope)
        if body["key_id"] != key.key_id:
            raise _GitHubError(422, "Bad key_id: it is not the current key of this scope.")
        value = key.open(body["encrypted_value"])
        if value is None:
            raise _GitHubError(422, "Bad encrypted_value: it is not a sealed box for this key.")
        owner, repo, environment = scope
        created = self.state.set_secret(owner, repo, name, value, environment)
        return json_response(201, {}) if created else no_content()


def build_github_app(state: GitHubState) -> Starlette:
    """Build the GitHub ASGI app for ``state`` (without the fault/log middleware)."""
    app = _GitHubApp(state)
    routes: list[Route] = []
    for prefix in (
        "/repos/{owner}/{repo}/actions/secrets",
        "/repos/{owner}/{repo}/environments/{environment}/secrets",
    ):
        routes += [
            Route(f"{prefix}/public-key", app.endpoint(app.public_key), methods=["GET"]),
            Route(f"{prefix}/{{name}}", app.endpoint(app.get_secret), methods=["GET"]),
            Route(f"{prefix}/{{name}}", app.endpoint(app.put_secret, write=True), methods=["PUT"]),
        ]
    return service_app(routes, github_error_body)
