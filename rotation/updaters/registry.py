"""Find updater plugins by kind: the built-in ones and the ``pat_rotator.updaters`` entry points."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from rotation.errors import ConfigError

if TYPE_CHECKING:
    from rotation.updaters.base import UpdaterPlugin

__all__ = ["GROUP", "kinds", "plugin"]

GROUP = "pat_rotator.updaters"


@cache
def _plugins() -> dict[str, UpdaterPlugin]:
    from rotation.updaters import prequel  # noqa: PLC0415 — loaded on first use only

    found: dict[str, UpdaterPlugin] = {
        "prequel-source": prequel.PrequelSourceFactory,
        "prequel-destination": prequel.PrequelDestinationFactory,
        "prequel-import-source": prequel.PrequelImportSourceFactory,
    }
    for ep in entry_points(group=GROUP):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def kinds() -> list[str]:
    """Return every known updater kind, sorted."""
    return sorted(_plugins())


def plugin(kind: str) -> UpdaterPlugin:
    """Return the plugin for *kind*; ``ConfigError`` naming the known kinds if there is none."""
    found = _plugins().get(kind)
    if found is None:
        msg = f"unknown updater kind {kind!r}; known kinds: {', '.join(kinds())}"
        raise ConfigError(msg)
    return found
