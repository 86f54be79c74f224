"""Find updater plugins by kind: the built-in ones and the ``pat_rotator.updaters`` entry points.

A built-in plugin is registered once, in :data:`BUILT_IN`, under its own ``kind``; a third-party
plugin under its entry point's name (a built-in kind cannot be replaced).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from rotation.errors import ConfigError

if TYPE_CHECKING:
    from rotation.updaters.base import UpdaterPlugin

__all__ = ["GROUP", "kinds", "plugin"]

GROUP = "pat_rotator.updaters"


def _built_in() -> tuple[UpdaterPlugin, ...]:
    """Return the plugins this project ships (imported on first use only)."""
    from rotation.updaters import devops, fivetran, github, prequel, webhook  # noqa: PLC0415

    return (
        *prequel.PLUGINS,
        devops.PLUGIN,
        fivetran.PLUGIN,
        *github.PLUGINS,
        *webhook.PLUGINS,
    )


@cache
def _plugins() -> dict[str, UpdaterPlugin]:
    found: dict[str, UpdaterPlugin] = {p.kind: p for p in _built_in()}
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
