"""Kind ``self``: a PAT that renews itself — the current PAT mints its successor.

The credential is the target's own latest PAT (a person places the first one); if the current PAT
dies between runs, the target cannot heal itself and fails saying what to do. Its health check
lists tokens *with* the PAT, so it counts as use.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from rotation import errors
from rotation.backends import StaticBearerAuth
from rotation.fields import Guid
from rotation.principals.base import Finding, PrincipalModel
from rotation.principals.issuers import OwnIssuer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rotation.backends import NewToken, TokenInfo
    from rotation.principals.base import IssuerContext, TokenIssuer
    from rotation.secret import Secret

__all__ = ["SelfPrincipal"]


class SelfPrincipal(PrincipalModel):
    """A PAT that renews itself: the current PAT (the target's own secret) mints its successor.

    A person places the first PAT in the target's secret; if the current PAT dies, the target
    cannot heal itself and fails with what to do.
    """

    kind: Literal["self"]
    application_id_: Guid = Field(alias="application_id")

    @property
    def application_id(self) -> str:
        """Return the principal's application id."""
        return self.application_id_

    def scopes_problem(self, scopes: tuple[str, ...] | None) -> str | None:
        """Refuse scopes without ``authentication``: such a PAT cannot mint its successor."""
        if scopes and "authentication" not in scopes:
            return (
                "a 'self' principal's PAT mints its successor, so its scopes must include "
                "'authentication' (a scoped PAT without it cannot create tokens)"
            )
        return None

    async def check_credential(self, context: IssuerContext) -> Finding:
        """Check the target's secret holds the PAT that mints the next one."""
        try:
            await context.secrets.read_credential(context.secret_name)
        except errors.SecretStoreError:
            detail = (
                f"no PAT in secret {context.secret_name!r}: create one as the service "
                "principal and store it there first (az keyvault secret set), then rotate"
            )
            return Finding(ok=False, detail=detail)
        return Finding(ok=True, detail="the current PAT mints its successor")

    @asynccontextmanager
    async def open(self, context: IssuerContext) -> AsyncIterator[TokenIssuer]:
        """Yield an issuer acting as the principal with its current PAT."""
        pat = await _current_pat(context)
        yield _RenewingIssuer(context.workspace, StaticBearerAuth(pat), self.application_id, None)


class _RenewingIssuer(OwnIssuer):
    """The current PAT acts for the principal: it mints its successor."""

    async def authenticate(self) -> None:
        """Do nothing: the PAT is used as it is and judged by Databricks at the first call."""

    async def list(self) -> list[TokenInfo]:
        """List the principal's PATs with the current PAT (a dead PAT: say what to do)."""
        try:
            return await super().list()
        except errors.InvalidTokenError:
            raise _dead_pat(self.application_id) from None

    async def create(
        self, *, lifetime_seconds: int, comment: str, scopes: tuple[str, ...] | None = None
    ) -> NewToken:
        """Mint the successor with the current PAT (a dead PAT: say what to do)."""
        try:
            return await super().create(
                lifetime_seconds=lifetime_seconds, comment=comment, scopes=scopes
            )
        except errors.InvalidTokenError:
            raise _dead_pat(self.application_id) from None


def _dead_pat(application_id: str) -> errors.CredentialError:
    msg = (
        f"The current PAT of service principal {application_id} no longer works (revoked, "
        "expired, or unused for 90 days). A PAT that renews itself cannot heal itself: create a "
        "new PAT as the service principal and store it as the next version of the target's "
        "secret (az keyvault secret set --vault-name <vault> --name <secret_name> --value <PAT>)."
    )
    return errors.CredentialError(msg)


async def _current_pat(context: IssuerContext) -> Secret:
    """Return the PAT in the target's own secret: the credential of a ``self`` principal."""
    name = context.secret_name
    try:
        pat, _ = await context.secrets.read_credential(name)
    except errors.SecretStoreError as exc:
        msg = (
            f"Target {context.target} renews its PAT with itself, so a first PAT must be in Key "
            f"Vault secret {name!r}: create one as the service principal and store it there "
            f"(az keyvault secret set --name {name} --value <PAT> --expires <its expiry>). {exc}"
        )
        raise errors.CredentialError(msg) from None
    return pat
