"""``SWEEP_DIR/status.json``: the last known state of every cell, for people and tools.

It is advisory (the run directories are the truth, see :mod:`offrl.sweep.layout`)
but kept consistent: every update is a read-merge-write under a file lock, so
two ``offrl sweep`` processes on one directory (each running different cells)
do not erase each other's entries.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from offrl.sweep.layout import read_json, write_json_atomic


class StatusFile:
    """Thread- and process-safe updates of ``status.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(str(path) + ".lock")
        self.error = ""  # why the file could not be written (it is advisory: the sweep goes on, and says so)

    def update(self, entries: dict[str, dict[str, Any]]) -> None:
        """Merge ``key -> entry`` into the file (entries replace older ones of the same key). A write error (a
        full disk) is remembered in :attr:`error`, not raised: the run directories stay the truth."""
        with self._thread_lock:
            try:
                with self._file_lock:
                    cells = self.read()
                    now = time.time()
                    for key, entry in entries.items():
                        cells[key] = {**entry, "updated": now}
                    write_json_atomic(self.path, {"updated": now, "cells": dict(sorted(cells.items()))})
            except OSError as e:
                self.error = (f"could not update {self.path} ({e.strerror or e}); it is advisory, the run "
                              "directories hold every cell's state")

    def read(self) -> dict[str, dict[str, Any]]:
        """The cells' entries (a damaged file reads as empty: it is rewritten on the next update)."""
        cells = (read_json(self.path) or {}).get("cells")
        return {k: v for k, v in cells.items() if isinstance(v, dict)} if isinstance(cells, dict) else {}
