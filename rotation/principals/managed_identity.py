"""Kind ``managed-identity``: the Function App's own managed identity, with nothing stored.

An Entra service principal whose tokens for Azure Databricks come from the app's identity endpoint:
``ManagedIdentityCredential`` speaks the App Service / Functions endpoint (``IDENTITY_ENDPOINT`` +
``IDENTITY_HEADER``) in Azure; locally there is none, and the error says so — the emulators serve
that endpoint for the tests and the sandbox.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from rotation import errors
from rotation.backends import DATABRICKS_SCOPE, BearerAuth
from rotation.fields import Guid, guid
from rotation.principals.base import Finding, PrincipalModel
from rotation.principals.issuers import OwnIssuer
from rotation.secret import Secret

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rotation.backends import AzureOptions
    from rotation.principals.base import IssuerContext, TokenIssuer

__all__ = ["SYSTEM_IDENTITY", "ManagedIdentityPrincipal", "ManagedIdentityToken"]

SYSTEM_IDENTITY = "system"


def _client_id_or_system(value: str) -> str:
    return value if value == SYSTEM_IDENTITY else guid(value)


class ManagedIdentityPrincipal(PrincipalModel):
    """The Function App's own managed identity, an Entra service principal: nothing stored.

    ``client_id`` names a user-assigned identity, or ``"system"`` the system-assigned one (then
    ``application_id`` must be given: ``az ad sp show --id <principalId> --query appId``).
    """

    kind: Literal["managed-identity"]
    client_id: Annotated[str, AfterValidator(_client_id_or_system)]
    application_id_: Guid | None = Field(default=None, alias="application_id")

    @model_validator(mode="after")
    def _system_needs_its_application_id(self) -> ManagedIdentityPrincipal:
        if self.client_id == SYSTEM_IDENTITY and not self.application_id_:
            msg = (
                "a system-assigned identity needs application_id (az ad sp show --id "
                "<the identity's principal id> --query appId)"
            )
            raise ValueError(msg)
        return self

    @property
    def application_id(self) -> str:
        """Return the id Databricks knows the identity by (its application / client id)."""
        return self.application_id_ or self.client_id

    async def check_credential(self, context: IssuerContext) -> Finding:
        """Say that nothing is stored: the app's identity is the credential."""
        del context
        return Finding(ok=True, detail="none stored: the app's managed identity")

    @asynccontextmanager
    async def open(self, context: IssuerContext) -> AsyncIterator[TokenIssuer]:
        """Yield an issuer acting as the identity with tokens from the identity endpoint."""
        async with ManagedIdentityToken(self, context.azure) as identity:
            auth = BearerAuth(identity.token)
            yield OwnIssuer(context.workspace, auth, self.application_id, None)


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
