"""The simulation's credential world: principals that rotate their own credential (issue 19).

Targets whose principal is an Entra app with a client secret or a Databricks service principal
with an OAuth secret get the once-only permission setup at seeding and a credential lifetime from
:data:`LIFETIMES`; nobody ever replaces their credential by hand — the rotator must, before the
seeded one expires and every time after. What can stand in its way comes as outside events: the
principal's rights taken away for a while (the Graph permission, workspace admin) and a tenant
policy that caps a new secret's lifetime. Both must fail the credential phase loudly and heal once
lifted; the credential in Key Vault must authenticate at every check.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from emulators.scenario import grant_credential_rights

if TYPE_CHECKING:
    from emulators.harness import Emulators
    from emulators.scenario import SeededTarget

__all__ = [
    "LIFETIMES",
    "ROTATING",
    "expire_seeded",
    "seed_rights",
    "set_rights",
    "stored_credential_works",
    "timing",
]

ROTATING = frozenset({"entra-client-secret", "databricks-oauth"})
"""Principal kinds that rotate their own credential."""
LIFETIMES = (60, 180, 365, 730)
"""``credential_lifetime_days`` of the i-th such target, cycled: every lifetime there is."""
OWNED_BY = "Application.ReadWrite.OwnedBy"


def timing(kind: str, index: int) -> dict[str, float]:
    """Return the credential keys of a target's table (none for a kind that cannot rotate)."""
    if kind not in ROTATING:
        return {}
    return {"credential_lifetime_days": LIFETIMES[index % len(LIFETIMES)]}


def seed_rights(emu: Emulators, seeded: SeededTarget, expires_at: float) -> None:
    """Do the once-only permission setup; the credential's Key Vault ``exp`` is *expires_at*."""
    grant_credential_rights(emu, seeded, expires_in=expires_at - emu.clock.now())


def set_rights(emu: Emulators, seeded: SeededTarget, *, granted: bool) -> None:
    """Take the right credential rotation needs away from the principal, or give it back."""
    app = seeded.application_id
    if seeded.kind == "entra-client-secret":
        if granted:
            emu.graph.grant(app, OWNED_BY)
        else:
            emu.graph.revoke(app, OWNED_BY)
    else:
        emu.databricks.set_admin(app, granted)


def expire_seeded(emu: Emulators, seeded: SeededTarget, value: str) -> None:
    """The seeded credential reaches its end: Entra and Databricks stop accepting it."""
    app = seeded.application_id
    if seeded.kind == "entra-client-secret":
        with contextlib.suppress(KeyError):
            emu.entra.remove_client_secret(app, value)
        return
    for secret in emu.databricks.oauth_secrets_of(app):
        if secret.value == value:
            emu.databricks.expire_oauth_secret(app, secret.secret_id)


def stored_credential_works(emu: Emulators, seeded: SeededTarget) -> bool:
    """Return whether the credential a run would read (latest enabled, not pending) works now."""
    name = seeded.table["principal"]["client_secret_name"]
    usable = [
        v
        for v in emu.keyvault.versions(name)
        if v.enabled and v.tags.get("stage") != "pending" and v.value
    ]
    if not usable:
        return False
    value, now, app = usable[-1].value, emu.clock.now(), seeded.application_id
    if seeded.kind == "entra-client-secret":
        return any(
            p.secret_text == value and (p.end is None or p.end > now)
            for p in emu.entra.passwords(app)
        )
    return any(s.value == value for s in emu.databricks.oauth_secrets_of(app))
