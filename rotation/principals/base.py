"""The principal seam: what every kind of service principal provides, and what it is given.

A principal kind is one module of this package: its configuration table (a :class:`PrincipalModel`
subclass with a ``kind`` literal), how it opens a :class:`TokenIssuer` from an
:class:`IssuerContext` (reading its credential from Key Vault, if it has one), and what ``doctor``
checks for it (:meth:`PrincipalModel.check_credential`). The registry in ``__init__`` lists the
kinds; nothing outside this package asks which kind a principal is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rotation.backends import RetryPolicy
from rotation.fields import Guid, Model, SecretName

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    import httpx

    from rotation.backends import AzureOptions, NewToken, TokenInfo, Workspace
    from rotation.secret import Secret

__all__ = [
    "ClientSecretPrincipal",
    "Credential",
    "CredentialReader",
    "CredentialRotator",
    "Finding",
    "IssuerContext",
    "NewCredential",
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


@dataclass(frozen=True, slots=True)
class Credential:
    """One of the principal's own credentials as the service lists it (never its value)."""

    key_id: str
    """Graph's ``keyId`` / the Databricks secret id."""
    name: str | None
    """What it carries to say who made it (Entra ``displayName``; Databricks keeps none)."""
    hint: str | None
    """The value's first characters as the service shows them (Entra ``hint``), if any."""
    created_on: float | None
    expires_on: float | None


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A credential just created: what the service lists, and its value (shown this once)."""

    info: Credential
    value: Secret


class CredentialRotator(Protocol):
    """Create, list and delete the principal's own credentials, acting with the current one."""

    @property
    def keeps_marker(self) -> bool:
        """Return whether a created credential keeps its marker (else proof is by the records)."""
        ...

    @property
    def quota(self) -> int | None:
        """Return how many credentials the principal may hold at once (None: no small limit)."""
        ...

    async def list(self) -> list[Credential]:
        """List the principal's own live credentials (every page)."""
        ...

    async def create(self, *, marker: str, lifetime_seconds: int) -> NewCredential:
        """Create a credential carrying *marker* (where the service keeps one) for a lifetime.

        ``CredentialPolicyError`` when a tenant policy refuses its lifetime,
        ``CredentialRightsError`` when a right is missing, ``CredentialQuotaError`` when full.
        """
        ...

    async def delete(self, key_id: str) -> bool:
        """Delete credential *key_id*; False when it was already gone."""
        ...

    async def verify(self, value: Secret) -> None:
        """Prove *value* authenticates, waiting out propagation; ``CredentialError`` if wrong."""
        ...

    async def check_rights(self) -> str | None:
        """Check, read-only, every right rotating needs; None, or what to grant and how."""
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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How the principal's own calls (Graph, the secrets proxy) are retried."""
    clock: Callable[[], float] = time.time
    """The run's clock (epoch seconds): when a new credential ends."""


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

    @property
    def rotates_credential(self) -> bool:
        """Return whether this kind can rotate its own credential (:meth:`credential_rotator`)."""
        return False

    def credential_rotator(
        self, context: IssuerContext, current: Secret
    ) -> AbstractAsyncContextManager[CredentialRotator]:
        """Return the rotator of this principal's credential, acting with *current*."""
        del context, current
        raise NotImplementedError

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
