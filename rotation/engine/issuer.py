"""Open a target's issuer from the runtime: the one place the engine meets the principal kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.principals import IssuerContext

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from rotation.backends import Workspace
    from rotation.config import Target
    from rotation.engine.runtime import Runtime
    from rotation.principals import TokenIssuer

__all__ = ["issuer_context", "issuer_for"]


def issuer_context(rt: Runtime, target: Target, workspace: Workspace) -> IssuerContext:
    """Return what *target*'s principal kind is given: its workspace, Key Vault, clients."""
    return IssuerContext(
        target=target.name,
        secret_name=target.secret_name,
        workspace=workspace,
        secrets=rt.store,
        http=rt.http,
        azure=rt.azure,
        retry=rt.retry,
        clock=rt.clock,
    )


def issuer_for(
    rt: Runtime, target: Target, workspace: Workspace
) -> AbstractAsyncContextManager[TokenIssuer]:
    """Return *target*'s issuer (an async context manager that closes what it opened)."""
    return target.principal.open(issuer_context(rt, target, workspace))
