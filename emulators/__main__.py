"""``python -m emulators sandbox | serve``: see a full rotation with no Azure subscription.

``sandbox`` starts the emulators, seeds a workspace, four targets (a managed identity, an Entra and
a Databricks OAuth service principal, each with a Prequel source; one whose PAT goes to every
consumer kind at once) and a vault, then runs the real rotation code twice (bootstrap, then a forced
rotation that revokes the first PAT) and once more as the principals' credentials near their expiry
(each rotates its own), printing each step and the final state. ``serve`` starts and seeds them,
writes a config file and an environment file that point ``python -m rotation`` at them (its identity
is also the workspace's admin, for ``--admin-login``), and runs until interrupted. Nothing printed
contains a secret value; the environment file (mode 0600) does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from emulators.harness import Emulators
from emulators.scenario import (
    config_table,
    grant_credential_rights,
    held_by,
    rotator_env,
    rotator_identity,
    seed_target,
)

if TYPE_CHECKING:
    from emulators.scenario import ConsumerKind, SeededTarget
    from rotation.engine import Runtime

__all__ = ["main"]

EVERY_CONSUMER: tuple[ConsumerKind, ...] = (
    "prequel-source",
    "azure-devops-variable-group",
    "fivetran-destination",
    "github-actions-secret",
    "webhook",
)
OTHERS = ("devops", "fivetran", "github", "webhook")
"""The emulator services of the consumers beyond Prequel (their calls are counted)."""


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _show_state(emu: Emulators, seeded: SeededTarget) -> None:
    live = emu.databricks.tokens_of(seeded.application_id)
    _say(f"  Databricks: service principal {seeded.application_id} holds {len(live)} live PAT(s)")
    for tok in live:
        _say(f"    token {tok.token_id[:12]}…  comment={tok.comment!r}")
    by_value = {t.value: t.token_id for t in live}
    for consumer in seeded.consumers:
        held = by_value.get(held_by(emu, consumer.kind, consumer.id), "a dead PAT!")
        _say(f"  {consumer.kind} {consumer.id}: holds token {held[:12]}…")
    _say(f"  Key Vault secret {seeded.secret_name}:")
    for v in emu.keyvault.versions(seeded.secret_name):
        tags = v.tags
        _say(
            f"    version {v.version[:8]}…  enabled={v.enabled!s:5}  "
            f"stage={tags.get('stage', '-'):8}  token={tags.get('token-id', '-')[:12]}…"
        )


async def _rotate_twice(
    emu: Emulators, targets: list[SeededTarget], rotator: tuple[str, str, str]
) -> int:
    from azure.identity.aio import ClientSecretCredential  # noqa: PLC0415

    from rotation.app import open_runtime, rotate  # noqa: PLC0415
    from rotation.cli import emit_reports  # noqa: PLC0415
    from rotation.config import parse_config  # noqa: PLC0415

    config = parse_config(config_table(emu, *targets), origin="sandbox")
    ca = str(emu.ca_path)
    tenant, client, secret = rotator
    failures = 0
    async with (
        ClientSecretCredential(
            tenant, client, secret, authority=emu.entra_url, connection_verify=ca
        ) as cred,
        open_runtime(config, credential=cred, ca_file=ca, clock=emu.clock.now) as rt,
    ):
        for title, force in (
            ("1. bootstrap: the first rotator-made PAT", False),
            ("2. forced rotation", True),
        ):
            _say(f"\n== {title} ==")
            reports = await rotate(rt, force=force)
            emit_reports(reports, sys.stdout, as_json=False)
            failures += sum(not r.ok for r in reports)
            for seeded in targets:
                _show_state(emu, seeded)
        failures += await _rotate_credentials(emu, rt, targets)
    return failures


async def _rotate_credentials(emu: Emulators, rt: Runtime, targets: list[SeededTarget]) -> int:
    """Step 3: the principals rotate their own credential (20 days left), the old one deleted."""
    from rotation.app import rotate  # noqa: PLC0415
    from rotation.cli import emit_reports  # noqa: PLC0415

    own = [s for s in targets if s.kind in {"entra-client-secret", "databricks-oauth"}]
    _say(
        "\n== 3. the principals' own credentials: 20 days left (after the once-only permission "
        "setup: Graph Application.ReadWrite.OwnedBy + owner, Databricks workspace admin) =="
    )
    before = {s.name: _credential_ids(emu, s) for s in own}
    for seeded in own:
        grant_credential_rights(emu, seeded, expires_in=20 * 86_400)
    reports = await rotate(rt)
    emit_reports(reports, sys.stdout, as_json=False)
    for seeded in own:
        after = _credential_ids(emu, seeded)
        stored = emu.keyvault.latest(seeded.table["principal"]["client_secret_name"])
        works = stored is not None and stored.value in after.values()
        _say(
            f"  {seeded.name} ({seeded.kind}): credentials before {sorted(before[seeded.name])}, "
            f"now {sorted(after)}; the one in Key Vault authenticates: {works}"
        )
    return sum(not r.ok for r in reports)


def _credential_ids(emu: Emulators, seeded: SeededTarget) -> dict[str, str]:
    """Return key id -> value of the principal's own credentials (ids are shown, never values)."""
    if seeded.kind == "entra-client-secret":
        return {p.key_id: p.secret_text for p in emu.entra.passwords(seeded.application_id)}
    return {s.secret_id: s.value for s in emu.databricks.oauth_secrets_of(seeded.application_id)}


