"""A test helper over the emulators: seed targets, build configs and runtimes, run rotations."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.identity.aio import ClientSecretCredential

from emulators.scenario import SeededTarget, rotator_identity, seed_target
from rotation.app import open_runtime, rotate
from rotation.backends import RetryPolicy
from rotation.config import Config, parse_config
from rotation.state import comment_for, deployment_of
from tests import hygiene

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from emulators.databricks import Token
    from emulators.harness import Emulators
    from rotation.engine import Runtime, TargetReport

FAST = RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0, timeout=10)


@dataclass
class World:
    """The emulators plus the rotator's own Key Vault identity."""

    emu: Emulators
    credential: ClientSecretCredential
    tenant_id: str
    client_id: str

    @classmethod
    @asynccontextmanager
    async def open(cls, emu: Emulators) -> AsyncIterator[World]:
        tenant, client, secret = rotator_identity(emu)
        cred = ClientSecretCredential(
            tenant, client, secret, authority=emu.entra_url, connection_verify=str(emu.ca_path)
        )
        async with cred:
            yield cls(emu, cred, tenant, client)

    def target(self, **kw: Any) -> SeededTarget:
        """Seed a new target (see ``emulators.scenario.seed_target``)."""
        return seed_target(self.emu, **kw)

    def config(self, *seeded: SeededTarget, **root: Any) -> Config:
        """Return a validated config for *seeded* targets."""
        table = {
            "key_vault_url": self.emu.keyvault_url,
            "orphan_min_age_minutes": 0,
            "targets": [s.table for s in seeded],
            **root,
        }
        return parse_config(table)

    @asynccontextmanager
    async def runtime(
        self, config: Config, *, retry: RetryPolicy = FAST, **kw: Any
    ) -> AsyncIterator[Runtime]:
        """Yield a runtime against the emulators (the emulators' virtual clock)."""
        async with open_runtime(
            config,
            credential=self.credential,
            ca_file=str(self.emu.ca_path),
            retry=retry,
            clock=self.emu.clock.now,
            **kw,
        ) as rt:
            yield rt

    async def rotate(
        self, *seeded: SeededTarget, force: bool = False, dry_run: bool = False, **root: Any
    ) -> list[TargetReport]:
        """Run one rotation pass over *seeded* targets."""
        async with self.runtime(self.config(*seeded, **root)) as rt:
            reports = await rotate(rt, force=force, dry_run=dry_run)
        for report in reports:  # reports carry error messages: scanned for secrets too
            hygiene.record_text(f"report {report.target}", json.dumps(report.to_json()))
            hygiene.record_text(f"report repr {report.target}", repr(report))
        return reports

    async def rotate_one(self, seeded: SeededTarget, **kw: Any) -> TargetReport:
        """Run one rotation pass over one target and return its report."""
        (report,) = await self.rotate(seeded, **kw)
        return report


def marker(emu: Emulators, target: str, rotation_id: str, secret: str | None = None) -> str:
    """Return the comment this deployment (the emulated vault) puts on a PAT it mints."""
    return comment_for(
        target, rotation_id, deployment_of(emu.keyvault_url), secret or f"{target}-pat"
    )


def crash_leftover(emu: Emulators, seeded: SeededTarget, rotation_id: str) -> Token:
    """Leave what a run killed between ``token/create`` and its store leaves behind.

    The intent (``minting``) recorded on the latest version, and a live PAT with this
    deployment's marker whose value is lost.
    """
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    intents = [*latest.tags.get("minting", "").split(), rotation_id]
    tags = {**latest.tags, "minting": " ".join(intents)}
    emu.keyvault.update(seeded.secret_name, latest.version, {"tags": tags})
    comment = marker(emu, seeded.name, rotation_id, seeded.secret_name)
    return emu.databricks.mint(seeded.application_id, 86_400, comment)
