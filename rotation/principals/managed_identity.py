"""Tokens for Azure Databricks from the Function App's own managed identity (nothing stored).

``ManagedIdentityCredential`` speaks the App Service / Functions identity endpoint
(``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``) in Azure; locally there is none, and the error says
so — the emulators serve that endpoint for the tests and the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from rotation import errors
from rotation.backends.auth import DATABRICKS_SCOPE
from rotation.config.models import SYSTEM_IDENTITY
from rotation.secret import Secret

if TYPE_CHECKING:
    from rotation.config.models import ManagedIdentityPrincipal
    from rotation.engine.runtime import AzureOptions

__all__ = ["ManagedIdentityToken"]


class ManagedIdentityToken:
    """Entra tokens for Azure Databricks as the app's managed identity (azure-identity caches)."""

    def __init__(self, principal: ManagedIdentityPrincipal, azure: AzureOptions) -> None:
        from azure.identity.aio import ManagedIdentityCredential  # noqa: PLC0415

        self._principal = principal
        system = principal.client_id == SYSTEM_IDENTITY
        kwargs: dict[str, Any] = {} if system else {"client_id": principal.client_id}
        self._credential = ManagedIdentityCredential(**kwargs, **azure.client_kwargs())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._credential.close()

    async def token(self) -> Secret:
        """Return a token for Azure Databricks; ``CredentialError`` saying what to do if none."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError  # noqa: PLC0415
        from azure.identity import CredentialUnavailableError  # noqa: PLC0415

        who = f"managed identity {self._principal.client_id}"
        try:
            token = await self._credential.get_token(DATABRICKS_SCOPE)
        except CredentialUnavailableError:
            msg = (
                f"No managed identity is available here for {who}: principal kind "
                "'managed-identity' works only in Azure, as the Function App's own identity "
                "(assign it to the app; a user-assigned one by its client id). Locally, try it "
                "against the emulators (python -m emulators serve sets IDENTITY_ENDPOINT and "
                "IDENTITY_HEADER) or use another principal kind."
            )
            raise errors.CredentialError(msg) from None
        except ClientAuthenticationError as exc:
            msg = (
                f"The {who} could not get a token for Azure Databricks ({exc.message}). Check the "
                "identity is assigned to this Function App and client_id is its client id."
            )
            raise errors.CredentialError(msg) from None
        except AzureError as exc:
            msg = f"The identity endpoint did not answer for {who} ({type(exc).__name__}); retry."
            raise errors.CredentialError(msg, transient=True) from None
        return Secret(token.token)
