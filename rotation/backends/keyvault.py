"""Key Vault adapter: the secret store that holds each target's PAT and its rotation state.

It wraps an ``azure.keyvault.secrets.aio.SecretClient`` that the composition root builds, and
translates Azure errors at this boundary. Values come back as :class:`~rotation.secret.Secret`.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation import errors
from rotation.backends.http import UNTRUSTED_ADVICE, untrusted_certificate
from rotation.secret import Secret
from rotation.state import Stage, VersionState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from azure.keyvault.secrets import SecretProperties
    from azure.keyvault.secrets.aio import SecretClient

__all__ = ["KeyVaultStore"]

CONTENT_TYPE = "application/vnd.databricks.pat"
CREDENTIAL_KEY_ID = "credential-key-id"
"""The tag naming a credential version's key id / secret id (``engine/credential.py``)."""


def _unproven(state: VersionState) -> bool:
    """Return whether *state* is a credential the rotator stored and has not proven yet."""
    return bool(
        state.managed and state.stage is Stage.PENDING and state.tags.get(CREDENTIAL_KEY_ID)
    )


def _state(props: SecretProperties) -> VersionState:
    return VersionState(
        name=str(props.name),
        version=str(props.version or ""),
        enabled=bool(props.enabled),
        created_on=props.created_on.timestamp() if props.created_on else None,
        expires_on=props.expires_on.timestamp() if props.expires_on else None,
        tags=dict(props.tags or {}),
    )


class KeyVaultStore:
    """Read and write secret versions and their tags in one vault."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    @property
    def vault_url(self) -> str:
        """Return the vault's URL."""
        return str(self._client.vault_url)

    def __repr__(self) -> str:
        return f"KeyVaultStore({self.vault_url!r})"

    async def read(self, name: str) -> Secret:
        """Return the latest value of secret *name* (a credential the config names)."""
        value, _ = await self.read_credential(name)
        return value

    async def read_credential(self, name: str) -> tuple[Secret, float | None]:
        """Return the latest proven value of secret *name* and its ``exp`` (epoch s, or None).

        A credential the rotator stored but has not proven yet (a ``pending`` version tagged
        ``credential-key-id``) is skipped: the newest enabled version that is not one is read.
        """
        with self._translating(name, "get"):
            secret = await self._client.get_secret(name)
        if _unproven(_state(secret.properties)):
            proven = [v for v in await self.versions(name) if v.enabled and not _unproven(v)]
            if proven:
                with self._translating(name, "get"):
                    secret = await self._client.get_secret(name, proven[-1].version)
        if not secret.value:
            msg = f"Key Vault secret {name!r} in {self.vault_url} is empty; store the value in it."
            raise errors.SecretMissingError(msg)
        expires = secret.properties.expires_on
        return Secret(secret.value), expires.timestamp() if expires else None

    async def read_version(self, state: VersionState) -> Secret | None:
        """Return the value of one version (None when it is disabled or empty)."""
        try:
            with self._translating(state.name, "get"):
                secret = await self._client.get_secret(state.name, state.version)
        except errors.SecretDisabledError:
            return None
        return Secret(secret.value) if secret.value else None

    async def list_latest(self) -> dict[str, VersionState]:
        """Return every secret's latest-version state, from one paged listing (no values).

        Keys are lower-cased: Key Vault secret names are case-insensitive.
        """
        out: dict[str, VersionState] = {}
        with self._translating(None, "list the secrets"):
            async for props in self._client.list_properties_of_secrets():
                out[str(props.name).lower()] = _state(props)
        return out

    async def versions(self, name: str) -> list[VersionState]:
        """Return every version of *name*, oldest first (no values); [] when it does not exist."""
        try:
            with self._translating(name, "list versions"):
                pager = self._client.list_properties_of_secret_versions(name)
                out = [_state(props) async for props in pager]
        except errors.SecretMissingError:
            return []
        return sorted(out, key=lambda v: v.order)

    async def latest(self, name: str) -> tuple[VersionState, Secret | None] | None:
        """Return the latest version of *name* with its value (None if disabled or empty)."""
        try:
            with self._translating(name, "get"):
                secret = await self._client.get_secret(name)
        except errors.SecretMissingError:
            return None
        except errors.SecretDisabledError:
            versions = await self.versions(name)
            return (versions[-1], None) if versions else None
        value = Secret(secret.value) if secret.value else None
        return _state(secret.properties), value

    async def add_version(
        self,
        name: str,
        value: Secret,
        *,
        tags: dict[str, str],
        expires_on: float | None,
        enabled: bool = True,
        content_type: str = CONTENT_TYPE,
    ) -> VersionState:
        """Store *value* as a new (latest) version of *name* with *tags*, expiry and state."""
        exp = datetime.fromtimestamp(expires_on, UTC) if expires_on else None
        with self._translating(name, "set"):
            secret = await self._client.set_secret(
                name,
                value.reveal(),
                tags=tags,
                expires_on=exp,
                content_type=content_type,
                enabled=enabled,
            )
        return _state(secret.properties)

    async def update(
        self, state: VersionState, *, tags: dict[str, str], enabled: bool | None = None
    ) -> VersionState:
        """Replace the tags of one version (and optionally enable/disable it)."""
        with self._translating(state.name, "update"):
            props = await self._client.update_secret_properties(
                state.name, state.version, tags=tags, enabled=enabled
            )
        return _state(props)

    @contextmanager
    def _translating(self, name: str | None, operation: str) -> Iterator[None]:
        what = operation if name is None else f"{operation} secret {name!r}"
        where = f"Key Vault {self.vault_url} ({what})"
        try:
            yield
        except ResourceNotFoundError as exc:
            code = exc.error.code if exc.error else None
            if not code or not code.endswith("NotFound"):  # Key Vault says SecretNotFound
                msg = (
                    f"{where}: the server answered 404 but does not answer like Key Vault (no "
                    "Key Vault error body). Check key_vault_url: it must be the vault's URL, "
                    "e.g. https://my-vault.vault.azure.net."
                )
                raise errors.SecretStoreError(msg) from None
            msg = f"{where}: the secret does not exist. Create it, or fix the name in the config."
            raise errors.SecretMissingError(msg) from None
        except ClientAuthenticationError as exc:
            raise _no_login(where, exc) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            if (why := untrusted_certificate(exc)) is not None:
                msg = f"{where}: the vault's TLS certificate is not trusted ({why}); "
                msg += f"{UNTRUSTED_ADVICE}."
                raise errors.SecretStoreError(msg, transient=False) from None
            if _name_not_resolved(exc):
                msg = (
                    f"{where}: the vault's host name does not resolve. Check key_vault_url for a "
                    "typo (it is https://<vault-name>.vault.azure.net); if it is right, the DNS "
                    "may be down and retrying later may help."
                )
            else:
                name = type(exc).__name__
                msg = f"{where}: Key Vault unreachable ({name}); retrying later may help."
            raise errors.SecretStoreError(msg, transient=True) from None
        except HttpResponseError as exc:
            raise _http_error(where, exc) from None
        except AzureError as exc:
            msg = f"{where}: {type(exc).__name__}; retrying later may help."
            raise errors.SecretStoreError(msg, transient=True) from None


