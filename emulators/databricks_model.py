"""Value objects of the Databricks emulator: principals, tokens, settings and API errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_APIS",
    "ApiError",
    "DatabricksConf",
    "Principal",
    "Token",
    "public_token_info",
    "token_info",
]

TWO_YEARS_SECONDS = 2 * 365 * 24 * 3600
TOKEN_QUOTA = 600
DAY_MS = 86_400_000
INACTIVITY_LIMIT_MS = 90 * DAY_MS
"""Azure Databricks revokes a PAT not used for 90 days, whatever its expiry [C]."""
ALL_APIS = "all-apis"
"""The API scope that reaches every route (a PAT picked with "all APIs" in the UI)."""


class ApiError(Exception):
    """A Databricks API error; routes turn it into ``{"error_code", "message"}`` JSON."""

    def __init__(
        self,
        status: int,
        error_code: str | int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON error body."""
        return {"error_code": self.error_code, "message": self.message}


@dataclass
class DatabricksConf:
    """Workspace settings the token APIs depend on; tests may change them at any time."""

    tokens_enabled: bool = True
    max_token_lifetime_days: int | None = None
    obo_enabled: bool = True


@dataclass(eq=False)
class Principal:
    """A workspace user or service principal.

    For service principals ``user_name`` equals ``application_id`` (SCIM ``userName``).
    """

    id: int
    application_id: str | None
    display_name: str
    user_name: str
    kind: str = "service_principal"
    admin: bool = False
    can_use: bool = True
    in_workspace: bool = True

    @property
    def may_use_tokens(self) -> bool:
        """Admins always may; others need the CAN_USE permission on tokens."""
        return self.in_workspace and (self.admin or self.can_use)


@dataclass(eq=False)
class Token:
    """A personal access token; ``expiry_ms`` is -1 when it never expires.

    ``scopes`` empty means unscoped (every route). ``last_accessed_ms`` is when the token last
    authenticated a request (-1: never); for the inactivity rule creation counts as use too.
    """

    token_id: str
    value: str = field(repr=False)
    owner: Principal
    created_by: Principal
    creation_ms: int
    expiry_ms: int
    comment: str
    scopes: tuple[str, ...] = ()
    last_accessed_ms: int = -1

    @property
    def last_used_ms(self) -> int:
        """Return when the token was last used: its last authentication, else its creation."""
        return max(self.creation_ms, self.last_accessed_ms)

    def expired(self, now_ms: int) -> bool:
        """Tell whether ``now_ms`` is past the expiry time (never for ``expiry_ms == -1``)."""
        return self.expiry_ms > 0 and now_ms > self.expiry_ms

    def inactive(self, now_ms: int) -> bool:
        """Tell whether the token has gone unused for 90 days (Azure revokes it then)."""
        return now_ms - self.last_used_ms >= INACTIVITY_LIMIT_MS

    def allows(self, scope: str | None) -> bool:
        """Tell whether the token may call a route of API ``scope`` (None: any scope may)."""
        return scope is None or not self.scopes or ALL_APIS in self.scopes or scope in self.scopes


def public_token_info(token: Token) -> dict[str, Any]:
    """Render a token as ``PublicTokenInfo`` (what ``token/create`` and ``token/list`` show)."""
    info: dict[str, Any] = {
        "token_id": token.token_id,
        "creation_time": token.creation_ms,
        "expiry_time": token.expiry_ms,
        "comment": token.comment,
    }
    if token.scopes:
        info["scopes"] = list(token.scopes)
    if token.last_accessed_ms > 0:
        info["last_accessed_time"] = token.last_accessed_ms
    return info


def token_info(token: Token, workspace_id: int) -> dict[str, Any]:
    """Render a token as ``TokenInfo`` (what the token-management APIs show).

    ``TokenInfo`` has ``last_used_day`` where ``PublicTokenInfo`` has ``last_accessed_time``
    (databricks-sdk-py 0.162: "approximate timestamp for the day the token was last used");
    rendering it as epoch ms of that UTC midnight, only once the token authenticated, is
    inferred.
    """
    info = public_token_info(token)
    info.pop("last_accessed_time", None)
    info |= {
        "created_by_id": token.created_by.id,
        "created_by_username": token.created_by.user_name,
        "owner_id": token.owner.id,
        "workspace_id": workspace_id,
    }
    if token.last_accessed_ms > 0:
        info["last_used_day"] = token.last_accessed_ms - token.last_accessed_ms % DAY_MS
    return info
