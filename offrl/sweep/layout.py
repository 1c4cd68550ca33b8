"""Where a sweep keeps things, and what a cell's files say about its state.

::

    SWEEP_DIR/
      sweep.json         resolved spec + every cell (key -> critic/actor/dataset/seed/overrides)
      status.json        last known state of each cell (advisory; the run dirs are the truth)
      runs/<key>/        an ordinary offrl run directory (+ error.txt when the cell failed)
      logs/<key>.log     stdout+stderr of every attempt of the cell, appended
      locks/<key>.lock   per-cell lock, held by the worker running the cell

The run directories are the source of truth: a cell is finished exactly when
its ``summary.json`` says so, resumable when it has a ``checkpoint.pt``. The
lock files live outside the run directory so the run directory holds nothing
``offrl run`` did not write (apart from ``error.txt``).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
EVAL_LOG = "eval.jsonl"
ERROR = "error.txt"


@dataclass(frozen=True)
class SweepLayout:
    """Paths of one sweep directory."""

    root: Path

    @property
    def spec_file(self) -> Path:
        return self.root / "sweep.json"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    def run_dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def log_file(self, key: str) -> Path:
        return self.root / "logs" / f"{key}.log"

    def lock_file(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def make_dirs(self) -> None:
        for sub in ("runs", "logs", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)


def is_finished(run_dir: Path) -> bool:
    """True when the run wrote a ``summary.json`` with status ``finished``."""
    summary = read_json(run_dir / SUMMARY)
    return bool(summary) and summary.get("status") == "finished"


def disk_state(run_dir: Path) -> str:
    """'finished', 'failed' (error.txt), 'partial' (resumable checkpoint) or 'pending'."""
    if is_finished(run_dir):
        return "finished"
    if (run_dir / ERROR).exists():
        return "failed"
    if (run_dir / CHECKPOINT).exists():
        return "partial"
    return "pending"


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` if it is missing or unreadable (e.g. half written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def last_eval(run_dir: Path) -> dict[str, Any] | None:
    """The last complete row of ``eval.jsonl`` (a torn last line from a crash is ignored)."""
    path = run_dir / EVAL_LOG
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            return row
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers never see a half-written file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
