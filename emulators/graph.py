"""Microsoft Graph emulator: applications, owners, app-role grants, addPassword, removePassword.

Routes (``/v1.0``; an application by object id or as ``applications(appId='…')``, a service
principal by object id or as ``servicePrincipals(appId='…')``):

- ``GET /applications/{id}``: the application with ``passwordCredentials`` (``hint``, never
  ``secretText``);
- ``GET /applications/{id}/owners``: its owners (service principals here);
- ``POST /applications/{id}/addPassword`` ``{"passwordCredential": {displayName?, startDateTime?,
  endDateTime?}}`` -> 200 with the new credential and its ``secretText`` (once);
- ``POST /applications/{id}/removePassword`` ``{"keyId"}`` -> 204;
- ``GET /servicePrincipals/{id}`` and ``/servicePrincipals/{id}/appRoleAssignments``: the Graph
  application permissions granted to a service principal.

Callers present an Entra emulator token for ``https://graph.microsoft.com`` (an app's, from
``scope=https://graph.microsoft.com/.default``, or a managed identity's). Errors have Graph's
shape ``{"error": {"code", "message", "details"?, "innerError": {date, request-id,
client-request-id}}}``; see docs/reference/credential-apis.md for what is confirmed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.routing import Route

from emulators.entra_state import GRAPH_RESOURCE
from emulators.graph_state import GraphError, GraphState, denied, not_found
from emulators.graph_wire import (
    ROOT,
    error_response,
    graph_error_body,
    parse_time,
    password_json,
    sp_json,
    stamp,
)
from emulators.web import BadBodyError, json_response, no_content, read_json_object, service_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from emulators.entra_model import Application, ServicePrincipal

__all__ = ["GraphState", "build_graph_app", "graph_error_body"]

_BY_APP_ID = re.compile(r"^\(appId='([^']+)'\)$")


class _GraphApp:
    """Route handlers bound to one `GraphState`."""

    def __init__(self, state: GraphState) -> None:
        self.state = state
        self.entra = state.entra

    def caller(self, request: Request) -> str:
        """Return the client id behind the bearer token, or raise Graph's 401."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        issued = self.entra.lookup(token.strip())
        if issued is None or issued.tenant_id != self.entra.tenant_id:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if issued.audience != GRAPH_RESOURCE:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        if issued.seconds_left() <= 0:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return issued.client_id

    def application(self, request: Request) -> Application:
        """Resolve ``applications/{object id}`` or ``applications(appId='…')``; 404 if none."""
        object_id = request.path_params.get("object_id")
        if object_id is not None:
            app = self.entra.application(object_id=object_id)
            reference = object_id
        else:
            reference = request.path_params["key"]
            found = _BY_APP_ID.match(reference)
            app = self.entra.application(client_id=found.group(1)) if found else None
        if app is None:
            raise not_found(reference)
        return app

    def principal(self, request: Request) -> ServicePrincipal:
        """Resolve ``servicePrincipals/{object id}`` or ``servicePrincipals(appId='…')``."""
        object_id = request.path_params.get("object_id")
        if object_id is not None:
            sp = self.entra.service_principal(object_id=object_id)
            reference = object_id
        else:
            reference = request.path_params["key"]
            found = _BY_APP_ID.match(reference)
            sp = self.entra.service_principal(client_id=found.group(1)) if found else None
        if sp is None:
            raise not_found(reference)
        return sp

    async def get_application(self, request: Request) -> Response:
        caller, app = self.caller(request), self.application(request)
        if not self.state.may_read(caller, app.client_id):
            raise denied()
        passwords = self.entra.passwords(app.client_id)
        return json_response(
            200,
            {
                "@odata.context": f"{ROOT}/$metadata#applications/$entity",
                "id": app.object_id,
                "appId": app.client_id,
                "displayName": app.display_name,
                "keyCredentials": [],
                "passwordCredentials": [password_json(p, with_secret=False) for p in passwords],
            },
        )

    async def owners(self, request: Request) -> Response:
        caller, app = self.caller(request), self.application(request)
        if not self.state.may_read(caller, app.client_id):
            raise denied()
        found = [
            self.entra.service_principal(client_id=c) for c in self.state.owners(app.client_id)
        ]
        return json_response(
            200,
            {
                "@odata.context": f"{ROOT}/$metadata#directoryObjects",
                "value": [sp_json(sp) for sp in found if sp is not None],
            },
        )

    async def add_password(self, request: Request) -> Response:
        caller, app = self.caller(request), self.application(request)
        if not self.state.may_write(caller, app.client_id):
            raise denied()
        body = await read_json_object(request, empty_ok=True)
        spec = body.get("passwordCredential") or {}
        if not isinstance(spec, dict) or not isinstance(spec.get("displayName", ""), str | None):
            raise GraphError(
                400, "Request_BadRequest", "Invalid passwordCredential in the request body."
            )
        credential = self.state.add_password(
            app.client_id,
            display_name=spec.get("displayName"),
            start=parse_time(spec.get("startDateTime"), "startDateTime"),
            end=parse_time(spec.get("endDateTime"), "endDateTime"),
        )
        return json_response(
            200,
            {
                "@odata.context": f"{ROOT}/$metadata#microsoft.graph.passwordCredential",
                **password_json(credential, with_secret=True),
            },
        )

    async def remove_password(self, request: Request) -> Response:
        caller, app = self.caller(request), self.application(request)
        if not self.state.may_write(caller, app.client_id):
            raise denied()
        key_id = (await read_json_object(request)).get("keyId")
        if not isinstance(key_id, str) or not key_id:
            raise GraphError(400, "Request_BadRequest", "The request body must contain 'keyId'.")
        self.state.remove_password(app.client_id, key_id)
        return no_content()

    async def get_principal(self, request: Request) -> Response:
        self.caller(request)
        sp = self.principal(request)
        body = {"@odata.context": f"{ROOT}/$metadata#servicePrincipals/$entity", **sp_json(sp)}
        del body["@odata.type"]
        return json_response(200, body)

    async def app_role_assignments(self, request: Request) -> Response:
        caller, sp = self.caller(request), self.principal(request)
        if caller != sp.client_id and not self.state.may_read(caller, ""):
            raise denied()
        value = [
            {
                "id": grant.assignment_id,
                "appRoleId": grant.app_role_id,
                "createdDateTime": stamp(grant.created),
                "principalDisplayName": sp.display_name,
                "principalId": sp.object_id,
                "principalType": "ServicePrincipal",
                "resourceDisplayName": "Microsoft Graph",
                "resourceId": self.state.graph_sp_id,
            }
            for grant in self.state.grants(sp.client_id)
        ]
        context = f"{ROOT}/$metadata#servicePrincipals('{sp.object_id}')/appRoleAssignments"
        return json_response(200, {"@odata.context": context, "value": value})


def _endpoint(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except GraphError as exc:
            return error_response(request, exc)
        except BadBodyError as exc:
            return error_response(request, GraphError(400, "BadRequest", str(exc)))

    return run


def build_graph_app(state: GraphState) -> Starlette:
    """Build the Graph ASGI app for ``state`` (without the fault/log middleware)."""
    handlers = _GraphApp(state)

    def both(
        collection: str, tail: str, handler: Callable[[Request], Awaitable[Response]], method: str
    ) -> list[Route]:
        endpoint = _endpoint(handler)
        return [
            Route(f"/v1.0/{collection}/{{object_id}}{tail}", endpoint, methods=[method]),
            Route(f"/v1.0/{collection}{{key}}{tail}", endpoint, methods=[method]),
        ]

    return service_app(
        [
            *both("applications", "", handlers.get_application, "GET"),
            *both("applications", "/owners", handlers.owners, "GET"),
            *both("applications", "/addPassword", handlers.add_password, "POST"),
            *both("applications", "/removePassword", handlers.remove_password, "POST"),
            *both("servicePrincipals", "", handlers.get_principal, "GET"),
            *both("servicePrincipals", "/appRoleAssignments", handlers.app_role_assignments, "GET"),
        ],
        graph_error_body,
    )
