"""The updater seam: how a new PAT reaches a consumer.

An updater tests a PAT with its consumer *without saving it* (where the consumer can), pushes it,
and confirms the consumer now works with it. The rotation revokes the previous PAT only when every
updater of the target confirmed the new one. Third parties add updaters through the
``pat_rotator.updaters`` entry-point group: each entry point names an :class:`UpdaterPlugin`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from rotation.backends.azure import AzureOptions

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from pydantic import BaseModel

    from rotation.backends import RetryPolicy
    from rotation.secret import Secret

__all__ = [
    "DescribesRoutes",
    "Plugin",
    "Restores",
    "SecretReader",
    "Updater",
    "UpdaterContext",
    "UpdaterPlugin",
]

_Settings = TypeVar("_Settings", bound="BaseModel")


class SecretReader(Protocol):
    """Read a named secret (an API key, a client secret) from the secret store."""

    async def read(self, name: str) -> Secret:
        """Return the latest value of secret *name*; raise ``SecretMissingError`` if absent."""
        ...


@dataclass(frozen=True, slots=True)
class UpdaterContext:
    """What an updater may use: a shared HTTP client, the secret store and the retry policy.

    ``azure`` is the run's shared Azure SDK transport, for an updater that gets Entra tokens with
    azure-identity (default: each credential makes its own); ``target`` and ``clock`` (epoch
    seconds) are the run's target name and clock, for consumers that are told which target a PAT
    belongs to and when a message was sent (the signed webhook).
    """

    http: httpx.AsyncClient
    secrets: SecretReader
    retry: RetryPolicy
    azure: AzureOptions = field(default_factory=AzureOptions)
    target: str = ""
    clock: Callable[[], float] = field(default=time.time)


class Updater(Protocol):
    """One consumer of a target's PAT."""

    @property
    def name(self) -> str:
        """Return a short label that identifies the consumer in logs and reports (no secrets)."""
        ...

    async def preflight(self) -> None:
        """Prove the consumer is reachable and accepts our credentials, before anything is minted.

        Raise ``ConsumerAuthError`` / ``ConsumerError`` with what to fix; change nothing.
        """
        ...

    async def test(self, pat: Secret) -> bool:
        """Prove *pat* works for the consumer without saving it.

        Return False when the consumer cannot test unsaved credentials (nothing was tested);
        raise ``ConsumerRejectedTokenError`` when the consumer reports the PAT fails.
        """
        ...

    async def push(self, pat: Secret) -> None:
        """Save *pat* as the consumer's credential; safe to call again with the same PAT."""
        ...

    async def confirm(self, pat: Secret) -> None:
        """Prove the consumer works with its saved credential; raise ``ConsumerError`` if not."""
        ...


@runtime_checkable
class DescribesRoutes(Protocol):
    """An updater that may say which routes it uses (optional; ``doctor`` shows them)."""

    def routes(self) -> list[str]:
        """Return one line per route: what it is for, the route, and whether it is documented."""
        ...

    def routes_documented(self) -> bool:
        """Return False when a route in use is not documented by the consumer's vendor."""
        ...


@runtime_checkable
class Restores(Protocol):
    """An updater that can put the previous PAT back when its consumer refuses the new one.

    For a consumer that cannot test a PAT before saving it (its ``test`` returns False): when
    ``confirm`` fails after ``push``, the rotation calls ``restore`` with the PAT the consumer held
    before (still alive: the old PAT is revoked only after every consumer confirmed), then fails
    the run with the confirm's error.
    """

    async def restore(self, previous: Secret) -> None:
        """Save *previous* as the consumer's credential again; raise ``ConsumerError`` if not."""
        ...


class UpdaterPlugin(Protocol):
    """What an entry point of ``pat_rotator.updaters`` names (and each built-in kind is)."""

    @property
    def kind(self) -> str:
        """Return the ``kind`` an updater table names it by."""
        ...

    @property
    def settings_model(self) -> type[BaseModel]:
        """Return the pydantic model validating an updater table (``kind`` excluded)."""
        ...

    def build(self, settings: BaseModel, context: UpdaterContext) -> Updater:
        """Return an updater for validated *settings*."""
        ...


@dataclass(frozen=True, slots=True)
class Plugin(Generic[_Settings]):
    """An :class:`UpdaterPlugin` made of a kind, its settings model and the updater's class."""

    kind: str
    settings_model: type[_Settings]
    updater: Callable[[_Settings, UpdaterContext], Updater]
    """Called with the validated settings and the run's context."""

    def build(self, settings: BaseModel, context: UpdaterContext) -> Updater:
        """Return an updater for *settings*; ``TypeError`` if they are another kind's."""
        if not isinstance(settings, self.settings_model):
            model, got = self.settings_model.__name__, type(settings).__name__
            msg = f"{self.kind} needs {model}, got {got}"
            raise TypeError(msg)
        return self.updater(settings, context)
