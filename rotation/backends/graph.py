"""Microsoft Graph: an application's password credentials (``addPassword`` / ``removePassword``).

The caller is the application's own service principal, with an app-only token for
``https://graph.microsoft.com/.default``; it needs ``Application.ReadWrite.OwnedBy`` and to own its
application (or a tenant-wide ``Application.ReadWrite.All``). Graph's errors
(``{"error": {"code", "message"}}``) become one line that says what to do; a 429's
``Retry-After`` is honoured through the project's retry policy. See
``docs/reference/credential-apis.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from rotation import errors
from rotation.backends.http import (
    UNTRUSTED_ADVICE,
    is_transient_status,
    json_body,
    retry_after,
    untrusted_certificate,
)
from rotation.backends.retry import retrying
from rotation.secret import Secret

if TYPE_CHECKING:
    from rotation.backends.retry import RetryPolicy

__all__ = [
    "GRAPH_SCOPE",
    "OWNED_BY",
    "OWNED_BY_ROLE",
    "WRITE_ALL_ROLES",
    "GraphApplication",
    "GraphPassword",
    "graph_time",
    "parse_graph_time",
]

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
OWNED_BY = "Application.ReadWrite.OwnedBy"
OWNED_BY_ROLE = "18a4783c-866b-4cc7-a460-3d5e5662c884"
WRITE_ALL_ROLES = frozenset(
    {"1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "19dbc75e-c2e2-444c-a770-ec69d8559fc7"}
)
"""``Application.ReadWrite.All`` and ``Directory.ReadWrite.All``: rights on every application."""
_POLICY = "CredentialInvalidLifetimeAsPerAppPolicy"


def graph_time(epoch: float) -> str:
    """Return *epoch* as Graph writes times (``2026-12-06T11:00:00Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_graph_time(raw: object) -> float | None:
    """Return a Graph time (up to 7 fractional digits, ``Z``) as epoch seconds, or None."""
    if not isinstance(raw, str) or not raw:
        return None
    text = raw.strip().removesuffix("Z")
    head, _, frac = text.partition(".")
    try:
        moment = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0)


@dataclass(frozen=True, slots=True)
class GraphPassword:
    """One ``passwordCredential`` of the application (``secret`` only in addPassword's answer)."""

    key_id: str
    display_name: str | None
    hint: str | None
    start: float | None
    end: float | None
    secret: Secret | None = None
    """The value (create answers only), masked."""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GraphPassword:
        """Read Graph's JSON form."""
        text = data.get("secretText")
        return cls(
            key_id=str(data.get("keyId", "")),
            display_name=data.get("displayName") or None,
            hint=data.get("hint") or None,
            start=parse_graph_time(data.get("startDateTime")),
            end=parse_graph_time(data.get("endDateTime")),
            secret=Secret(text) if isinstance(text, str) and text else None,
        )


class GraphApplication:
    """One Entra application in Graph, acted on by its own service principal."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        graph_url: str,
        app_id: str,
        auth: httpx.Auth,
        retry: RetryPolicy,
    ) -> None:
        self._http = http
        self._root = f"{graph_url.rstrip('/')}/v1.0"
        self._app_id = app_id
        self._auth = auth
        self._retry = retry
        self._object_id: str | None = None

    def __repr__(self) -> str:
        return f"GraphApplication({self._app_id!r})"

    async def passwords(self) -> list[GraphPassword]:
        """Return the application's password credentials (``GET applications(appId=…)``)."""
        data = await self._retried("GET", f"/applications(appId='{quote(self._app_id)}')")
        self._object_id = str(data.get("id") or "") or None
        raw = data.get("passwordCredentials") or []
        return [GraphPassword.from_api(p) for p in raw if isinstance(p, dict)]

    async def add_password(self, display_name: str, end: float) -> GraphPassword:
        """``addPassword`` until *end* (never retried after an unknown outcome: swept later)."""
        body = {"passwordCredential": {"displayName": display_name, "endDateTime": graph_time(end)}}
        path = f"{await self._path()}/addPassword"
        data = await retrying(
            self._retry, lambda: self._call("POST", path, body, create=True), idempotent=False
        )
        return GraphPassword.from_api(data)

    async def remove_password(self, key_id: str) -> bool:
        """``removePassword``; False when the application has no such key id (already gone)."""
        path = f"{await self._path()}/removePassword"
        try:
            await self._retried("POST", path, {"keyId": key_id})
        except _NotFoundError:
            return False
        return True

    async def owner_ids(self) -> set[str]:
        """Return the application (client) ids of the application's owners."""
        data = await self._retried("GET", f"{await self._path()}/owners")
        return {str(o.get("appId", "")).lower() for o in data.get("value") or []}

    async def app_role_ids(self) -> set[str]:
        """Return the Graph app role ids granted to the application's service principal."""
        path = f"/servicePrincipals(appId='{quote(self._app_id)}')/appRoleAssignments"
        data = await self._retried("GET", path)
        return {str(a.get("appRoleId", "")) for a in data.get("value") or []}

    async def _path(self) -> str:
        if self._object_id is None:
            await self.passwords()
        return f"/applications/{self._object_id}"

    async def _retried(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await retrying(self._retry, lambda: self._call(method, path, body))

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, *, create: bool = False
    ) -> dict[str, Any]:
        url = self._root + path
        try:
            response = await self._http.request(method, url, auth=self._auth, json=body)
        except httpx.TransportError as exc:
            if (why := untrusted_certificate(exc)) is not None:
                msg = f"Microsoft Graph at {self._root}: its TLS certificate is not trusted "
                raise errors.CredentialRotationError(f"{msg}({why}); {UNTRUSTED_ADVICE}.") from None
            msg = f"Could not reach Microsoft Graph at {self._root} ({type(exc).__name__}); "
            msg += "a later run retries."
            error = errors.CredentialRotationError(msg, transient=True)
            error.outcome_unknown = create and not isinstance(exc, httpx.ConnectError)
            raise error from None
        if response.is_success:
            return json_body(response)
        error = self._error(response)
        error.outcome_unknown = create and response.status_code != 429  # noqa: PLR2004
        raise error

    def _error(self, response: httpx.Response) -> errors.CredentialRotationError:
        status = response.status_code
        error = json_body(response).get("error")
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        app = self._app_id
        if status == 404 and self._object_id is not None:  # noqa: PLR2004
            return _NotFoundError(f"Graph: not found ({code}).")
        if code == _POLICY:
            return errors.CredentialPolicyError(
                f"The tenant's app management policy caps the lifetime of application {app}'s "
                "client secrets below credential_lifetime_days: lower credential_lifetime_days "
                "to the policy's maximum (nothing was created)."
            )
        if status in {401, 403}:
            return errors.CredentialRightsError(
                f"Microsoft Graph refused application {app} ({status} {code}): grant its service "
                f"principal the Graph application permission {OWNED_BY} (with admin consent) "
                "and make it an owner of its own application "
                f"(az ad app owner add --id {app} --owner-object-id <its service principal's "
                "object id>); nothing was created."
            )
        if status == 404:  # noqa: PLR2004
            return errors.CredentialRotationError(
                f"Microsoft Graph has no application with appId {app} ({code}): check client_id."
            )
        transient = is_transient_status(status) or code == "Directory_ConcurrencyViolation"
        return errors.CredentialRotationError(
            f"Microsoft Graph answered {status} ({code}) for application {app}; "
            + ("a later run retries." if transient else "check the application in Entra ID."),
            transient=transient,
            retry_after=retry_after(response),
        )


class _NotFoundError(errors.CredentialRotationError):
    """The password (key id) is not on the application: nothing to remove."""
