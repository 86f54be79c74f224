"""Ctrl-C and SIGTERM for the CLI: one behaviour for both, and none once the work is done.

The Functions host and container platforms stop a process with SIGTERM; a person presses Ctrl-C
(SIGINT). Both stop a run the same way — the running step is cancelled at its next ``await``, what
is stored stays consistent, and the next ``rotate`` resumes — and the exit code says which signal
it was, as shells do for a process ended by a signal: 128 + 2 = 130 for Ctrl-C, 128 + 15 = 143
for SIGTERM. Once the work is done (the reports exist), a signal changes nothing: the run's own
result and exit code stand.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from types import FrameType, TracebackType

__all__ = ["EXIT_SIGINT", "EXIT_SIGTERM", "Interrupts"]

EXIT_SIGINT, EXIT_SIGTERM = 130, 143
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Within ``with``: SIGTERM acts as Ctrl-C until :meth:`work_done`, then signals are ignored."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._saved: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.getsignal(s) for s in _SIGNALS}
            signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def _on_sigterm(self, _signum: int, frame: FrameType | None) -> None:
        """Do what Ctrl-C does now: asyncio's handler cancels the run, the default one raises."""
        self.signal = self.signal or signal.SIGTERM
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    def work_done(self) -> None:
        """Say that the result exists: from now on Ctrl-C and SIGTERM change nothing."""
        if self._saved:
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_IGN)

    @property
    def name(self) -> str:
        """Return the signal that stopped the run: ``SIGTERM``, else ``SIGINT`` (Ctrl-C)."""
        return (self.signal or signal.SIGINT).name

    @property
    def exit_code(self) -> int:
        """Return 143 after SIGTERM, 130 after Ctrl-C."""
        return EXIT_SIGTERM if self.signal is signal.SIGTERM else EXIT_SIGINT
