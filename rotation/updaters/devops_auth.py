"""Entra ID tokens for Azure DevOps, for the ``azure-devops-variable-group`` updater.

Two ways, chosen per updater table (``auth``): the Function App's own managed identity
(``"managed-identity"``: a user-assigned one by ``client_id``, or the system-assigned one) or an
Entra app registration whose client secret is kept in Key Vault (``"client-secret"``: the target's
own service principal, or another). azure-identity gets the token for the Azure DevOps resource
(``499b84ac-…/.default``) on the run's shared transport; it is kept until five minutes before it
expires. Nothing is shared with the target's principal: an updater table says all it uses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rotation import errors
from rotation.secret import Secret

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from rotation.updaters.base import UpdaterContext
    from rotation.updaters.devops import DevOpsSettings

__all__ = ["DEVOPS_SCOPE", "DevOpsToken"]

DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"
"""Azure DevOps' first-party application in Entra ID: the scope of every token for it."""
_MARGIN_SECONDS = 300


class DevOpsToken:
    """A bearer token for Azure DevOps from the identity an updater table names."""

    def __init__(self, settings: DevOpsSettings, context: UpdaterContext) -> None:
        self._settings = settings
        self._ctx = context
        self._token: Secret | None = None
        self._expires_on = 0.0

    @property
    def who(self) -> str:
        """Return the identity in words (for messages): no secret."""
        s = self._settings
        if s.auth == "client-secret":
            return f"app {s.client_id} (client secret in Key Vault secret {s.client_secret_name!r})"
        return f"the app's managed identity {s.client_id or 'system-assigned'}"

    async def get(self) -> Secret:
        """Return a token for Azure DevOps; ``ConsumerAuthError`` saying what to fix if none."""
        if self._token is not None and time.time() < self._expires_on - _MARGIN_SECONDS:
            return self._token
        credential = await self._credential()
        try:
            async with credential:
                token = await credential.get_token(DEVOPS_SCOPE)
        except Exception as exc:  # noqa: BLE001 - translated below, by type
            raise self._translate(exc) from None
        self._token, self._expires_on = Secret(token.token), float(token.expires_on)
        return self._token

    async def _credential(self) -> AsyncTokenCredential:
        from azure.identity.aio import (  # noqa: PLC0415
            ClientSecretCredential,
            ManagedIdentityCredential,
        )

        s = self._settings
        kwargs: dict[str, Any] = self._ctx.azure.client_kwargs()
        if s.auth == "managed-identity":
            if s.client_id:
                kwargs["client_id"] = s.client_id
            return ManagedIdentityCredential(**kwargs)
        if s.tenant_id is None or s.client_id is None or s.client_secret_name is None:
            msg = "client-secret auth needs tenant_id, client_id and client_secret_name"
            raise errors.ConfigError(msg)  # the settings model refuses this first
        secret = await self._ctx.secrets.read(s.client_secret_name)
        authority = str(s.authority_host)
        return ClientSecretCredential(
            s.tenant_id, s.client_id, secret.reveal(), authority=authority, **kwargs
        )

    def _translate(self, exc: Exception) -> errors.RotationError:
        from azure.core.exceptions import AzureError, ClientAuthenticationError  # noqa: PLC0415
        from azure.identity import CredentialUnavailableError  # noqa: PLC0415

        if isinstance(exc, errors.RotationError):
            return exc
        if isinstance(exc, CredentialUnavailableError):
            return errors.ConsumerAuthError(
                f"No managed identity is available here for {self.who}: auth = "
                '"managed-identity" works only in Azure, as the Function App\'s own identity. '
                'Elsewhere use auth = "client-secret"; nothing was changed.'
            )
        if isinstance(exc, ClientAuthenticationError):
            said = str(exc.message or exc).splitlines()[0]
            return errors.ConsumerAuthError(
                f"Entra ID gave {self.who} no token for Azure DevOps ({said}). Check tenant_id, "
                "client_id and the secret (or that the identity is assigned to this app); "
                "nothing was changed."
            )
        if isinstance(exc, AzureError):
            name = type(exc).__name__
            msg = f"Entra ID did not answer for {self.who} ({name}); the next run retries."
            return errors.ConsumerError(msg, transient=True)
        raise exc
