"""Seed the emulators with a ready-to-rotate target: the sandbox's, the tests' and ``serve``'s.

A scenario is what a real user prepares by hand (seed procedure): a service principal added to
the workspace with CAN_USE, its credential in Key Vault, a Prequel source or destination holding
a PAT a person made, and the Prequel API key in Key Vault. All values are generated now.

Principal kinds without a stored credential: ``managed-identity`` (a user-assigned identity of
the Function App, served by the emulated identity endpoint) and ``self`` (the person's first PAT
is also placed in the target's own secret, and each PAT mints its successor).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulators.harness import Emulators

__all__ = [
    "Consumer",
    "SeededTarget",
    "config_table",
    "grant_credential_rights",
    "held_by",
    "rotator_env",
    "rotator_identity",
    "seed_target",
]

PrincipalKind = Literal[
    "entra-client-secret", "databricks-oauth", "databricks-obo", "managed-identity", "self"
]
ConsumerKind = Literal[
    "prequel-source",
    "prequel-destination",
    "prequel-import-source",
    "azure-devops-variable-group",
    "fivetran-destination",
    "github-actions-secret",
    "webhook",
]
DEVOPS_ORGANIZATION, DEVOPS_PROJECT, DEVOPS_VARIABLE = "contoso", "data", "DATABRICKS_TOKEN"
"""Where a seeded ``azure-devops-variable-group`` consumer keeps the PAT (its id: the group id)."""


@dataclass(frozen=True, slots=True)
class Consumer:
    """A seeded consumer: a Prequel object, a DevOps group (by id) or a Fivetran destination."""

    kind: ConsumerKind
    id: str


@dataclass(slots=True)
class SeededTarget:
    """A target ready to rotate: its config table and the ids needed to inspect it.

    ``human_token_id`` is the PAT a person made and gave the consumers (for ``self``, also the
    first PAT in the target's secret).
    """

    name: str
    kind: PrincipalKind
    application_id: str
    secret_name: str
    table: dict[str, Any]
    consumers: list[Consumer] = field(default_factory=list)
    human_token_id: str | None = None


def rotator_identity(emu: Emulators) -> tuple[str, str, str]:
    """Register the rotator's own Entra app (its Key Vault identity): (tenant, client, secret)."""
    app = emu.entra.add_app("pat-rotator")
    return app.tenant_id, app.client_id, app.client_secret


def rotator_env(emu: Emulators, config: str, *, workspace_admin: bool = False) -> dict[str, str]:
    """Return the app settings that point ``python -m rotation`` / the Function App at *emu*.

    *config* is the ``ROTATION_CONFIG`` value (a path or inline JSON). A new rotator identity is
    registered; its client secret is in the result, so never print it. With *workspace_admin*
    that identity is also a workspace admin in the (first) Databricks workspace: it stands for
    the person's own login, which ``DefaultAzureCredential`` finds through these variables, so
    ``grant --admin-login`` and ``doctor --admin-login`` work as they do after ``az login``.
    ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` point azure-identity's
    ``ManagedIdentityCredential`` at the emulated identity endpoint (principal kind
    ``managed-identity``); Key Vault is still reached as the rotator identity
    (``EnvironmentCredential`` only).
    """
    tenant, client, secret = rotator_identity(emu)
    if workspace_admin:
        emu.databricks.add_service_principal(
            client, "you (the sandbox's workspace admin)", admin=True
        )
    return {
        "ROTATION_CONFIG": config,
        "ROTATION_CA_FILE": str(emu.ca_path),
        "AZURE_TENANT_ID": tenant,
        "AZURE_CLIENT_ID": client,
        "AZURE_CLIENT_SECRET": secret,
        "AZURE_AUTHORITY_HOST": emu.entra_url,
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",  # no managed-identity probes
        **emu.identity_env(),
    }


def config_table(emu: Emulators, *seeded: SeededTarget, **root: object) -> dict[str, object]:
    """Return a configuration table for *seeded* targets in *emu*'s vault (no orphan min age)."""
    return {
        "key_vault_url": emu.keyvault_url,
        "orphan_min_age_minutes": 0,
        "targets": [s.table for s in seeded],
        **root,
    }


def seed_target(
    emu: Emulators,
    name: str | None = None,
    *,
    kind: PrincipalKind = "entra-client-secret",
    consumers: tuple[ConsumerKind, ...] = ("prequel-source",),
    timing: dict[str, float] | None = None,
) -> SeededTarget:
    """Create everything one target needs in the emulators; return its config table."""
    name = name or f"t-{secrets.token_hex(4)}"
    principal, app_id = _principal(emu, name, kind)
    human = emu.databricks.mint(app_id, 90 * 86_400, "made by a person for Prequel")
    key_name = f"{name}-prequel-key"
    emu.keyvault.set_secret(key_name, emu.prequel.add_api_key())
    host = emu.databricks_url.removeprefix("https://")
    seeded = SeededTarget(name, kind, app_id, f"{name}-pat", {}, human_token_id=human.token_id)
    if kind == "self":  # the person also places that PAT in the target's secret, untagged
        emu.keyvault.set_secret(seeded.secret_name, human.value, exp=human.expiry_ms // 1000)
    updaters = []
    adders: dict[str, tuple[Callable[..., str], str]] = {
        "prequel-source": (emu.prequel.add_source, "source_id"),
        "prequel-destination": (emu.prequel.add_destination, "destination_id"),
        "prequel-import-source": (emu.prequel.add_import_source, "source_id"),
    }
    for consumer in consumers:
        if consumer in _HOLDERS:  # consumers that are not Prequel's: their own table
            cid, table = _HOLDERS[consumer](emu, name, human.value)
            seeded.consumers.append(Consumer(consumer, cid))
            updaters.append({"kind": consumer, **table})
            continue
        add, id_field = adders[consumer]
        cid = add(host=host, access_token=human.value)
        seeded.consumers.append(Consumer(consumer, cid))
        updaters.append(
            {
                "kind": consumer,
                "base_url": emu.prequel_url,
                id_field: cid,
                "api_key_secret_name": key_name,
            }
        )
    seeded.table = {
        "name": name,
        "workspace_url": emu.databricks_url,
        "secret_name": seeded.secret_name,
        "principal": principal,
        "updaters": updaters,
        **(timing or {}),
    }
    return seeded


def _devops(emu: Emulators, name: str, pat: str) -> tuple[str, dict[str, Any]]:
    """Seed a variable group holding *pat* (and the host, not secret).

    An Entra app, an Administrator of the organisation, signs in with its client secret from
    Key Vault.
    """
    app = emu.entra.add_app(f"{name}-devops")
    emu.devops.add_member(DEVOPS_ORGANIZATION, app.client_id, "Administrator")
    emu.keyvault.set_secret(f"{name}-devops-credential", app.client_secret)
    group_id = emu.devops.add_group(
        DEVOPS_ORGANIZATION,
        DEVOPS_PROJECT,
        f"{name}-databricks",
        {"DATABRICKS_HOST": (emu.databricks_url, False), DEVOPS_VARIABLE: (pat, True)},
    )
    table = {
        "organization_url": f"{emu.devops_url}/{DEVOPS_ORGANIZATION}",
        "project": DEVOPS_PROJECT,
        "group_id": group_id,
        "variable": DEVOPS_VARIABLE,
        "auth": "client-secret",
        "tenant_id": app.tenant_id,
        "client_id": app.client_id,
        "client_secret_name": f"{name}-devops-credential",
        "authority_host": emu.entra_url,
    }
    return str(group_id), table


def _fivetran(emu: Emulators, name: str, pat: str) -> tuple[str, dict[str, Any]]:
    """Seed a Databricks destination holding *pat*, its API key and secret in Key Vault."""
    key, secret = emu.fivetran.add_api_key()
    emu.keyvault.set_secret(f"{name}-fivetran-key", key)
    emu.keyvault.set_secret(f"{name}-fivetran-secret", secret)
    host, _, port = emu.databricks_url.removeprefix("https://").partition(":")
    destination = emu.fivetran.add_destination(
        host=host, port=int(port or 443), personal_access_token=pat
    )
    table = {
        "api_url": emu.fivetran_url,
        "destination_id": destination,
        "api_key_secret_name": f"{name}-fivetran-key",
        "api_secret_secret_name": f"{name}-fivetran-secret",
    }
    return destination, table


def _github(emu: Emulators, name: str, pat: str) -> tuple[str, dict[str, Any]]:
    """Make a repository whose Actions secret DATABRICKS_TOKEN holds *pat*; a token in KV.

    The consumer id is ``owner/repo/SECRET`` (``tests.invariants.held_pat`` reads it).
    """
    owner, repo, secret = "octo-org", f"{name}-repo", "DATABRICKS_TOKEN"
    emu.github.add_repository(owner, repo)
    emu.github.set_secret(owner, repo, secret, pat)
    emu.keyvault.set_secret(f"{name}-github-token", emu.github.add_token([f"{owner}/{repo}"]))
    table = {
        "kind": "github-actions-secret",
        "api_url": emu.github_url,
        "owner": owner,
        "repo": repo,
        "secret_name": secret,
        "token_secret_name": f"{name}-github-token",
    }
    return f"{owner}/{repo}/{secret}", table


def _webhook(emu: Emulators, name: str, pat: str) -> tuple[str, dict[str, Any]]:
    """Add a webhook receiver named *name* holding *pat*; its signing secret in Key Vault."""
    secret = emu.webhook.add_receiver(name, databricks_host=emu.databricks_url, pat=pat)
    emu.keyvault.set_secret(f"{name}-webhook-secret", secret)
    table = {
        "kind": "webhook",
        "url": f"{emu.webhook_url}/hooks/{name}",
        "signing_secret_name": f"{name}-webhook-secret",
    }
    return name, table


_HOLDERS: dict[str, Callable[[Emulators, str, str], tuple[str, dict[str, Any]]]] = {
    "github-actions-secret": _github,
    "webhook": _webhook,
    "azure-devops-variable-group": _devops,
    "fivetran-destination": _fivetran,
}
"""Consumer kinds seeded by a function of their own: (emulators, target, PAT) → (id, table)."""


def held_by(emu: Emulators, kind: str, cid: str) -> str:
    """Return the PAT seeded consumer *cid* of *kind* holds now (GitHub's decrypted here)."""
    if kind == "azure-devops-variable-group":
        return str(emu.devops.group(int(cid)).value(DEVOPS_VARIABLE))
    if kind == "fivetran-destination":
        return str(emu.fivetran.destination(cid).personal_access_token)
    if kind == "github-actions-secret":  # cid: owner/repo/SECRET or owner/repo/environment/SECRET
        owner, repo, *environment, name = cid.split("/")
        return str(emu.github.secret(owner, repo, name, *environment).value)
    if kind == "webhook":
        return str(emu.webhook.receiver(cid).pat)
    stores: dict[str, Any] = {
        "prequel-source": emu.prequel.sources,
        "prequel-destination": emu.prequel.destinations,
        "prequel-import-source": emu.prequel.import_sources,
    }
    return str(stores[kind][cid].access_token)


def _principal(emu: Emulators, name: str, kind: PrincipalKind) -> tuple[dict[str, Any], str]:
    secret_name = f"{name}-sp-credential"
    if kind == "entra-client-secret":
        app = emu.entra.add_app(f"{name}-sp")
        emu.databricks.add_service_principal(app.client_id, f"{name}-sp")
        emu.keyvault.set_secret(secret_name, app.client_secret)
        table = {
            "kind": kind,
            "tenant_id": app.tenant_id,
            "client_id": app.client_id,
            "client_secret_name": secret_name,
            "authority_host": emu.entra_url,
            "graph_url": emu.graph_url,
        }
        return table, app.client_id
    if kind == "managed-identity":
        client_id = emu.add_managed_identity(name=f"{name}-id")
        emu.databricks.add_service_principal(client_id, f"{name}-id")
        return {"kind": kind, "client_id": client_id}, client_id
    app_id = _uuid()
    emu.databricks.add_service_principal(app_id, f"{name}-sp")
    if kind == "databricks-oauth":
        emu.keyvault.set_secret(secret_name, emu.databricks.add_oauth_secret(app_id))
        table = {"kind": kind, "client_id": app_id, "client_secret_name": secret_name}
        return table, app_id
    if kind == "self":
        return {"kind": kind, "application_id": app_id}, app_id
    emu.keyvault.set_secret(secret_name, emu.databricks.add_admin_user(f"admin-{name}@example.com"))
    table = {"kind": kind, "application_id": app_id, "admin_token_secret_name": secret_name}
    return table, app_id


def _uuid() -> str:
    import uuid  # noqa: PLC0415

    return str(uuid.uuid4())


def grant_credential_rights(emu: Emulators, seeded: SeededTarget, *, expires_in: float) -> None:
    """Do the once-only permission setup that lets *seeded*'s principal rotate its credential.

    Entra: its service principal owns its application and holds ``Application.ReadWrite.OwnedBy``;
    Databricks OAuth: it is a workspace admin. The credential's Key Vault secret gets an ``exp``
    *expires_in* seconds from now, as a person sets it (``az keyvault secret set-attributes``).
    """
    app = seeded.application_id
    if seeded.kind == "entra-client-secret":
        emu.graph.add_owner(app, app)
        emu.graph.grant(app, "Application.ReadWrite.OwnedBy")
    elif seeded.kind == "databricks-oauth":
        emu.databricks.set_admin(app, True)
    name = seeded.table["principal"]["client_secret_name"]
    emu.keyvault.update(name, None, {"exp": int(emu.clock.now() + expires_in)})
