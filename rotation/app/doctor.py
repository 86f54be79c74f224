"""``doctor``: prove, read-only, that a target can rotate — before its first rotation.

One :class:`Check` per prerequisite of the manual procedure, each ✓, ✗ with the fix in the
procedure's words (the errors' own messages), or skipped with why. Nothing is minted, stored or
revoked. Checks that need a workspace admin (workspace settings, the tokens ACL) run with the
target's ``admin_token_secret_name`` (or a ``databricks-obo`` principal's admin PAT, or the
caller's own Entra login) and say "skipped: needs an admin" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rotation import errors
from rotation.app.grant import WorkspaceAdmin
from rotation.backends import Admin, StaticBearerAuth, Workspace
from rotation.engine import (
    CREDENTIAL_FAIL_DAYS,
    CREDENTIAL_WARN_DAYS,
    Consumers,
    TargetReport,
    Tracker,
    issuer_context,
    issuer_for,
    same_principal,
)
from rotation.units import DAY
from rotation.updaters.base import DescribesRoutes

if TYPE_CHECKING:
    from rotation.config import Target
    from rotation.engine import Runtime
    from rotation.principals import TokenIssuer

__all__ = ["QUOTA", "Check", "admin_auth", "diagnose"]

QUOTA = 600
"""Live tokens one principal may hold in a workspace."""
_NEEDS_ADMIN = (
    "skipped: needs an admin — set admin_token_secret_name (a workspace admin's PAT in Key "
    "Vault) or run doctor with --admin-login as a workspace admin"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One prerequisite: passed (True), failed (False) or skipped (None), and what to know."""

    target: str
    name: str
    ok: bool | None
    detail: str

    @property
    def symbol(self) -> str:
        """Return ✓, ✗ or · (skipped) for a person's eyes."""
        return {True: "✓", False: "✗", None: "·"}[self.ok]

    def to_json(self) -> dict[str, object]:
        """Return the stable JSON form."""
        return {"target": self.target, "check": self.name, "ok": self.ok, "detail": self.detail}


