"""The ``azure-devops-variable-group`` updater end to end: the real CLI against the emulators."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from emulators.scenario import DEVOPS_VARIABLE
from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.world import World

KIND = "azure-devops-variable-group"


def test_rotation_puts_the_new_pat_in_the_group(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target(consumers=(KIND,))
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    (live,) = rotator_tokens(emu, seeded)
    (consumer,) = seeded.consumers
    assert held_pat(emu, KIND, consumer.id) == live.value
    group = emu.devops.group(int(consumer.id))
    assert group.is_secret(DEVOPS_VARIABLE)
    assert report["consumers"][0]["confirmed"] is True
    assert report["consumers"][0]["tested"] is False
    assert violations(emu, seeded) == []
