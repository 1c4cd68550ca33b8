"""What the trainer tracks per seed and returns: a seed's run directory and its result."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offrl import rundir
from offrl.config import RunConfig
from offrl.errors import RunDirError
from offrl.trainer.lock import RunLock
from offrl.trainer.logger import TensorBoardLog, WandbLog


@dataclass
class RunResult:
    """What a finished, diverged or interrupted seed reports."""

    run_dir: Path
    steps: int
    finished: bool
    summary: dict[str, Any]


@dataclass
class GroupResult:
    """The result of a multi-seed run: one :class:`RunResult` per seed."""

    group_dir: Path
    runs: list[RunResult]

    @property
    def finished(self) -> bool:
        return all(r.finished for r in self.runs)


@dataclass
class SeedRun:
    """One seed's run directory and what the trainer tracks for it."""

    seed: int
    run_dir: Path
    cfg: RunConfig
    best: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, Any] = field(default_factory=dict)
    status: str = "running"  # running | finished | diverged
    diverged: str = ""  # what diverged, when it did
    last_checkpoint: int | None = None  # step of the newest checkpoint written (or loaded)
    lock: RunLock | None = None
    tb: TensorBoardLog | None = None
    wandb: WandbLog | None = None

    @property
    def active(self) -> bool:
        return self.status == "running"


def read_obs_stats(run_dir: Path) -> Any:
    """The observation statistics a run saved (``obs_stats.json``), or ``None`` when it saved none; one
    :class:`RunDirError` naming the file when it is damaged (its size is checked against the data on load)."""
    from offrl.data.preprocess import ObsNormalizer

    path = Path(run_dir) / rundir.OBS_STATS
    if not path.exists() and not path.is_symlink():
        return None
    saved = rundir.read_json(path) if not path.is_symlink() else None
    try:
        if saved is None:
            raise ValueError("not a JSON object")
        return ObsNormalizer.from_dict(saved)
    except ValueError as e:
        raise RunDirError(f"'{path}' is damaged ({e}). Restore the file, or start a new run.") from None


def write_new_runs(runs: list[SeedRun], obs_stats: dict[str, Any] | None, group_dir: Path | None) -> None:
    """The files a new run starts with: each seed's ``config.json`` (and ``obs_stats.json``), the group's
    ``group.json``. A write error (a full disk) is one :class:`RunDirError`; the locks are released."""
    try:
        for r in runs:
            rundir.write_text_atomic(r.run_dir / rundir.CONFIG,
                                     rundir.dumps(rundir.floats_as_text(r.cfg.to_dict()), 2) + "\n")
            if obs_stats is not None:
                rundir.write_json(r.run_dir / rundir.OBS_STATS, obs_stats)
        if group_dir is not None:
            rundir.write_group(group_dir, [r.seed for r in runs], [r.run_dir for r in runs])
    except OSError as e:
        for r in runs:
            if r.lock is not None:
                r.lock.release()
                r.lock = None
        where = e.filename or (group_dir or runs[0].run_dir)
        raise RunDirError(f"Could not start the run: writing {where} failed ({e.strerror or e}). Nothing was "
                          "trained yet; free space or choose another --out, and start it again.") from None


def prepare_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` for a new run; refuse one that already holds a run or is not writable."""
    if (run_dir / rundir.CONFIG).exists():
        raise RunDirError(
            f"'{run_dir}' already holds a run. Continue it with `offrl run --resume {run_dir}` "
            "or choose another --out."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"Cannot write to run directory '{run_dir}': {e.strerror or e}.") from None
