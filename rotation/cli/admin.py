"""The CLI's onboarding commands: ``doctor`` (read-only checks) and ``grant`` (CAN_USE).

Exit codes as the rest of the CLI: 0 all checks passed / granted, 1 a check failed or the grant
was refused. ``--admin-login`` uses the caller's own Entra login as the workspace admin.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from rotation import errors
from rotation.app import (
    WorkspaceAdmin,
    admin_auth,
    default_login,
    diagnose,
    grant_can_use,
    login_auth,
    select,
)

if TYPE_CHECKING:
    import argparse
    from typing import TextIO

    from rotation.app import Check
    from rotation.config import Target
    from rotation.engine import Runtime

__all__ = ["doctor", "grant"]


async def doctor(rt: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    """Run every read-only check of the chosen targets; print one line per check."""
    checks: list[Check] = []
    async with AsyncExitStack() as stack:
        login = login_auth(await stack.enter_async_context(default_login(rt)))
        for target in select(rt.config, args.target):
            checks += await diagnose(rt, target, admin=login if args.admin_login else None)
    if args.json:
        json.dump({"checks": [c.to_json() for c in checks]}, out, indent=2)
        out.write("\n")
    else:
        out.writelines(f"{c.symbol} {c.target}: {c.name} — {c.detail}\n" for c in checks)
    return 1 if any(c.ok is False for c in checks) else 0


async def grant(rt: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    """Give each chosen target's principal CAN_USE on tokens; say what changed."""
    failed = False
    async with AsyncExitStack() as stack:
        login = login_auth(await stack.enter_async_context(default_login(rt)))
        for target in select(rt.config, args.target):
            admin = login if args.admin_login else await admin_auth(rt, target)
            if admin is None:
                out.write(f"✗ {target.name}: {_no_admin(target)}\n")
                failed = True
                continue
            failed |= not await _grant_one(rt, target, admin, out)
    return 1 if failed else 0


async def _grant_one(rt: Runtime, target: Target, admin: WorkspaceAdmin, out: TextIO) -> bool:
    app = target.principal.application_id
    try:
        changed = await grant_can_use(rt, target, admin)
    except errors.RotationError as exc:
        out.write(f"✗ {target.name}: {exc}\n")
        return False
    what = "granted CAN_USE on tokens to" if changed else "nothing to do: CAN_USE already held by"
    out.write(f"✓ {target.name}: {what} service principal {app}\n")
    return True


def _no_admin(target: Target) -> str:
    return (
        f"no workspace admin credential: set admin_token_secret_name for target {target.name} "
        "(a workspace admin's PAT in Key Vault) or run grant --admin-login as a workspace admin"
    )
