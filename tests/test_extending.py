"""Extending: an updater this project does not ship, written against the fake, found by entry point.

The plugin below lives outside ``rotation/`` in a package of its own (a folder put on ``sys.path``
with its ``.dist-info``, as ``pip install`` leaves it); the registry finds it through the
``pat_rotator.updaters`` entry point, the configuration validates its table with its model, and a
real rotation against the emulators pushes the new PAT to it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from rotation.config import parse_config
from rotation.engine import Outcome
from rotation.errors import ConfigError
from rotation.updaters import registry
from rotation.updaters.fake import FakeConsumer, FakePlugin
from tests.invariants import violations

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.world import World

PLUGIN = '''
"""An updater for a notes app this project does not ship, written against the fake."""
from rotation.fields import Model
from rotation.updaters.fake import FakeConsumer, FakeUpdater

NOTEBOOKS = {}


class NotebookSettings(Model):
    notebook: str


class NotesPlugin:
    kind = "notes-app"
    settings_model = NotebookSettings

    def build(self, settings, context):
        consumer = NOTEBOOKS.setdefault(settings.notebook, FakeConsumer(settings.notebook))
        return FakeUpdater(consumer)


PLUGIN = NotesPlugin()
'''


@pytest.fixture
def notes_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install the plugin package (module + dist-info with its entry point) on sys.path."""
    (tmp_path / "notes_updater.py").write_text(PLUGIN)
    info = tmp_path / "notes_updater-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: notes-updater\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pat_rotator.updaters]\nnotes-app = notes_updater:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._plugins.cache_clear()
    yield sys.modules.get("notes_updater")
    registry._plugins.cache_clear()
    sys.modules.pop("notes_updater", None)


async def test_an_out_of_tree_updater_gets_the_new_pat(world: World, notes_plugin: object) -> None:
    emu = world.emu
    seeded = world.target(consumers=())
    seeded.table["updaters"] = [{"kind": "notes-app", "notebook": "team"}]
    assert "notes-app" in registry.kinds()
    report = await world.rotate_one(seeded)
    assert report.outcome is Outcome.ROTATED, report.error
    assert report.consumers[0].name == "fake:team"
    notes = sys.modules["notes_updater"]
    held = notes.NOTEBOOKS["team"].held  # type: ignore[attr-defined]
    latest = emu.keyvault.latest(seeded.secret_name)
    assert latest is not None
    assert held is not None
    assert held.reveal() == latest.value
    assert violations(emu, seeded) == []


def test_an_out_of_tree_updater_validates_its_own_table(notes_plugin: object) -> None:
    table = {
        "key_vault_url": "https://v.vault.azure.net",
        "targets": [
            {
                "name": "t",
                "workspace_url": "https://adb-1.2.azuredatabricks.net",
                "secret_name": "t-pat",
                "principal": {
                    "kind": "self",
                    "application_id": "11111111-1111-1111-1111-111111111111",
                },
                "updaters": [{"kind": "notes-app", "notbook": "typo"}],
            }
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(table)
    message = str(caught.value)
    assert "targets[0].updaters[0].notebook" in message
    assert "targets[0].updaters[0].notbook" in message


async def test_a_consumer_that_rejects_the_new_pat_keeps_the_old_one(world: World) -> None:
    emu = world.emu
    picky = FakeConsumer("picky", accepts=lambda _pat: False)
    seeded = world.target(consumers=())
    seeded.table["updaters"] = [{"kind": "fake", "name": "picky"}]
    registry._plugins()["fake"] = FakePlugin({"picky": picky})
    try:
        report = await world.rotate_one(seeded)
    finally:
        registry._plugins.cache_clear()
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert (report.error.step, report.error.kind) == ("test", "consumer-rejected-token")
    assert report.revoked == []
    assert picky.pushes == 0
    assert picky.held is None
    assert violations(emu, seeded, settled=False) == []
