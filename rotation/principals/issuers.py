"""The two ways an issuer reaches Databricks: as the principal itself, or as an admin for it.

:class:`OwnIssuer` calls ``token/create``, ``token/list`` and ``token/delete`` with the principal's
own bearer token (Entra ID, Databricks OAuth, a managed identity, or the ``self`` PAT).
:class:`OnBehalfOfIssuer` uses a workspace admin's PAT and the token-management routes, and keeps
only the tokens the principal owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation import errors
from rotation.backends import BearerAuth

if TYPE_CHECKING:
    import httpx

    from rotation.backends import NewToken, TokenInfo, Workspace

__all__ = ["OnBehalfOfIssuer", "OwnIssuer"]


class _Issuer:
    """What every issuer holds: the workspace, the auth it calls with, whom it mints for."""

    def __init__(
        self, workspace: Workspace, auth: httpx.Auth, application_id: str, expires: float | None
    ) -> None:
        self._ws = workspace
        self._auth = auth
        self._app = application_id
        self._expires = expires
        self._foreign: frozenset[str] = frozenset()

    @property
    def application_id(self) -> str:
        return self._app

    @property
    def credential_expires_on(self) -> float | None:
        return self._expires

    @property
    def foreign(self) -> frozenset[str]:
        return self._foreign


class OwnIssuer(_Issuer):
    """The principal acts as itself, with a bearer token (Entra ID, Databricks OAuth, a PAT)."""

    async def authenticate(self) -> None:
        """Get a bearer token now (a static PAT is judged by Databricks at the first call)."""
        if isinstance(self._auth, BearerAuth):
            await self._auth.token()

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        """Mint a PAT as the principal (``token/create``)."""
        return await self._ws.create_token(
            self._auth,
            lifetime_seconds=lifetime_seconds,
            comment=comment,
            principal=self._app,
            scopes=scopes,
        )

    async def list(self) -> list[TokenInfo]:
        """List the principal's own live PATs (``token/list``)."""
        return await self._ws.list_tokens(self._auth, principal=self._app)

    async def whoami(self) -> str | None:
        """Return the SCIM ``userName`` the principal's token answers to."""
        return (await self._ws.me(self._auth, principal=self._app)).user_name

    async def revoke(self, token_id: str) -> bool:
        """Revoke one of the principal's PATs (``token/delete``); False if already gone."""
        return await self._ws.delete_token(self._auth, token_id, principal=self._app)


class OnBehalfOfIssuer(_Issuer):
    """An admin PAT mints and manages the principal's tokens.

    token-management lists every token of the workspace: :meth:`list` keeps only those the
    principal owns (its numeric id looked up once through SCIM), so a person's or another
    principal's PAT is never taken for this principal's.
    """

    _owner: str | None = None

    async def authenticate(self) -> None:
        """Do nothing: the admin PAT is used as it is and judged by Databricks at the first call."""

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        """Mint a PAT for the principal with the admin PAT (on-behalf-of)."""
        return await self._ws.create_token_on_behalf_of(
            self._auth,
            application_id=self._app,
            lifetime_seconds=lifetime_seconds,
            comment=comment,
            scopes=scopes,
        )

    async def list(self) -> list[TokenInfo]:
        """List the workspace's tokens the principal owns (token-management)."""
        owner = await self._owner_id()
        tokens = await self._ws.list_all_tokens(self._auth, principal=self._app)
        self._foreign = frozenset(t.token_id for t in tokens if t.owner_id != owner)
        return [t for t in tokens if t.owner_id == owner]

    async def _owner_id(self) -> str:
        if self._owner is None:
            found = await self._ws.service_principal_id(self._auth, self._app)
            if found is None:
                msg = (
                    f"Service principal {self._app} is not in workspace {self._ws.url}: add it "
                    "(Settings → Identity and access → Service principals → Add), then retry."
                )
                raise errors.PrincipalNotInWorkspaceError(msg)
            self._owner = found
        return self._owner

    async def whoami(self) -> str | None:
        """Return None: the admin PAT answers as the admin, not as the principal."""
        return None

    async def revoke(self, token_id: str) -> bool:
        """Revoke a token by id with the admin PAT; False if already gone."""
        return await self._ws.delete_token_admin(self._auth, token_id, principal=self._app)
