"""Checkpoints: one per seed's run directory, written atomically, the previous one kept.

A checkpoint holds one seed's whole training state (weights, targets, EMA,
optimiser moments, LR-schedule counts, its generator, metric sums, best/last
evaluation) without the seed axis, so the checkpoint of a seed trained in a
group is the same file a solo run of that seed writes: either can continue it.

Saving a group of seeds writes every seed's file to a unique temporary name
first (fsynced), then, per seed, hard-links the current checkpoint to
``checkpoint.prev.pt`` and renames the new one into place. A kill at any
moment therefore leaves every seed with a readable checkpoint at the new or the
previous step, and :func:`load_group` finds the latest step all seeds share.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from offrl import rundir
from offrl.errors import RunDirError

#: Version of the checkpoint layout; 2 = the shared learner's per-seed state; 3 = flat-buffer random draws
#: (generator states with their device type).
FORMAT = 3


def _write_temp(state: dict[str, Any], path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _commit(tmp: Path, path: Path) -> None:
    prev = path.with_name(rundir.PREV_CHECKPOINT)
    if path.exists():
        link = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:  # no hard links here: copy instead
            link.write_bytes(path.read_bytes())
        os.replace(link, prev)
    os.replace(tmp, path)


def save_group(states: list[tuple[Path, dict[str, Any]]]) -> None:
    """Write ``(run_dir, state)`` checkpoints of several seeds so a kill never loses a common step.

    Raises :class:`RunDirError` naming the file on a write error; earlier checkpoints stay intact.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for run_dir, state in states:
            path = Path(run_dir) / rundir.CHECKPOINT
            temps.append((_write_temp({"format": FORMAT, **state}, path), path))
        for tmp, path in temps:
            _commit(tmp, path)
    except OSError as e:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        where = e.filename or (temps[-1][1] if temps else states[0][0])
        raise RunDirError(
            f"Could not write a checkpoint ({where}: {e.strerror or e}). The previous checkpoint is intact: "
            "make the run directory writable again and continue with `offrl run --resume`."
        ) from None


def read(path: Path, device: torch.device) -> dict[str, Any] | str:
    """The checkpoint at ``path``, or a string saying why it cannot be used."""
    if not path.exists():
        return "missing"
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # zeroed, truncated, not a torch file
        return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})"
    if not isinstance(state, dict):
        return "not an offrl checkpoint"
    if state.get("format") != FORMAT:
        return (f"written by an earlier offrl (checkpoint format {state.get('format', 1)}, this offrl reads "
                f"format {FORMAT}); such runs cannot be continued — start a new run")
    return state


def candidates(run_dir: Path, device: torch.device) -> tuple[list[dict[str, Any]], list[str]]:
    """Usable checkpoints of ``run_dir`` (latest first) and the reasons the others are not usable."""
    good, problems = [], []
    for name in (rundir.CHECKPOINT, rundir.PREV_CHECKPOINT):
        state = read(Path(run_dir) / name, device)
        if isinstance(state, dict):
            good.append(state)
        elif state != "missing":
            problems.append(f"{Path(run_dir) / name}: {state}")
    return good, problems


def load_group(run_dirs: list[Path], device: torch.device) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The checkpoints of every run at the latest step they all have (``None``: start over — no run has one,
    or a kill interrupted the group's first save).

    Returns the states and notes on checkpoints that could not be used (damaged files).
    Raises :class:`RunDirError` when some runs have a checkpoint and no common step exists.
    """
    found = [candidates(d, device) for d in run_dirs]
    notes = [p for _, problems in found for p in problems]
    if all(not good for good, _ in found):
        if notes:
            raise RunDirError("No readable checkpoint to continue from: " + "; ".join(notes) +
                              ". Start a new run (--out elsewhere), or delete the run directory and start again.")
        return None, notes
    steps = [{int(s["step"]) for s in good} for good, _ in found]
    common = set.intersection(*steps)
    if not common and any(not s for s in steps):  # killed during the group's first save: start over
        return None, notes
    if not common:
        listing = ", ".join(f"{d}: {sorted(s) or 'none'}" for d, s in zip(run_dirs, steps))
        raise RunDirError(f"The seeds' checkpoints share no step ({listing}); they cannot continue together. "
                          "Resume each seed's directory on its own with `offrl run --resume DIR`.")
    step = max(common)
    return [next(s for s in good if int(s["step"]) == step) for good, _ in found], notes
