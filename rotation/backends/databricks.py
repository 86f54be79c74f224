"""Databricks workspace REST adapter: token create / list / delete, SCIM ``Me``.

Every non-2xx answer is translated here, at the boundary, into the :mod:`rotation.errors` tree
with a message that says what to do (the rules: :mod:`rotation.backends.databricks_errors`).
Callers pass an ``httpx.Auth`` per call, so one client serves every principal. Idempotent calls
are retried by the caller's policy; creates never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from rotation import errors
from rotation.backends.databricks_errors import translate
from rotation.backends.http import UNTRUSTED_ADVICE, json_body, untrusted_certificate
from rotation.backends.retry import RetryPolicy, retrying
from rotation.secret import Secret

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Me", "NewToken", "TokenInfo", "Workspace"]

_NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What Databricks tells about a token (never its value)."""

    token_id: str
    creation_ms: int
    expiry_ms: int
    comment: str
    scopes: tuple[str, ...] | None = None
    """The PAT's API scopes; None when it is not scoped (it may call every API)."""
    owner_id: str | None = None
    """Who owns the token (token-management lists only); None in the caller's own list."""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TokenInfo:
        """Build from a ``PublicTokenInfo`` / ``TokenInfo`` object."""
        scopes = data.get("scopes")
        return cls(
            token_id=str(data["token_id"]),
            creation_ms=int(data.get("creation_time") or 0),
            expiry_ms=int(data.get("expiry_time") or -1),
            comment=str(data.get("comment") or ""),
            scopes=tuple(sorted(map(str, scopes))) if isinstance(scopes, list) and scopes else None,
            owner_id=None if data.get("owner_id") is None else str(data["owner_id"]),
        )

    def alive_at(self, now: float) -> bool:
        """Return whether the token has not expired at *now* (epoch seconds)."""
        return self.expiry_ms <= 0 or self.expiry_ms / 1000 > now


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly minted PAT: its value (masked) and its info."""

    value: Secret
    info: TokenInfo


@dataclass(frozen=True, slots=True)
class Me:
    """Who a token authenticates as."""

    user_name: str


@dataclass(frozen=True, slots=True)
class _Context:
    url: str
    operation: str
    principal: str


class Workspace:
    """One Databricks workspace, reached through a shared ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, url: str, retry: RetryPolicy) -> None:
        self._http = http
        self.url = url.rstrip("/")
        self._retry = retry

    def __repr__(self) -> str:
        return f"Workspace({self.url!r})"

    async def create_token(
        self,
        auth: httpx.Auth,
        *,
        lifetime_seconds: int,
        comment: str,
        principal: str,
        scopes: tuple[str, ...] | None = None,
    ) -> NewToken:
        """Mint a PAT for the caller.

        Retried only when it surely did not happen (a 429, a connection that never opened); after
        an unknown outcome the caller reconciles through the rotation id in the comment.
        """
        body = _create_body(comment, lifetime_seconds, scopes)
        ctx = _Context(self.url, "token/create", principal)
        return _new_token(await self._create("/api/2.0/token/create", auth, ctx, body), ctx)

    async def create_token_on_behalf_of(
        self,
        auth: httpx.Auth,
        *,
        application_id: str,
        lifetime_seconds: int,
        comment: str,
        scopes: tuple[str, ...] | None = None,
    ) -> NewToken:
        """Mint a PAT for service principal *application_id* with an admin's credential."""
        body = {"application_id": application_id, **_create_body(comment, lifetime_seconds, scopes)}
        ctx = _Context(self.url, "on-behalf-of token create", application_id)
        path = "/api/2.0/token-management/on-behalf-of/tokens"
        return _new_token(await self._create(path, auth, ctx, body), ctx)

    async def list_tokens(self, auth: httpx.Auth, *, principal: str) -> list[TokenInfo]:
        """List the caller's own live tokens."""
        ctx = _Context(self.url, "token/list", principal)
        data = await self._retried("GET", "/api/2.0/token/list", auth, ctx)
        return [TokenInfo.from_api(t) for t in data.get("token_infos") or []]

    async def list_all_tokens(self, auth: httpx.Auth, *, principal: str) -> list[TokenInfo]:
        """List every token of the workspace (token-management; admin only)."""
        ctx = _Context(self.url, "token-management list", principal)
        data = await self._retried("GET", "/api/2.0/token-management/tokens", auth, ctx)
        return [TokenInfo.from_api(t) for t in data.get("token_infos") or []]

    async def service_principal_id(self, auth: httpx.Auth, application_id: str) -> str | None:
        """Return the workspace's numeric id of service principal *application_id*, if added."""
        ctx = _Context(self.url, "scim/v2/ServicePrincipals", application_id)
        query = urlencode({"filter": f'applicationId eq "{application_id}"'})
        path = f"/api/2.0/preview/scim/v2/ServicePrincipals?{query}"
        data = await self._retried("GET", path, auth, ctx)
        for sp in data.get("Resources") or []:
            if isinstance(sp, dict) and str(sp.get("applicationId", "")).lower() == (
                application_id.lower()
            ):
                return str(sp.get("id"))
        return None

    async def delete_token(self, auth: httpx.Auth, token_id: str, *, principal: str) -> bool:
        """Revoke the caller's token *token_id*; return False when it no longer existed."""
        ctx = _Context(self.url, "token/delete", principal)
        body = {"token_id": token_id}
        return await self._delete(
            lambda: self._call("POST", "/api/2.0/token/delete", auth, ctx, json=body)
        )

    async def delete_token_admin(self, auth: httpx.Auth, token_id: str, *, principal: str) -> bool:
        """Revoke any token by id with an admin credential; False when it no longer existed."""
        ctx = _Context(self.url, "token-management delete", principal)
        path = f"/api/2.0/token-management/tokens/{token_id}"
        return await self._delete(lambda: self._call("DELETE", path, auth, ctx))

    async def me(self, auth: httpx.Auth, *, principal: str) -> Me:
        """Return who *auth* authenticates as (SCIM ``Me``)."""
        ctx = _Context(self.url, "scim/v2/Me", principal)
        data = await self._retried("GET", "/api/2.0/preview/scim/v2/Me", auth, ctx)
        return Me(user_name=str(data.get("userName", "")))

    async def workspace_conf(
        self, auth: httpx.Auth, keys: tuple[str, ...], *, principal: str
    ) -> dict[str, str | None]:
        """Return workspace settings *keys* (``GET /api/2.0/workspace-conf``; admin only)."""
        ctx = _Context(self.url, "workspace-conf", principal)
        path = f"/api/2.0/workspace-conf?keys={','.join(keys)}"
        data = await self._retried("GET", path, auth, ctx)
        return {k: None if data.get(k) is None else str(data[k]) for k in keys}

    async def token_users(self, auth: httpx.Auth, *, principal: str) -> set[str]:
        """Return the service principals with ``CAN_USE`` on tokens (admin only)."""
        ctx = _Context(self.url, "token permissions", principal)
        data = await self._retried("GET", "/api/2.0/permissions/authorization/tokens", auth, ctx)
        return {
            str(entry["service_principal_name"]).lower()
            for entry in data.get("access_control_list") or []
            if isinstance(entry, dict)
            and entry.get("service_principal_name")
            and any(
                p.get("permission_level") == "CAN_USE"
                for p in entry.get("all_permissions") or []
                if isinstance(p, dict)
            )
        }

    async def grant_can_use(self, auth: httpx.Auth, application_id: str, *, principal: str) -> None:
        """Add ``CAN_USE`` on tokens for service principal *application_id* (admin only).

        Always ``PATCH``, which merges: a ``PUT`` that omits a principal deletes its tokens.
        """
        ctx = _Context(self.url, "token permissions update", principal)
        body = {
            "access_control_list": [
                {"service_principal_name": application_id, "permission_level": "CAN_USE"}
            ]
        }
        path = "/api/2.0/permissions/authorization/tokens"
        await retrying(self._retry, lambda: self._call("PATCH", path, auth, ctx, json=body))

    async def _create(
        self, path: str, auth: httpx.Auth, ctx: _Context, body: dict[str, Any]
    ) -> dict[str, Any]:
        """POST a create; retried only when it surely did not happen (429, connect errors)."""
        call = lambda: self._call("POST", path, auth, ctx, json=body)  # noqa: E731
        return await retrying(self._retry, call, idempotent=False)

    async def _delete(self, call: Callable[[], Awaitable[dict[str, Any]]]) -> bool:
        try:
            await retrying(self._retry, call)
        except errors.DatabricksError as exc:
            if exc.status == _NOT_FOUND or exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    async def _retried(
        self, method: str, path: str, auth: httpx.Auth, ctx: _Context
    ) -> dict[str, Any]:
        return await retrying(self._retry, lambda: self._call(method, path, auth, ctx))

    async def _call(
        self,
        method: str,
        path: str,
        auth: httpx.Auth,
        ctx: _Context,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(method, self.url + path, auth=auth, json=json)
        except httpx.TransportError as exc:
            if (why := untrusted_certificate(exc)) is not None:  # refused before anything was sent
                msg = (
                    f"Databricks workspace {ctx.url}: its TLS certificate is not trusted ({why}); "
                )
                msg += f"{UNTRUSTED_ADVICE}."
                raise errors.DatabricksError(msg, transient=False) from None
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            msg = (
                f"Could not reach Databricks workspace {ctx.url} for {ctx.operation} "
                f"({type(exc).__name__}). Check the workspace URL and network; a retry may help."
            )
            raise errors.DatabricksError(msg, transient=True, outcome_unknown=sent) from None
        if response.is_success:
            return json_body(response)
        raise translate(response, url=ctx.url, operation=ctx.operation, principal=ctx.principal)


def _create_body(
    comment: str, lifetime_seconds: int, scopes: tuple[str, ...] | None
) -> dict[str, Any]:
    """Return a create request's body (no lifetime when ≤ 0: Databricks refuses 0)."""
    body: dict[str, Any] = {"comment": comment}
    if lifetime_seconds > 0:
        body["lifetime_seconds"] = lifetime_seconds
    if scopes:
        body["scopes"] = list(scopes)
    return body


def _new_token(data: dict[str, Any], ctx: _Context) -> NewToken:
    """Read a create answer; one without a value may still have minted: reconcile it."""
    try:
        value, info = data["token_value"], data["token_info"]
        return NewToken(Secret(str(value)), TokenInfo.from_api(info))
    except (KeyError, TypeError, ValueError):
        msg = (
            f"Databricks answered {ctx.operation} in workspace {ctx.url} without a usable token; "
            "the PAT it may have made is looked up by its comment and revoked."
        )
        raise errors.DatabricksError(msg, transient=True, outcome_unknown=True) from None
