"""Kind ``databricks-obo``: a workspace admin's PAT mints PATs on behalf of the principal.

``token-management/on-behalf-of/tokens`` (rare on Azure: a workspace may refuse it, and the error
says so). The admin PAT is also what ``doctor``'s admin checks and ``grant`` may use.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from rotation.backends import StaticBearerAuth
from rotation.fields import Guid, SecretName
from rotation.principals.base import PrincipalModel
from rotation.principals.issuers import OnBehalfOfIssuer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rotation.principals.base import IssuerContext, TokenIssuer

__all__ = ["DatabricksOboPrincipal"]


class DatabricksOboPrincipal(PrincipalModel):
    """A Databricks-managed SP whose PATs an admin creates on its behalf."""

    kind: Literal["databricks-obo"]
    application_id_: Guid = Field(alias="application_id")
    admin_token_secret_name: SecretName

    @property
    def application_id(self) -> str:
        """Return the principal's application id."""
        return self.application_id_

    @property
    def credential_secret_name(self) -> str:
        """Return the Key Vault secret holding the admin PAT that mints PATs."""
        return self.admin_token_secret_name

    @property
    def admin_secret_name(self) -> str:
        """Return the admin PAT's secret: ``doctor`` and ``grant`` may act as that admin."""
        return self.admin_token_secret_name

    @asynccontextmanager
    async def open(self, context: IssuerContext) -> AsyncIterator[TokenIssuer]:
        """Yield an issuer that mints and manages the principal's PATs with the admin PAT."""
        admin, expires = await context.secrets.read_credential(self.admin_token_secret_name)
        auth = StaticBearerAuth(admin)
        yield OnBehalfOfIssuer(context.workspace, auth, self.application_id, expires)