class _Doctor:
    """The checks of one target, in the order the manual procedure sets things up."""

    def __init__(self, rt: Runtime, target: Target, admin: WorkspaceAdmin | None) -> None:
        self.rt = rt
        self.target = target
        self.admin = admin
        self.workspace = Workspace(rt.http, target.workspace_url, rt.retry)
        self.checks: list[Check] = []
        self.tokens_disabled = False

    def add(self, name: str, *, ok: bool | None, detail: str) -> bool:
        self.checks.append(Check(self.target.name, name, ok, detail))
        return bool(ok)

    async def run(self) -> list[Check]:
        if not await self.credential():
            return self.checks
        try:
            async with issuer_for(self.rt, self.target, self.workspace) as issuer:
                await self.principal(issuer)
        except errors.RotationError as exc:
            self.add("principal gets a token", ok=False, detail=str(exc))
        await self.credential_rotation()
        await self.workspace_settings()
        await self.consumers()
        return self.checks

    async def credential_rotation(self) -> None:
        """Check, read-only, the rights the principal needs to rotate its own credential."""
        name, principal = self.target.principal.credential_secret_name, self.target.principal
        if not (name and principal.rotates_credential and self.target.rotate_credential):
            return
        check = "principal may rotate its own credential"
        try:
            value, expires = await self.rt.store.read_credential(name)
            if expires is None:  # never rotated without an expiry: nothing to check
                return
            context = issuer_context(self.rt, self.target, self.workspace)
            async with principal.credential_rotator(context, value) as rotator:
                problem = await rotator.check_rights()
        except errors.RotationError as exc:
            problem = str(exc)
        detail = "it may list, create and delete them" if problem is None else problem
        self.add(check, ok=problem is None, detail=detail)

    async def credential(self) -> bool:
        name = self.target.principal.credential_secret_name
        if name is None:
            return await self.no_stored_credential()
        try:
            _, expires = await self.rt.store.read_credential(name)
        except errors.RotationError as exc:
            return self.add("Key Vault: the principal's credential", ok=False, detail=str(exc))
        if expires is None:
            return self.add(
                "Key Vault: the principal's credential",
                ok=True,
                detail=f"secret {name!r} is there; it has no expiry date set, so the rotator "
                "cannot warn before it expires nor rotate it (set one with az keyvault secret "
                "set --expires)",
            )
        left = (expires - self.rt.clock()) / DAY
        ok = left >= CREDENTIAL_FAIL_DAYS
        warn = " — renew it soon" if left < CREDENTIAL_WARN_DAYS else ""
        return self.add(
            "Key Vault: the principal's credential",
            ok=ok,
            detail=f"secret {name!r} expires in {left:.1f} days{warn}",
        )

    async def no_stored_credential(self) -> bool:
        """Check a credential that is not a stored secret, as its principal kind says."""
        context = issuer_context(self.rt, self.target, self.workspace)
        found = await self.target.principal.check_credential(context)
        if found is None:  # a kind with a stored credential always names its secret
            return self.add("Key Vault: the principal's credential", ok=False, detail="none")
        return self.add("Key Vault: the principal's credential", ok=found.ok, detail=found.detail)

    async def principal(self, issuer: TokenIssuer) -> None:
        await issuer.authenticate()
        self.add("principal gets a token", ok=True, detail="Entra ID / Databricks OAuth said yes")
        try:
            who = await issuer.whoami()
        except errors.RotationError as exc:
            self.add("service principal in the workspace", ok=False, detail=str(exc))
            return
        if who is not None:
            ok = same_principal(who, issuer.application_id)
            detail = f"SCIM Me answers {who!r}" + ("" if ok else ": check client_id")
            self.add("service principal in the workspace", ok=ok, detail=detail)
        try:
            tokens = await issuer.list()
        except errors.RotationError as exc:
            self.tokens_disabled = isinstance(exc, errors.TokensDisabledError)
            self.add("PATs enabled, CAN_USE granted", ok=False, detail=str(exc))
            return
        self.add(
            "PATs enabled, CAN_USE granted",
            ok=True,
            detail="the principal may list its tokens, so it may create them",
        )
        mine = len(tokens)
        full = "" if mine < QUOTA else ": revoke unused ones (token/delete)"
        self.add("token quota", ok=mine < QUOTA, detail=f"{mine} of {QUOTA} live tokens{full}")

    async def workspace_settings(self) -> None:
        if self.admin is None:
            self.add("workspace: PATs enabled, lifetime, CAN_USE", ok=None, detail=_NEEDS_ADMIN)
            return
        if self.tokens_disabled:
            why = "skipped: PATs are disabled, so an admin's PAT is refused too; enable them first"
            self.add("workspace: PATs enabled, lifetime, CAN_USE", ok=None, detail=why)
            return
        app = self.target.principal.application_id
        auth, who = self.admin.auth, self.admin.who
        try:
            conf = await self.workspace.workspace_conf(
                auth, ("enableTokensConfig", "maxTokenLifetimeDays"), principal=who
            )
            users = await self.workspace.token_users(auth, principal=who)
        except errors.RotationError as exc:
            self.add("workspace: PATs enabled, lifetime, CAN_USE", ok=False, detail=str(exc))
            return
        self.workspace_findings(conf, users, app)

    def workspace_findings(self, conf: dict[str, str | None], users: set[str], app: str) -> None:
        """Add the checks of the workspace's settings an admin read."""
        enabled = conf.get("enableTokensConfig") != "false"
        self.add(
            "workspace: personal access tokens enabled",
            ok=enabled,
            detail="enableTokensConfig is on"
            if enabled
            else "an admin must enable them: PATCH /api/2.0/workspace-conf "
            '{"enableTokensConfig": "true"}',
        )
        maximum = conf.get("maxTokenLifetimeDays")
        fits = not maximum or int(maximum) <= 0 or self.target.lifetime_days <= int(maximum)
        self.add(
            "workspace: lifetime within maxTokenLifetimeDays",
            ok=fits,
            detail=f"lifetime_days {self.target.lifetime_days}, workspace maximum "
            f"{maximum or 'none'}" + ("" if fits else ": lower lifetime_days"),
        )
        granted = app.lower() in users
        self.add(
            "workspace: CAN_USE on tokens",
            ok=granted,
            detail="granted"
            if granted
            else f"run: python -m rotation grant --target {self.target.name}",
        )

    async def consumers(self) -> None:
        tracker = Tracker(TargetReport(self.target.name), {})
        try:
            consumers = Consumers(self.target, self.rt, tracker)
            await consumers.preflight()
        except errors.RotationError as exc:
            self.add("consumers: endpoint, id and API key", ok=False, detail=str(exc))
            return
        self.add(
            "consumers: endpoint, id and API key",
            ok=True,
            detail=", ".join(r.name for r in consumers.results) or "Key Vault only",
        )
        await self.consumer_test(consumers)
        self.consumer_routes(consumers)

    async def consumer_test(self, consumers: Consumers) -> None:
        found = await self.rt.store.latest(self.target.secret_name)
        if not consumers.results or found is None or found[1] is None:
            return
        try:
            await consumers.test(found[1])
        except errors.RotationError as exc:
            self.add("consumers: the current PAT passes their test", ok=False, detail=str(exc))
            return
        tested = [r.name for r in consumers.results if r.tested]
        self.add(
            "consumers: the current PAT passes their test",
            ok=True if tested else None,
            detail=", ".join(tested) if tested else "skipped: no consumer can test unsaved values",
        )

    def consumer_routes(self, consumers: Consumers) -> None:
        """Say which route each consumer answered on, and whether its vendor documents it."""
        for updater in consumers.updaters:
            if not isinstance(updater, DescribesRoutes):
                continue
            documented = updater.routes_documented()
            note = "" if documented else " — a route Prequel does not document; it works here"
            self.add(
                f"consumer {updater.name}: routes",
                ok=True,
                detail="; ".join(updater.routes()) + note,
            )


async def admin_auth(rt: Runtime, target: Target) -> WorkspaceAdmin | None:
    """Return a workspace admin's credential for *target* from Key Vault, if one is configured.

    The target's ``admin_token_secret_name``, else a ``databricks-obo`` principal's admin PAT.
    """
    name = target.admin_token_secret_name or target.principal.admin_secret_name
    if name is None:
        return None
    who = Admin(f"the workspace admin whose PAT is in Key Vault secret {name!r}")
    return WorkspaceAdmin(StaticBearerAuth(await rt.store.read(name)), who)


async def diagnose(rt: Runtime, target: Target, *, admin: WorkspaceAdmin | None) -> list[Check]:
    """Run every read-only check of *target*; never mint, store or revoke anything."""
    if admin is None:
        try:
            admin = await admin_auth(rt, target)
        except errors.RotationError as exc:
            return [Check(target.name, "Key Vault: the admin's PAT", ok=False, detail=str(exc))]
    return await _Doctor(rt, target, admin).run()
