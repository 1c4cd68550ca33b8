"""Ctrl-C and SIGTERM as a flag the trainer checks between chunks of iterations."""
from __future__ import annotations

import signal
from typing import Any


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between chunks of iterations, so the checkpoint
    written on the way out is at an iteration boundary (a consistent state)."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
