"""A target's consumers during one run: preflight, test, push and confirm, with their results.

Each step runs over every updater in configuration order, reports through the run's
:class:`~rotation.engine.tracker.Tracker` and records per-consumer results; the first failure
stops the step (and the run) with the consumer's error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, TypeVar

from rotation import errors
from rotation.engine.report import ConsumerResult, Step
from rotation.updaters import Restores, UpdaterContext
from rotation.updaters.registry import plugin

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rotation.config import Target
    from rotation.engine.runtime import Runtime
    from rotation.engine.tracker import Tracker
    from rotation.secret import Secret
    from rotation.updaters import SecretReader, Updater

    Previous: TypeAlias = Callable[[], Awaitable[Secret | None]]

__all__ = ["Consumers"]

T = TypeVar("T")


class Consumers:
    """The updaters of one target for one run, and what each of them did."""

    def __init__(self, target: Target, rt: Runtime, tracker: Tracker) -> None:
        ctx = UpdaterContext(
            rt.http, _CachedReader(rt.store), rt.retry, rt.azure, target.name, rt.clock
        )
        self._updaters: list[Updater] = []
        for spec in target.updaters:  # validated with the config, so each kind has a plugin
            self._updaters.append(plugin(spec.kind).build(spec.settings, ctx))
        self.results = [ConsumerResult(u.name) for u in self._updaters]
        self._tracker = tracker

    @property
    def updaters(self) -> list[Updater]:
        """Return the updaters, in configuration order."""
        return list(self._updaters)

    def _pairs(self) -> list[tuple[Updater, ConsumerResult]]:
        return list(zip(self._updaters, self.results, strict=True))

    async def preflight(self) -> None:
        """Prove every consumer is reachable and accepts our credentials; change nothing."""
        await self._tracker.enter(Step.PREFLIGHT)
        for updater, result in self._pairs():
            await _recording(result, updater.preflight())
        self._tracker.done(Step.PREFLIGHT, consumers=len(self._updaters))

    async def test(self, pat: Secret) -> None:
        """Have every consumer that can test *pat* without saving it do so."""
        await self._tracker.enter(Step.TEST)
        for updater, result in self._pairs():
            result.tested = await _recording(result, updater.test(pat))
        self._tracker.done(Step.TEST, consumers=len(self._updaters))

    async def push_and_confirm(self, pat: Secret, previous: Previous | None = None) -> None:
        """Save *pat* on every consumer, each confirmed before the next is touched.

        When a consumer that can put a PAT back (:class:`~rotation.updaters.Restores`) refuses
        *pat* after saving it, it is given *previous* (the PAT it held, read only then) before the
        confirm's error is raised.
        """
        for updater, result in self._pairs():
            await self._tracker.enter(Step.PUSH)
            await _recording(result, updater.push(pat))
            result.pushed = True
            await self._tracker.enter(Step.CONFIRM)
            try:
                await _recording(result, updater.confirm(pat))
            except errors.RotationError:
                if isinstance(updater, Restores) and previous is not None:
                    await _restore(updater, result, previous)
                raise
            result.confirmed = True
            self._tracker.done(Step.PUSH, consumer=updater.name)


async def _restore(updater: Restores, result: ConsumerResult, previous: Previous) -> None:
    """Give *updater*'s consumer the previous PAT back; say in *result* whether it took it."""
    try:
        old = await previous()
        if old is None:
            result.error = f"{result.error}; the previous PAT is not in Key Vault to put back"
            return
        await updater.restore(old)
    except errors.RotationError as exc:
        result.error = f"{result.error}; putting the previous PAT back failed too: {exc}"
    else:
        result.restored = True


async def _recording(result: ConsumerResult, call: Awaitable[T]) -> T:
    try:
        return await call
    except errors.RotationError as exc:
        result.error = str(exc)
        raise


class _CachedReader:
    """Read each credential secret once per run."""

    def __init__(self, store: SecretReader) -> None:
        self._store = store
        self._cache: dict[str, Secret] = {}

    async def read(self, name: str) -> Secret:
        if name not in self._cache:
            self._cache[name] = await self._store.read(name)
        return self._cache[name]
