"""The ``fivetran-destination`` updater end to end: the real CLI against the emulators."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.invariants import held_pat, rotator_tokens, violations
from tests.test_cli import _cli, _config

if TYPE_CHECKING:
    from pathlib import Path

    from tests.world import World

KIND = "fivetran-destination"


def test_rotation_saves_then_tests_the_new_pat(world: World, tmp_path: Path) -> None:
    emu = world.emu
    seeded = world.target(consumers=(KIND,))
    done = _cli(emu, tmp_path, _config(emu, seeded), "rotate", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)["targets"]
    (live,) = rotator_tokens(emu, seeded)
    (consumer,) = seeded.consumers
    assert held_pat(emu, KIND, consumer.id) == live.value
    assert report["consumers"][0]["confirmed"] is True
    assert violations(emu, seeded) == []
