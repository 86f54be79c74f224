"""Principal kinds: how each kind of service principal gets its PATs minted, listed and revoked.

One module per kind, each a :class:`~rotation.principals.base.PrincipalModel` (its configuration
table, how it opens a :class:`TokenIssuer`, what ``doctor`` checks for it). :data:`Principal` is
the registry: the union of the kinds, one line each — adding a kind is one module and one line
here (the configuration, the kind names and ``doctor`` follow).
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from rotation.backends import DATABRICKS_SCOPE
from rotation.principals.base import (
    Credential,
    CredentialReader,
    CredentialRotator,
    Finding,
    IssuerContext,
    NewCredential,
    PrincipalModel,
    TokenIssuer,
)
from rotation.principals.databricks_oauth import DatabricksOAuthPrincipal
from rotation.principals.entra import EntraClientSecretPrincipal
from rotation.principals.managed_identity import SYSTEM_IDENTITY, ManagedIdentityPrincipal
from rotation.principals.obo import DatabricksOboPrincipal
from rotation.principals.self_pat import SelfPrincipal

__all__ = [
    "DATABRICKS_SCOPE",
    "PRINCIPAL_KINDS",
    "SYSTEM_IDENTITY",
    "Credential",
    "CredentialReader",
    "CredentialRotator",
    "DatabricksOAuthPrincipal",
    "DatabricksOboPrincipal",
    "EntraClientSecretPrincipal",
    "Finding",
    "IssuerContext",
    "ManagedIdentityPrincipal",
    "NewCredential",
    "Principal",
    "PrincipalModel",
    "SelfPrincipal",
    "TokenIssuer",
]

Principal = Annotated[
    EntraClientSecretPrincipal
    | DatabricksOAuthPrincipal
    | DatabricksOboPrincipal
    | ManagedIdentityPrincipal
    | SelfPrincipal,
    Field(discriminator="kind"),
]
"""The registry of principal kinds: a target's ``[targets.principal]`` table is one of these."""

PRINCIPAL_KINDS: tuple[str, ...] = tuple(
    get_args(model.model_fields["kind"].annotation)[0] for model in get_args(get_args(Principal)[0])
)
