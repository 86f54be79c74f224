"""Helpers the consumers' tests share: a CLI rotation's report, a failed run that heals, a refused
table, a bare config."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config, _validate

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.scenario import SeededTarget
    from tests.world import World


def rotate_cli(world: World, tmp_path: Path, seeded: SeededTarget, *args: str) -> dict[str, Any]:
    """Run ``rotate --json`` on *seeded* and return its one target report, with ``exit``."""
    done = _cli(world.emu, tmp_path, _config(world.emu, seeded), "rotate", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    report["exit"] = done.returncode
    return report  # type: ignore[no-any-return]


def fails_then_heals(world: World, tmp_path: Path, seeded: SeededTarget, said: str) -> None:
    """Rotate *seeded* (one consumer) with a fault already on the consumer, then without it.

    The faulted run fails saying *said*; the consumer keeps the PAT it held, still live, and no
    invariant breaks. With the faults cleared, the next run rotates: the consumer holds the one
    PAT the rotator minted, and every invariant holds.
    """
    emu = world.emu
    (consumer,) = seeded.consumers
    human = held_pat(emu, consumer.kind, consumer.id)
    failed = rotate_cli(world, tmp_path, seeded)
    assert failed["exit"] == 1
    assert said in failed["error"]["message"]
    assert held_pat(emu, consumer.kind, consumer.id) == human
    assert emu.databricks.is_live(human)
    assert violations(emu, seeded, settled=False) == []
    emu.faults.clear()
    healed = rotate_cli(world, tmp_path, seeded)
    assert healed["exit"] == 0, healed["error"]
    (live,) = rotator_tokens(emu, seeded)
    assert held_pat(emu, consumer.kind, consumer.id) == live.value
    assert violations(emu, seeded) == []


def refused_table(world: World, tmp_path: Path, kind: str, change: dict[str, Any]) -> str:
    """Return the one line ``config validate`` refuses a *kind* table with, after *change*.

    The table is a seeded target's with *change* applied (a None value removes that key); the
    refusal must exit 2 and name the table.
    """
    seeded = world.target(consumers=(kind,))
    table = {k: v for k, v in seeded.table["updaters"][0].items() if change.get(k, 1) is not None}
    table |= {k: v for k, v in change.items() if v is not None}
    config = _config(world.emu, seeded)
    config["targets"][0]["updaters"] = [table]  # type: ignore[index]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    done = _validate(path)
    assert done.returncode == 2, done.stdout
    (line,) = done.stderr.splitlines()
    assert "targets[0].updaters[0]" in line
    return line


def one_updater_config(updater: dict[str, object]) -> dict[str, object]:
    """Return a config of one self-rotating target with the one *updater* table (no emulators)."""
    return {
        "key_vault_url": "https://kv.vault.azure.net",
        "targets": [
            {
                "name": "t",
                "workspace_url": "https://adb-1.azuredatabricks.net",
                "secret_name": "t-pat",
                "principal": {
                    "kind": "self",
                    "application_id": "5" * 8 + "-5555" * 3 + "-" + "5" * 12,
                },
                "updaters": [updater],
            }
        ],
    }
