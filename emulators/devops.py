"""Azure DevOps emulator: variable groups (``distributedtask/variablegroups``, api-version 7.1).

Follows ``docs/reference/consumers.md`` (section 1):

- ``GET /{org}/{project}/_apis/distributedtask/variablegroups/{id}`` (project-scoped, [C] for
  7.0) and ``PUT /{org}/_apis/distributedtask/variablegroups/{id}`` (org-scoped in 7.1, [C]; the
  older project-scoped PUT is served too). Secret variables read back as ``value: null`` [C].
- A PUT replaces the whole group [C]; a PUT without ``variableGroupProjectReferences`` is
  refused with 401 (a user's report, [O]); a null secret value wipes the secret unless
  ``DevOpsState.null_keeps_secret`` (unconfirmed either way).
- Auth: an Entra bearer token for the DevOps resource ``499b84ac-…`` (apps and managed
  identities alike) whose principal is a member of the organisation [C]. A token the service
  cannot use answers **203 with an HTML sign-in page** (reported, [O]); a member-less
  principal 401, a Reader that PUTs 403 (inferred).
- Errors are ADO's JSON ``{"$id", "innerException", "message", "typeName", "typeKey",
  "errorCode", "eventId"}`` (seen in reported answers, [O]); the type keys for 400/403/404
  are inferred.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from emulators.devops_state import ROLES, DevOpsState, VariableGroup
from emulators.entra_state import DEVOPS_RESOURCE
from emulators.web import BadBodyError, json_response, read_json_object, service_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request

    from emulators.entra_state import EntraState

__all__ = ["DevOpsState", "build_devops_app", "devops_error_body"]

_API_VERSION = re.compile(r"^(7\.0|7\.1)(-preview(\.\d+)?)?$")
_GENERIC = {
    400: ("ArgumentException", "The request is not valid."),
    401: ("UnauthorizedRequestException", "TF400813: The user is not authorized."),
    403: ("AccessCheckException", "Access denied."),
    404: ("NotFoundException", "The requested resource was not found."),
    405: ("MethodNotAllowedException", "The requested method is not allowed."),
    429: ("RequestBlockedException", "TF400733: The request has been canceled: rate limited."),
    500: ("InternalServerErrorException", "TF400898: An Internal Error Occurred."),
    503: ("ServiceUnavailableException", "TF400898: The service is unavailable."),
}
SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head>"
    '<body><form method="post" action="https://app.vssps.visualstudio.com/_signin">'
    "<p>Sign in to continue to Azure DevOps.</p></form></body></html>"
)
"""What a request with an unusable credential gets, with status 203."""


def devops_error_body(status: int, path: str = "", message: str | None = None) -> dict[str, Any]:
    """Return an Azure DevOps-shaped error body for ``status`` (used by injected faults)."""
    del path
    key, text = _GENERIC.get(status, ("VssServiceException", f"HTTP {status}."))
    return {
        "$id": "1",
        "innerException": None,
        "message": message or text,
        "typeName": f"Microsoft.TeamFoundation.Framework.Server.{key}, Microsoft.TeamFoundation",
        "typeKey": key,
        "errorCode": 0,
        "eventId": 3000,
    }


class _DevOpsError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _SignIn(Exception):  # noqa: N818 - an answer, not a failure
    """The credential is not one the service can use: answer the sign-in page."""


class _DevOpsApp:
    """Route handlers bound to one `DevOpsState` and the Entra emulator that issues tokens."""

    def __init__(self, state: DevOpsState, entra: EntraState) -> None:
        self.state = state
        self.entra = entra

    def caller(self, request: Request, organization: str) -> tuple[str, str]:
        """Return ``(client_id, role)`` of the bearer token, or raise."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _SignIn
        issued = self.entra.lookup(token.strip())
        if (
            issued is None
            or issued.audience != DEVOPS_RESOURCE
            or issued.tenant_id != self.entra.tenant_id
            or issued.seconds_left() <= 0
        ):
            raise _SignIn
        role = self.state.role_of(organization, issued.client_id)
        if role is None:
            raise _DevOpsError(
                401,
                f"TF400813: The user '{issued.client_id}' is not authorized to access this"
                " resource.",
            )
        return issued.client_id, role

    @staticmethod
    def check_version(request: Request) -> None:
        version = request.query_params.get("api-version")
        if not version:
            raise _DevOpsError(
                400,
                f'No api-version was supplied for the "{request.method}" request. The version'
                " must be supplied as a query parameter (e.g. '?api-version=7.1').",
            )
        if not _API_VERSION.match(version):
            raise _DevOpsError(400, f"The requested REST API version of {version} is out of range.")

    def endpoint(
        self, handler: Callable[[Request, str, str], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            organization: str = request.path_params["organization"]
            try:
                client_id, role = self.caller(request, organization)
                self.check_version(request)
                return await handler(request, client_id, role)
            except _SignIn:
                return HTMLResponse(SIGN_IN_PAGE, status_code=203)
            except _DevOpsError as exc:
                return json_response(exc.status, devops_error_body(exc.status, message=exc.message))
            except BadBodyError as exc:
                return json_response(400, devops_error_body(400, message=str(exc)))

        return run

    def _group(self, request: Request) -> VariableGroup:
        group_id: int = request.path_params["group_id"]
        group = self.state.find(request.path_params["organization"], group_id)
        project = request.path_params.get("project")
        if group is None or (project is not None and project not in group.projects()):
            raise _DevOpsError(404, f"Variable group with id {group_id} does not exist.")
        return group

    async def get_group(self, request: Request, client_id: str, role: str) -> Response:
        del client_id, role
        with self.state.lock:
            return json_response(200, self._group(request).as_json())

    async def put_group(self, request: Request, client_id: str, role: str) -> Response:
        body = _checked(await read_json_object(request))
        if ROLES.index(role) < ROLES.index("Administrator"):
            raise _DevOpsError(
                403,
                f"Access denied: '{client_id}' needs the Administrator role on the"
                " variable group to perform this action.",
            )
        if not body.get("variableGroupProjectReferences"):
            raise _DevOpsError(
                401, f"TF400813: The user '{client_id}' is not authorized to access this resource."
            )
        with self.state.lock:
            group = self._group(request)
            self.state.replace(group, body, {"displayName": client_id, "id": client_id})
            return json_response(200, group.as_json())


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """Raise 400 unless ``body`` is a well-formed VariableGroupParameters."""
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise _DevOpsError(400, "VS402980: The variable group name is required.")
    variables = body.get("variables")
    if not isinstance(variables, dict):
        raise _DevOpsError(400, "The 'variables' field must be an object.")
    for name, var in variables.items():
        if not isinstance(var, dict):
            raise _DevOpsError(400, f"Variable '{name}' must be an object.")
        if var.get("value") is not None and not isinstance(var["value"], str):
            raise _DevOpsError(400, f"The value of variable '{name}' must be a string or null.")
        if not isinstance(var.get("isSecret", False), bool):
            raise _DevOpsError(400, f"isSecret of variable '{name}' must be a boolean.")
    references = body.get("variableGroupProjectReferences")
    if references is not None and not isinstance(references, list):
        raise _DevOpsError(400, "variableGroupProjectReferences must be an array.")
    return body


def build_devops_app(state: DevOpsState, entra: EntraState) -> Starlette:
    """Build the Azure DevOps ASGI app for ``state`` (without the fault/log middleware)."""
    app = _DevOpsApp(state, entra)
    tail = "_apis/distributedtask/variablegroups/{group_id:int}"
    return service_app(
        [
            Route(f"/{{organization}}/{tail}", app.endpoint(app.put_group), methods=["PUT"]),
            Route(
                f"/{{organization}}/{{project}}/{tail}",
                app.endpoint(app.get_group),
                methods=["GET"],
            ),
            Route(
                f"/{{organization}}/{{project}}/{tail}",
                app.endpoint(app.put_group),
                methods=["PUT"],
            ),
        ],
        devops_error_body,
    )
