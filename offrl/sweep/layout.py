"""Where a sweep keeps things, and what a cell's files say about its state.

::

    SWEEP_DIR/
      sweep.json         resolved spec + every cell (key -> critic/actor/dataset/seed/overrides)
      status.json        last known state of each cell (advisory; the run dirs are the truth)
      runs/<key>/        an ordinary offrl run directory (+ error.txt when the cell failed)
      logs/<key>.log     stdout+stderr of every attempt of the cell, appended
      locks/<key>.lock   per-cell lock, held by the worker running the cell, its guard and its runner
      slurm/             the SLURM backend's jobs: submitit's pickles and each job's output, jobs.json

The run directories are the source of truth: a cell has ended exactly when its
``summary.json`` says so (``finished``, or ``diverged``), is resumable when it
has a ``checkpoint.pt``. The cell locks live outside the run directory so the
run directory holds nothing ``offrl run`` did not write (apart from
``error.txt``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offrl.rundir import CHECKPOINT, ERROR, EVAL_LOG, SUMMARY, last_row, read_json, run_state  # noqa: F401
from offrl.rundir import write_json


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

    def check_confined(self, keys: list[str]) -> None:
        """Refuse a sweep directory whose folders or cells lead outside it through symbolic links (a sweep
        directory from elsewhere could otherwise make a rerun write, or clear, folders that are not its own)."""
        from offrl.errors import ConfigError

        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"Sweep directory '{self.root}' is a file; give a folder (--out).")
        base = self.root.resolve()
        paths = [self.spec_file, self.status_file, *(self.root / sub for sub in ("runs", "logs", "locks", "slurm"))]
        paths += [p for key in keys for p in (self.run_dir(key), self.log_file(key), self.lock_file(key))]
        for path in paths:
            if (path.exists() or path.is_symlink()) and not path.resolve().is_relative_to(base):
                raise ConfigError(f"'{path}' leads outside the sweep directory '{self.root}' (to {path.resolve()}) "
                                  "through a symbolic link; offrl only writes inside the sweep directory. Remove the "
                                  "link, or use another --out.")


def disk_state(run_dir: Path) -> str:
    """'finished', 'diverged', 'failed' (error.txt), 'partial' (resumable checkpoint) or 'pending'."""
    return run_state(run_dir)


def last_eval(run_dir: Path) -> dict[str, Any] | None:
    """The last complete row of ``eval.jsonl`` (a torn last line from a crash is ignored)."""
    return last_row(run_dir / EVAL_LOG)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers never see a half-written file (creating the parent folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