def sandbox() -> int:
    """Run the sandbox; return the exit code (130 / 143 when stopped by Ctrl-C / SIGTERM).

    However it stops, the emulators are shut down and their temporary TLS folder is removed.
    """
    from rotation import logs  # noqa: PLC0415
    from rotation.cli.interrupts import Interrupts  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING, format="    log: %(message)s", stream=sys.stdout)
    logging.getLogger("rotation").setLevel(logging.INFO)
    logs.install()
    with Interrupts() as interrupts:
        try:
            return _sandbox()
        except KeyboardInterrupt:
            interrupts.work_done()  # a second Ctrl-C no longer interrupts the goodbye
            _say(f"\nsandbox: stopped by {interrupts.name}; the emulators and their files are gone")
            return interrupts.exit_code


def _sandbox() -> int:
    with Emulators() as emu:
        _say(f"Emulators on loopback: Entra {emu.entra_url}, Databricks {emu.databricks_url},")
        _say(f"  Key Vault {emu.keyvault_url}, Prequel {emu.prequel_url}")
        rotator = rotator_identity(emu)
        os.environ.update(emu.identity_env())  # the app's (emulated) managed identity endpoint
        targets = [
            seed_target(emu, "prequel-mi", kind="managed-identity"),
            seed_target(emu, "prequel-prod"),
            seed_target(emu, "prequel-oauth", kind="databricks-oauth"),
            seed_target(emu, "every-consumer", consumers=EVERY_CONSUMER),
        ]
        _say(
            "\n== 0. seeded: prequel-mi, whose principal is the app's managed identity (nothing "
            "stored), prequel-prod, an Entra service principal with its client secret in Key "
            "Vault, and prequel-oauth, a Databricks-managed one with its OAuth secret; each with a "
            "Prequel source; and every-consumer, whose PAT goes to a Prequel source, an Azure "
            "DevOps variable group, a Fivetran destination, a GitHub Actions secret and a signed "
            "webhook receiver at once =="
        )
        for seeded in targets:
            _show_state(emu, seeded)
        failures = asyncio.run(_rotate_twice(emu, targets, rotator))
        calls = emu.requests.entries()
        per = {
            s: sum(1 for c in calls if c.service == s)
            for s in ("identity", "entra", "graph", "databricks", "keyvault", "prequel", *OTHERS)
        }
        _say(f"\nHTTP calls made by the three runs and the seeding checks: {per}")
    _say("sandbox: OK" if not failures else f"sandbox: {failures} target run(s) failed")
    return 1 if failures else 0


def serve(directory: Path) -> int:
    """Start and seed the emulators, write config + env files, and wait for Ctrl-C."""
    directory.mkdir(parents=True, exist_ok=True)
    with Emulators() as emu:
        seeded = seed_target(emu, "prequel-prod")
        config = directory / "config.json"
        config.write_text(json.dumps(config_table(emu, seeded), indent=2), encoding="utf-8")
        env = directory / "env.sh"
        env.touch(mode=0o600)
        env.chmod(0o600)
        settings = rotator_env(emu, str(config.resolve()), workspace_admin=True)
        env.write_text("".join(f"export {k}={v}\n" for k, v in settings.items()), encoding="utf-8")
        _say(f"Emulators running. Config: {config.resolve()}")
        python = shlex.quote(sys.executable)  # the venv's interpreter, wherever the shell is
        _say(
            f"In another shell:  source {shlex.quote(str(env.resolve()))} && "
            f"{python} -m rotation rotate && {python} -m rotation status"
        )
        _say(
            "  The environment's identity is also the workspace's admin (your own login, as after "
            f"az login): {python} -m rotation doctor --admin-login, and "
            f"{python} -m rotation grant --target {seeded.name} --admin-login."
        )
        stop = threading.Event()
        # SIGTERM stops as Ctrl-C does, so that the emulators' temporary TLS folder is removed.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _say("Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        _say("stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m emulators")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sandbox", help="run two real rotations against the emulators and print them")
    srv = sub.add_parser("serve", help="start the emulators for python -m rotation")
    srv.add_argument("--dir", default=".sandbox", type=Path, help="where to write config and env")
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        return sandbox()
    return serve(args.dir)


if __name__ == "__main__":
    sys.exit(main())