def _no_login(where: str, exc: ClientAuthenticationError) -> errors.CredentialError:
    """Return the error for a failed sign-in: no credential found, or one that was refused.

    ``DefaultAzureCredential`` raises the same error type for both (its text lists every
    credential it tried, over many lines): the message says what to do in either case.
    """
    msg = (
        f"{where}: could not sign in to Key Vault ({type(exc).__name__}: no Azure credential "
        "was found, or it was refused). On your machine run `az login` (or set AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET); in Azure, check the app's managed identity "
        "(AZURE_CLIENT_ID names a user-assigned one)."
    )
    return errors.CredentialError(msg)


_DNS_ERRORS = frozenset({"ClientConnectorDNSError", "DNSError"})  # aiohttp's, aiodns'


def _name_not_resolved(exc: BaseException) -> bool:
    """Return whether a DNS lookup failure is anywhere in *exc*'s chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or type(current).__name__ in _DNS_ERRORS:
            return True
        inner = getattr(current, "inner_exception", None) or getattr(current, "os_error", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return False


def _http_error(where: str, exc: HttpResponseError) -> errors.SecretStoreError:
    status = exc.status_code or 0
    code = exc.error.code if exc.error else None
    if status == 403:  # noqa: PLR2004
        inner = exc.error.innererror if exc.error else None
        inner_code = inner.get("code") if isinstance(inner, dict) else None
        if inner_code == "SecretDisabled":
            return errors.SecretDisabledError(f"{where}: the secret version is disabled.")
        return errors.SecretStoreError(
            f"{where}: forbidden ({code}). Grant the app's identity the 'Key Vault Secrets "
            "Officer' role on the vault (or get/list/set permissions in an access policy)."
        )
    if status == 409:  # noqa: PLR2004
        return errors.SecretStoreError(
            f"{where}: conflict ({code}); the secret is deleted but recoverable. Recover or purge "
            "it (az keyvault secret recover / purge), then run again."
        )
    transient = status == 429 or status >= 500  # noqa: PLR2004
    return errors.SecretStoreError(
        f"{where}: Key Vault answered {status} ({code}).", transient=transient
    )
