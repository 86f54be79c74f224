"""The principal seam: what every kind of service principal provides, and what it is given.

A principal kind is one module of this package: its configuration table (a :class:`PrincipalModel`
subclass with a ``kind`` literal), how it opens a :class:`TokenIssuer` from an
:class:`IssuerContext` (reading its credential from Key Vault, if it has one), and what ``doctor``
checks for it (:meth:`PrincipalModel.check_credential`). The registry in ``__init__`` lists the
kinds; nothing outside this package asks which kind a principal is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rotation.fields import Guid, Model, SecretName

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import httpx

    from rotation.backends import AzureOptions, NewToken, TokenInfo, Workspace
    from rotation.secret import Secret

__all__ = [
    "ClientSecretPrincipal",
    "CredentialReader",
    "Finding",
    "IssuerContext",
    "PrincipalModel",
    "TokenIssuer",
]


class TokenIssuer(Protocol):
    """Mint, list and revoke one service principal's PATs."""

    @property
    def application_id(self) -> str:
        """Return the principal's application id (SCIM ``userName``)."""
        ...

    async def authenticate(self) -> None:
        """Get the principal's bearer token now, so a bad credential fails at its own step."""
        ...

    @property
    def credential_expires_on(self) -> float | None:
        """Return when the credential that mints PATs expires (Key Vault ``exp``), if known."""
        ...

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        """Mint a PAT (retried only when it surely did not happen: 429, no connection)."""
        ...

    async def whoami(self) -> str | None:
        """Return the SCIM ``userName`` the principal's own token answers to (None: cannot ask)."""
        ...

    async def list(self) -> list[TokenInfo]:
        """List the principal's own PATs (only those: never another user's or principal's)."""
        ...

    @property
    def foreign(self) -> frozenset[str]:
        """Return the ids of tokens the last :meth:`list` saw that others own (admin lists)."""
        ...

    async def revoke(self, token_id: str) -> bool:
        """Revoke a PAT; False when it was already gone."""
        ...


class CredentialReader(Protocol):
    """Read a principal's credential and its expiry from the secret store."""

    async def read_credential(self, name: str) -> tuple[Secret, float | None]:
        """Return secret *name*'s latest value and ``exp``; ``SecretMissingError`` if absent."""
        ...


@dataclass(frozen=True, slots=True)
class IssuerContext:
    """What a principal kind is given to open its issuer for one target's run."""

    target: str
    """The target's name (for messages)."""
    secret_name: str
    """The Key Vault secret holding the target's PATs (a ``self`` principal's credential)."""
    workspace: Workspace
    secrets: CredentialReader
    http: httpx.AsyncClient
    azure: AzureOptions


@dataclass(frozen=True, slots=True)
class Finding:
    """What a principal kind's own ``doctor`` check found: ✓ (True), ✗ (False), and why."""

    ok: bool
    detail: str


class PrincipalModel(Model):
    """A principal kind's configuration table; subclasses add ``kind: Literal[...]``."""

    @property
    def application_id(self) -> str:
        """Return the id Databricks knows the principal by (SCIM ``userName``)."""
        raise NotImplementedError

    @property
    def credential_secret_name(self) -> str | None:
        """Return the Key Vault secret holding the credential that mints PATs (None: none)."""
        return None

    @property
    def admin_secret_name(self) -> str | None:
        """Return a workspace admin's PAT in Key Vault that this kind holds anyway, if any."""
        return None

    def scopes_problem(self, scopes: tuple[str, ...] | None) -> str | None:
        """Return why new PATs with *scopes* would not work for this kind, or None."""
        del scopes
        return None

    async def check_credential(self, context: IssuerContext) -> Finding | None:
        """Check a credential that is not a stored secret (None: the stored one is checked)."""
        del context
        return None

    def open(self, context: IssuerContext) -> AbstractAsyncContextManager[TokenIssuer]:
        """Return the issuer for this principal as an async context manager (closes clients)."""
        raise NotImplementedError


class ClientSecretPrincipal(PrincipalModel):
    """A principal that signs in with its own client id and a secret kept in Key Vault."""

    client_id: Guid
    client_secret_name: SecretName

    @property
    def application_id(self) -> str:
        """Return the id Databricks knows the principal by (its client id)."""
        return self.client_id

    @property
    def credential_secret_name(self) -> str:
        """Return the Key Vault secret holding the secret that mints PATs."""
        return self.client_secret_name
