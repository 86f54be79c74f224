"""Databricks workspace REST adapter: token create / list / delete, SCIM ``Me``.

Every non-2xx answer is translated here, at the boundary, into the :mod:`rotation.errors` tree
with a message that says what to do. Callers pass an ``httpx.Auth`` per call, so one client
serves every principal. Idempotent calls are retried by the caller's policy; creates never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from rotation import errors
from rotation._http import is_transient_status, json_body, retry_after
from rotation.retry import RetryPolicy, retrying
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
    owner_id: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TokenInfo:
        """Build from a ``PublicTokenInfo`` / ``TokenInfo`` object."""
        owner = data.get("owner_id")
        return cls(
            token_id=str(data["token_id"]),
            creation_ms=int(data.get("creation_time") or 0),
            expiry_ms=int(data.get("expiry_time") or -1),
            comment=str(data.get("comment") or ""),
            owner_id=None if owner is None else str(owner),
        )


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly minted PAT: its value (masked) and its info."""

    value: Secret
    info: TokenInfo


@dataclass(frozen=True, slots=True)
class Me:
    """Who a token authenticates as."""

    user_name: str
    user_id: str


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
        self, auth: httpx.Auth, *, lifetime_seconds: int, comment: str, principal: str
    ) -> NewToken:
        """Mint a PAT for the caller (never retried: a lost answer is reconciled by comment)."""
        body: dict[str, Any] = {"comment": comment}
        if lifetime_seconds > 0:
            body["lifetime_seconds"] = lifetime_seconds
        ctx = _Context(self.url, "token/create", principal)
        return _new_token(await self._create("/api/2.0/token/create", auth, ctx, body), ctx)

    async def create_token_on_behalf_of(
        self, auth: httpx.Auth, *, application_id: str, lifetime_seconds: int, comment: str
    ) -> NewToken:
        """Mint a PAT for service principal *application_id* with an admin's credential."""
        body: dict[str, Any] = {"application_id": application_id, "comment": comment}
        if lifetime_seconds > 0:
            body["lifetime_seconds"] = lifetime_seconds
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
        return Me(user_name=str(data.get("userName", "")), user_id=str(data.get("id", "")))

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
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            msg = (
                f"Could not reach Databricks workspace {ctx.url} for {ctx.operation} "
                f"({type(exc).__name__}). Check the workspace URL and network; a retry may help."
            )
            raise errors.DatabricksError(msg, transient=True, outcome_unknown=sent) from exc
        if response.is_success:
            return json_body(response)
        raise _translate(response, ctx)


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


def _translate(  # noqa: PLR0911 — one return per documented failure
    response: httpx.Response, ctx: _Context
) -> errors.DatabricksError:
    """Map a Databricks error answer to the exception tree, with what to do."""
    body = json_body(response)
    raw_code = body.get("error_code")
    code = None if raw_code is None else str(raw_code)
    message = str(body.get("message") or response.headers.get("x-databricks-reason-phrase") or "")
    status = response.status_code
    lowered = message.lower()
    kw: dict[str, Any] = {"status": status, "error_code": code}
    where = f"workspace {ctx.url} ({ctx.operation}, principal {ctx.principal})"
    if is_transient_status(status):
        return errors.DatabricksError(
            f"Databricks answered {status} {code or ''} in {where}: {message}. "
            "This is transient; the call is retried and the next run resumes.",
            transient=True,
            retry_after=retry_after(response),
            outcome_unknown=status >= 500,  # noqa: PLR2004
            **kw,
        )
    if "tokens are disabled" in lowered or ("disabled" in lowered and "token" in lowered):
        return errors.TokensDisabledError(
            f"Personal access tokens are disabled in {where}. A workspace admin must enable them "
            "(Admin Settings → Advanced → Personal Access Tokens, or PATCH /api/2.0/workspace-conf "
            'with {"enableTokensConfig": "true"}).',
            **kw,
        )
    if "permission to use tokens" in lowered:
        return errors.MissingCanUseError(
            f"Service principal {ctx.principal} lacks CAN_USE on tokens in {where}. Grant it in "
            "Admin Settings → Access control → Personal access tokens → Permission settings, or "
            "PATCH /api/2.0/permissions/authorization/tokens with "
            f'{{"service_principal_name": "{ctx.principal}", "permission_level": "CAN_USE"}}.',
            **kw,
        )
    if "user not authorized" in lowered:
        return errors.PrincipalNotInWorkspaceError(
            f"Service principal {ctx.principal} is not a user of {where}. Add it: Settings → "
            "Identity and access → Service principals → Add → Import (application id), and "
            "enable Workspace access.",
            **kw,
        )
    if code == "QUOTA_EXCEEDED" or "quota" in lowered:
        return errors.TokenQuotaError(
            f"Service principal {ctx.principal} holds the maximum of 600 live tokens in {where}. "
            "Revoke unused tokens (token-management API or `databricks tokens delete`); tokens "
            "this tool minted and lost are swept automatically.",
            **kw,
        )
    if "on-behalf-of" in lowered:
        return errors.OnBehalfOfDisabledError(
            f"The workspace refuses on-behalf-of token creation in {where}: {message}. On Azure, "
            "use principal kind 'databricks-oauth' (an OAuth secret of the service principal, "
            "then token/create as the principal) instead of 'databricks-obo'.",
            **kw,
        )
    if "lifetime" in lowered and ctx.operation.endswith("create"):
        return errors.LifetimeTooLongError(
            f"The requested token lifetime is above the workspace maximum in {where}: {message}. "
            "Lower lifetime_days for this target (keeping it above rotate_before_days plus the "
            "grace period) or ask an admin to raise maxTokenLifetimeDays.",
            **kw,
        )
    if "invalid access token" in lowered:
        return errors.InvalidTokenError(
            f"Databricks rejected the credential as invalid, expired or revoked in {where}.", **kw
        )
    if status == 401:  # noqa: PLR2004
        return errors.InvalidTokenError(
            f"Databricks did not accept the credential in {where}: {message}", **kw
        )
    return errors.DatabricksError(
        f"Databricks answered {status} {code or ''} in {where}: {message}", **kw
    )
