"""State of one Databricks workspace emulator: principals, PATs and OAuth M2M secrets.

PATs follow Azure Databricks' lifecycle on the virtual clock: they expire, and one not used
for 90 days is revoked (applied lazily whenever tokens are looked up or listed or a PAT
authenticates, so advancing the clock is enough). Revoked tokens keep their reason, for tests.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from emulators.databricks_model import (
    TOKEN_QUOTA,
    TWO_YEARS_SECONDS,
    ApiError,
    DatabricksConf,
    Principal,
    Token,
)
from emulators.databricks_oauth import OAuthSecret, OAuthSecretStore

if TYPE_CHECKING:
    from emulators.clock import Clock
    from emulators.entra_state import EntraState
    from emulators.registry import SecretRegistry

__all__ = ["DatabricksState", "RevocationReason"]

OAUTH_TOKEN_SECONDS = 3600

RevocationReason = Literal["deleted", "inactive", "can-use-removed", "left-workspace"]
"""Why a PAT was revoked: an API or test deleted it, 90 days unused, CAN_USE removed, or its
principal was removed from the workspace."""


class DatabricksState:
    """Principals and tokens of one workspace; every method is thread-safe.

    Token expiry follows the virtual `Clock`; OAuth access tokens from ``/oidc/v1/token``
    expire by real time.
    """

    def __init__(
        self,
        *,
        entra: EntraState,
        clock: Clock,
        registry: SecretRegistry,
        workspace_id: int | None = None,
    ) -> None:
        self.entra = entra
        self.clock = clock
        self.conf = DatabricksConf()
        self.other_acl: list[dict[str, Any]] = []
        """Token-permission entries for users and groups, echoed by the permissions API."""
        self.workspace_id = workspace_id or 10**15 + secrets.randbelow(9 * 10**15)
        self._registry = registry
        self._lock = threading.RLock()
        self._next_id = 10**15 + secrets.randbelow(8 * 10**15)
        self._by_id: dict[int, Principal] = {}
        self._by_app: dict[str, Principal] = {}
        self._by_user: dict[str, Principal] = {}
        self._tokens: dict[str, Token] = {}
        self._by_value: dict[str, Token] = {}
        self._by_owner: dict[int, dict[str, Token]] = {}
        self._revoked: dict[str, tuple[Token, RevocationReason]] = {}
        self.oauth_secrets = OAuthSecretStore(clock=clock, registry=registry)
        """OAuth secrets of the service principals, by numeric principal id."""
        self._oauth_tokens: dict[str, tuple[int, float]] = {}

    # -- principals ---------------------------------------------------------------------

    def add_service_principal(
        self,
        application_id: str,
        display_name: str = "sp",
        *,
        can_use: bool = True,
        in_workspace: bool = True,
        admin: bool = False,
    ) -> Principal:
        """Add a service principal (Entra SPs use their client id as ``application_id``)."""
        with self._lock:
            if application_id in self._by_app:
                raise ValueError(f"service principal {application_id} already exists")
            principal = Principal(
                self._new_id(), application_id, display_name, application_id,
                admin=admin, can_use=can_use, in_workspace=in_workspace,
            )  # fmt: skip
            self._by_id[principal.id] = principal
            self._by_app[application_id] = principal
            return principal

    def add_admin_user(self, user_name: str = "admin@example.com") -> str:
        """Add a workspace admin user and return a PAT of theirs (for on-behalf-of calls)."""
        with self._lock:
            user = self._by_user.get(user_name)
            if user is None:
                user = Principal(
                    self._new_id(), None, user_name, user_name, kind="user", admin=True
                )
                self._by_id[user.id] = user
                self._by_user[user_name] = user
            return self._mint(user, user, None, "admin token").value

    def principal(self, application_id: str) -> Principal | None:
        """Return the service principal with ``application_id``, if any."""
        with self._lock:
            return self._by_app.get(application_id)

    def principal_by_id(self, principal_id: int) -> Principal | None:
        """Return the user or service principal with a numeric id, if any."""
        with self._lock:
            return self._by_id.get(principal_id)

    def service_principals(self) -> list[Principal]:
        """Return all service principals."""
        with self._lock:
            return list(self._by_app.values())

    def set_admin(self, application_id: str, admin: bool) -> None:
        """Make a service principal a workspace admin (or not): the secrets proxy needs it."""
        with self._lock:
            self._sp(application_id).admin = admin

    def set_can_use(self, application_id: str, can_use: bool) -> None:
        """Grant or remove CAN_USE on tokens.

        Removing it revokes the principal's tokens at once [C]; granting it again brings none
        back (a localized page says they return [O]; the contract sheet treats them as revoked).
        """
        with self._lock:
            principal = self._sp(application_id)
            principal.can_use = can_use
            if not principal.may_use_tokens:
                self._revoke_all(principal, "can-use-removed")

    def remove_from_workspace(self, application_id: str) -> None:
        """Remove a service principal from the workspace; its tokens are deleted."""
        with self._lock:
            principal = self._sp(application_id)
            principal.in_workspace = False
            self._revoke_all(principal, "left-workspace")

    def require_token_permission(self, principal: Principal) -> None:
        """Raise what the own-token APIs answer when PATs are off or CAN_USE is missing."""
        if not self.conf.tokens_enabled:
            raise ApiError(404, 404, "Tokens are disabled.")
        if not principal.may_use_tokens:
            raise ApiError(403, "PERMISSION_DENIED", "User does not have permission to use tokens.")

    # -- tokens -------------------------------------------------------------------------

    def mint(self, application_id: str, lifetime_seconds: int | None, comment: str = "") -> Token:
        """Seed a token directly, bypassing every API check.

        ``lifetime_seconds`` None means 2 years; 0 or less means it never expires.
        """
        with self._lock:
            owner = self._sp(application_id)
            return self._mint(owner, owner, lifetime_seconds, comment)

    def create_token(
        self,
        owner: Principal,
        created_by: Principal,
        lifetime_seconds: int | None,
        comment: str,
        scopes: tuple[str, ...] = (),
    ) -> Token:
        """Create a token as the API does: checks enablement, CAN_USE, lifetime and quota."""
        with self._lock:
            self.require_token_permission(owner)
            if lifetime_seconds is not None and lifetime_seconds <= 0:
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"Invalid timeout: {lifetime_seconds}"
                )
            max_days = self.conf.max_token_lifetime_days
            if max_days is not None:
                if lifetime_seconds is None:
                    lifetime_seconds = max_days * 86400
                elif lifetime_seconds > max_days * 86400:
                    raise ApiError(
                        400,
                        "INVALID_PARAMETER_VALUE",
                        f"Token lifetime exceeds the maximum lifetime of {max_days} days allowed"
                        " by the workspace.",
                    )
            if self._live_count(owner) >= TOKEN_QUOTA:
                raise ApiError(
                    400, "QUOTA_EXCEEDED", f"Cannot create more than {TOKEN_QUOTA} tokens."
                )
            return self._mint(owner, created_by, lifetime_seconds, comment, scopes)

    def tokens_of(self, application_id: str, include_expired: bool = False) -> list[Token]:
        """Return a service principal's tokens, oldest first."""
        with self._lock:
            principal = self._by_app.get(application_id)
            if principal is None:
                return []
            return self.tokens_owned_by(principal, include_expired=include_expired)

    def tokens_owned_by(self, owner: Principal, *, include_expired: bool = False) -> list[Token]:
        """Return the tokens a principal owns, oldest first (listing is no use of them)."""
        now = self.clock.now_ms()
        with self._lock:
            self._revoke_inactive(now)
            tokens = list(self._by_owner.get(owner.id, {}).values())
        return [t for t in tokens if include_expired or not t.expired(now)]

    def all_tokens(self) -> list[Token]:
        """Return every token not revoked (expired ones included), oldest first."""
        with self._lock:
            self._revoke_inactive(self.clock.now_ms())
            return list(self._tokens.values())

    def get(self, token_id: str) -> Token | None:
        """Return a token by id; None once revoked or if it never existed."""
        with self._lock:
            self._revoke_inactive(self.clock.now_ms())
            return self._tokens.get(token_id)

    def revoke(self, token_id: str, reason: RevocationReason = "deleted") -> bool:
        """Delete a token; return whether it existed."""
        with self._lock:
            token = self._tokens.pop(token_id, None)
            if token is None:
                return False
            del self._by_value[token.value]
            del self._by_owner[token.owner.id][token_id]
            self._revoked[token_id] = (token, reason)
            return True

    def revoked_tokens(self) -> list[tuple[Token, RevocationReason]]:
        """Return every revoked token with its reason, oldest revocation first (for tests)."""
        with self._lock:
            self._revoke_inactive(self.clock.now_ms())
            return list(self._revoked.values())

    def was_revoked(self, token_id: str) -> bool:
        """Tell whether a token existed and was deleted (for any reason)."""
        return self.revocation_reason(token_id) is not None

    def revocation_reason(self, token_id: str) -> RevocationReason | None:
        """Return why a token was revoked, or None if it is not (or never existed)."""
        with self._lock:
            self._revoke_inactive(self.clock.now_ms())
            entry = self._revoked.get(token_id)
            return None if entry is None else entry[1]

    def last_used(self, token_id: str) -> int | None:
        """Return when a token was last used (epoch ms of the virtual clock), revoked or not.

        Use means the PAT authenticated a request; creation counts as use. Listing tokens with
        another credential (the principal's Entra or OAuth token) is no use of them. None if
        the token never existed.
        """
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None and token_id in self._revoked:
                token = self._revoked[token_id][0]
            return None if token is None else token.last_used_ms

    def is_live(self, value: str) -> bool:
        """Tell whether a PAT value would authenticate now (asking is no use of it)."""
        return self._live_token(value) is not None

    def authenticate_pat(self, value: str) -> Token | None:
        """Return the live PAT with this value, recording its use, or None."""
        with self._lock:
            token = self._live_token(value)
            if token is not None:
                token.last_accessed_ms = self.clock.now_ms()
            return token

    # -- OAuth M2M (Databricks-managed secrets) -----------------------------------------

    def add_oauth_secret(self, application_id: str, lifetime_seconds: int | None = None) -> str:
        """Seed an OAuth secret for a service principal (for ``/oidc/v1/token``); no API checks.

        ``lifetime_seconds`` None: the secret never expires.
        """
        with self._lock:
            principal = self._sp(application_id)
        return self.oauth_secrets.add(principal.id, lifetime_seconds).value

    def oauth_secrets_of(
        self, application_id: str, *, include_expired: bool = False
    ) -> list[OAuthSecret]:
        """Return a service principal's OAuth secrets, oldest first."""
        with self._lock:
            principal = self._sp(application_id)
        return self.oauth_secrets.of(principal.id, include_expired=include_expired)

    def delete_oauth_secret(self, application_id: str, secret_id: str) -> bool:
        """Delete an OAuth secret of a service principal; return whether it had it."""
        with self._lock:
            principal = self._sp(application_id)
        return self.oauth_secrets.delete(principal.id, secret_id)

    def expire_oauth_secret(self, application_id: str, secret_id: str) -> None:
        """Make an OAuth secret of a service principal expired now."""
        with self._lock:
            principal = self._sp(application_id)
        self.oauth_secrets.expire(principal.id, secret_id)

    def issue_oauth_token(self, client_id: str, secret: str) -> str | None:
        """Exchange OAuth client credentials for an access token; None if they are wrong.

        Only a live secret works: a deleted or expired (virtual clock) one does not.
        """
        with self._lock:
            principal = self._by_app.get(client_id)
            if principal is None or not self.oauth_secrets.authenticates(principal.id, secret):
                return None
            value = "eyJ" + secrets.token_urlsafe(60)
            self._oauth_tokens[value] = (principal.id, time.time() + OAUTH_TOKEN_SECONDS)
        self._registry.add(value, "access_token")
        return value

    def resolve_oauth_token(self, value: str) -> Principal | None:
        """Return the principal of a live ``/oidc/v1/token`` access token, or None."""
        with self._lock:
            entry = self._oauth_tokens.get(value)
            if entry is None or entry[1] <= time.time():
                return None
            return self._by_id.get(entry[0])

    # -- internals ----------------------------------------------------------------------

    def _live_token(self, value: str) -> Token | None:
        now = self.clock.now_ms()
        with self._lock:
            self._revoke_inactive(now)
            token = self._by_value.get(value)
            if token is None or token.expired(now) or not self.conf.tokens_enabled:
                return None
            if not token.owner.may_use_tokens:
                return None
            return token

    def _mint(
        self,
        owner: Principal,
        created_by: Principal,
        lifetime_seconds: int | None,
        comment: str,
        scopes: tuple[str, ...] = (),
    ) -> Token:
        now = self.clock.now_ms()
        lifetime = TWO_YEARS_SECONDS if lifetime_seconds is None else lifetime_seconds
        token = Token(
            token_id=secrets.token_hex(32),
            value="dapi" + secrets.token_hex(16),
            owner=owner,
            created_by=created_by,
            creation_ms=now,
            expiry_ms=now + lifetime * 1000 if lifetime > 0 else -1,
            comment=comment,
            scopes=scopes,
        )
        self._registry.add(token.value, "pat")
        self._tokens[token.token_id] = token
        self._by_value[token.value] = token
        self._by_owner.setdefault(owner.id, {})[token.token_id] = token
        return token

    def _live_count(self, owner: Principal) -> int:
        now = self.clock.now_ms()
        self._revoke_inactive(now)
        return sum(1 for t in self._by_owner.get(owner.id, {}).values() if not t.expired(now))

    def _revoke_inactive(self, now_ms: int) -> None:
        """Revoke every token not used for 90 days (call with the lock held)."""
        for token in [t for t in self._tokens.values() if t.inactive(now_ms)]:
            self.revoke(token.token_id, "inactive")

    def _revoke_all(self, principal: Principal, reason: RevocationReason) -> None:
        for token_id in list(self._by_owner.get(principal.id, {})):
            self.revoke(token_id, reason)

    def _sp(self, application_id: str) -> Principal:
        principal = self._by_app.get(application_id)
        if principal is None:
            raise KeyError(f"no service principal {application_id} in this workspace")
        return principal

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"DatabricksState(workspace_id={self.workspace_id}, principals={len(self._by_id)},"
                f" tokens={len(self._tokens)})"
            )
