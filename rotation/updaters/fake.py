"""A small in-process updater and consumer for people writing one (like httpx's MockTransport).

:class:`FakeConsumer` is a consumer in memory: it holds a PAT and judges PATs with the callable it
is given (``accepts(pat) -> bool``). :class:`FakeUpdater` is a complete :class:`Updater` over it —
a working example of the seam's contract, and a double for tests of code around an updater.
:class:`FakePlugin` registers it (``kind = "fake"``; settings: the consumer's ``name``), e.g.
through the ``pat_rotator.updaters`` entry point of a package of your own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rotation import errors
from rotation.fields import Model

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

    from rotation.secret import Secret
    from rotation.updaters.base import Updater, UpdaterContext

__all__ = ["FakeConsumer", "FakePlugin", "FakeSettings", "FakeUpdater"]


@dataclass
class FakeConsumer:
    """A consumer in memory: the PAT it holds, and which PATs it accepts."""

    name: str
    accepts: Callable[[Secret], bool] = field(default=lambda _pat: True)
    held: Secret | None = None
    pushes: int = 0


class FakeUpdater:
    """An updater over a :class:`FakeConsumer`: tests unsaved, pushes, confirms."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self._consumer = consumer

    @property
    def name(self) -> str:
        """Return ``fake:<name>``."""
        return f"fake:{self._consumer.name}"

    async def preflight(self) -> None:
        """Accept: an in-memory consumer is always reachable."""

    async def test(self, pat: Secret) -> bool:
        """Ask the consumer about *pat* without saving it; refuse loudly if it says no."""
        if not self._consumer.accepts(pat):
            msg = f"consumer {self.name} rejected the new PAT; nothing was saved"
            raise errors.ConsumerRejectedTokenError(msg)
        return True

    async def push(self, pat: Secret) -> None:
        """Save *pat* on the consumer (again with the same PAT: nothing changes)."""
        self._consumer.held = pat
        self._consumer.pushes += 1

    async def confirm(self, pat: Secret) -> None:
        """Prove the consumer holds *pat* and works with it."""
        if self._consumer.held != pat or not self._consumer.accepts(pat):
            msg = f"consumer {self.name} does not work with the PAT it was given"
            raise errors.ConsumerError(msg)


class FakeSettings(Model):
    """A ``kind = "fake"`` updater table: which consumer."""

    name: str


@dataclass(frozen=True)
class FakePlugin:
    """The plugin: builds a :class:`FakeUpdater` over the consumer its table names."""

    consumers: dict[str, FakeConsumer] = field(default_factory=dict)
    kind: ClassVar[str] = "fake"
    settings_model: ClassVar[type[BaseModel]] = FakeSettings

    def build(self, settings: BaseModel, context: UpdaterContext) -> Updater:
        """Return the updater for the consumer *settings* name (made on first use)."""
        del context
        name = str(getattr(settings, "name", ""))
        consumer = self.consumers.setdefault(name, FakeConsumer(name))
        return FakeUpdater(consumer)
