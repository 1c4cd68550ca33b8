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

    def update(self, entries: dict[str, dict[str, Any]]) -> None:
        """Merge ``key -> entry`` into the file (entries replace older ones of the same key)."""
        with self._thread_lock, self._file_lock:
            data = read_json(self.path) or {}
            cells = data.get("cells", {})
            now = time.time()
            for key, entry in entries.items():
                cells[key] = {**entry, "updated": now}
            write_json_atomic(self.path, {"updated": now, "cells": dict(sorted(cells.items()))})

    def read(self) -> dict[str, dict[str, Any]]:
        return (read_json(self.path) or {}).get("cells", {})
