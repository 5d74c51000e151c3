"""Ctrl-C and SIGTERM as polite requests: the first one asks a long computation to pause at its
next safe point (so it can save and say how to resume); a second one interrupts at once.

SIGTERM is what ``kill``, ``timeout``, systemd and batch schedulers send before they give up
and kill; treating it like Ctrl-C means a sweep stopped by any of them keeps its last group.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class PauseOnInterrupt:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`requested` instead of
    ending the process; :attr:`signal` says which arrived first.

    Outside the main thread (where signal handlers cannot be installed) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        """True once a pause was asked for: usable as a ``should_stop`` callback."""
        return self.requested

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for TERM)."""
        return 128 + int(self.signal or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal = signum

    def __enter__(self) -> PauseOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, previous in self._previous.items():
            # None: the previous handler was not installed from Python; restore the default.
            signal.signal(number, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
