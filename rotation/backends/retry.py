"""Bounded, jittered retries of idempotent calls, honouring ``Retry-After``.

Idempotent calls are retried on any transient failure. A call that is not idempotent
(``token/create``) is retried only when it surely did not happen — a 429, or a connection that
never opened; a create whose outcome is unknown is never repeated but reconciled through the
rotation id in the PAT's comment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import stamina
from stamina.instrumentation import set_on_retry_hooks

from rotation.errors import RotationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from stamina.instrumentation import RetryDetails

__all__ = ["RetryPolicy", "retrying"]

T = TypeVar("T")
log = logging.getLogger("rotation.retry")


def _log_retry(details: RetryDetails) -> None:
    """Say, in one line at info, which call is retried, when, and why.

    Replaces stamina's own hook, which logs a bare ``stamina.retry_scheduled`` at warning with
    the detail only in extras. A retry is not a failure: one that ends in failure is in the
    run's report (or the command's error line); the retries before it are at ``--log-level info``.
    """
    cause = details.caused_by
    why = str(cause).splitlines()[0] if str(cause) else ""
    log.info(
        "retry %d of %s in %.1f s (%.1f s waited so far) after %s%s",
        details.retry_num,
        details.name,
        details.wait_for,
        details.waited_so_far,
        type(cause).__name__,
        f": {why}" if why else "",
    )


set_on_retry_hooks([_log_retry])


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a transient failure of one idempotent call."""

    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 8.0
    wait_jitter: float = 0.5
    timeout: float = 60.0
    max_retry_after: float = 30.0
    """Cap on a server's ``Retry-After``: a longer wait fails the call (the next run retries)."""
    throttle_timeout: float = 60.0
    """How long a Key Vault request refused as throttled (429) keeps being sent again, in all."""
    throttle_wait_initial: float = 1.0
    throttle_wait_max: float = 4.0
    """Waits after a 429 without ``Retry-After``: doubling from *throttle_wait_initial* up to
    *throttle_wait_max*, each 50-100 % of that (Key Vault documents no ``Retry-After``)."""


def _hook(policy: RetryPolicy, *, idempotent: bool) -> Callable[[Exception], bool | float]:
    def should_retry(exc: Exception) -> bool | float:
        if not isinstance(exc, RotationError) or not exc.transient:
            return False
        if not idempotent and getattr(exc, "outcome_unknown", False):
            return False  # it may have happened: the caller reconciles instead of repeating
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= policy.max_retry_after else False
        return True

    return should_retry


async def retrying(
    policy: RetryPolicy, call: Callable[[], Awaitable[T]], *, idempotent: bool = True
) -> T:
    """Await *call*, retrying it on transient ``RotationError``s as *policy* allows.

    A call that is not *idempotent* is retried only when it surely did not happen (429, a
    connection that never opened), never after an unknown outcome.
    """
    async for attempt in stamina.retry_context(
        on=_hook(policy, idempotent=idempotent),
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            return await call()
    msg = "unreachable: stamina either returns or raises"  # pragma: no cover
    raise AssertionError(msg)  # pragma: no cover
