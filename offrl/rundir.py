"""The run-directory format, in one torch-free module shared by the trainer, the sweep and the report.

::

    RUN_DIR/
      config.json        the resolved config (strict JSON; non-finite numbers as "inf", "-inf", "nan")
      train.jsonl        one row per log interval: step, time_s, averaged training metrics
      eval.jsonl         one row per evaluation: step, time_s, returns, normalised score
      obs_stats.json     observation normalisation statistics (when data.normalize_obs)
      checkpoint.pt      everything needed to continue exactly (atomic)
      checkpoint.prev.pt the checkpoint before it (kept so a damaged latest one is not fatal)
      summary.json       written when the run ends: status "finished" or "diverged"
      run.lock           locked (flock) by the process running the run, for as long as it runs
      error.txt          written by ``offrl sweep`` when a cell failed

    GROUP_DIR/           a multi-seed run (``offrl run --seeds 0-7 --out GROUP_DIR``)
      group.json         the seeds and their run directories
      seed<S>/           an ordinary run directory per seed

Every file is written atomically (a uniquely named temporary file in the same
directory, then a rename), so a reader never sees half a file and two writers
never collide on a temporary name. JSON is strict: ``NaN`` and ``Infinity``
are not JSON, so logs and summaries record non-finite numbers as ``null``.

A run directory may come from elsewhere (downloaded, shared), so what it
holds is data, never instructions: a path read from one of its files
(``group.json``'s run directories) must stay inside the folder that holds the
file (:func:`inside`), and offrl never follows a symbolic link among a run's
files (:func:`check_no_links`), so a crafted folder cannot make offrl read or
write elsewhere.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

CONFIG = "config.json"
SUMMARY = "summary.json"
TRAIN_LOG = "train.jsonl"
EVAL_LOG = "eval.jsonl"
OBS_STATS = "obs_stats.json"
CHECKPOINT = "checkpoint.pt"
PREV_CHECKPOINT = "checkpoint.prev.pt"
ERROR = "error.txt"
GROUP = "group.json"
LOCK = "run.lock"

#: The states :func:`run_state` reports.
STATES = ("finished", "diverged", "failed", "partial", "pending")

#: Columns of an ``eval.jsonl`` row that can be a run's primary score, in order of preference: a task
#: judged by success (e.g. OGBench) is scored by its success rate, else by the normalised score when the
#: dataset has reference scores, else by the raw return.
PRIMARY_METRICS = ("success_rate_100", "normalized_score_100", "return_mean")
#: How each primary metric is named in tables and figures.
METRIC_LABELS = {
    "success_rate_100": "success rate (%)",
    "normalized_score_100": "normalised score",
    "return_mean": "return",
}
#: Metrics on the 0-100 scale, which may be aggregated across datasets (raw returns may not).
SCALED_METRICS = ("success_rate_100", "normalized_score_100")


# ------------------------------------------------------------------ JSON


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (for logs and summaries)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def floats_as_text(obj: Any) -> Any:
    """``obj`` with non-finite floats written as ``"inf"``, ``"-inf"`` or ``"nan"`` (for configs,
    whose values are read back through the same type conversion as ``--set``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: floats_as_text(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [floats_as_text(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON (raises on NaN/inf: callers clean values first)."""
    return json.dumps(obj, indent=indent, allow_nan=False)


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A uniquely named temporary file next to ``path``, with the mode a plain ``open`` would give it.

    ``mkstemp`` creates files 0600 whatever the umask; a run's files are shared with collaborators and
    tools, so they get ``0666 & ~umask`` like any other file the user creates.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:  # a file system without modes (some network mounts) keeps mkstemp's
        pass
    return fd, tmp


def write_text_atomic(path: Path, text: str, fsync: bool = True) -> None:
    """Write ``text`` so readers see the old or the new file, never a part (unique temp + rename)."""
    path = Path(path)
    fd, tmp = make_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Atomically write ``data`` as strict JSON (non-finite floats become ``null``)."""
    write_text_atomic(Path(path), dumps(finite_or_none(data), indent) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` if it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------ JSONL logs


def read_config(run_dir: Path) -> dict[str, Any]:
    """The config layer saved in ``run_dir/config.json`` (without ``offrl_version``); one :class:`RunDirError`
    when the directory holds no run or the file is damaged."""
    from offrl.errors import RunDirError

    path = Path(run_dir) / CONFIG
    if path.is_symlink():
        raise RunDirError(f"'{path}' is a symbolic link; offrl does not follow links among a run's files.")
    if not path.is_file():
        raise RunDirError(f"'{run_dir}' holds no offrl run (no {CONFIG}); nothing to resume.")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise RunDirError(f"'{path}' is damaged ({e}); the run cannot be resumed.") from None
    except OSError as e:
        raise RunDirError(f"'{path}' cannot be read ({e.strerror or e}).") from None
    if not isinstance(saved, dict):
        raise RunDirError(f"'{path}' is damaged (not a JSON object); the run cannot be resumed.")
    saved.pop("offrl_version", None)
    return saved


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file; unreadable lines (a torn last write) are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one row (strict JSON, non-finite numbers as null); never through a symbolic link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(dumps(finite_or_none(row)) + "\n")


def truncate_jsonl(path: Path, step: int) -> None:
    """Keep only rows with ``step <= step`` (atomically); used on resume from a checkpoint."""
    path = Path(path)
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if _step_of(r) is not None and _step_of(r) <= step]
    write_text_atomic(path, "".join(dumps(finite_or_none(r)) + "\n" for r in rows), fsync=False)


def _step_of(row: dict[str, Any]) -> int | None:
    step = row.get("step")
    return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step) else None


def last_row(path: Path, tail_bytes: int = 8192) -> dict[str, Any] | None:
    """The last complete row of a ``.jsonl`` file (a torn last line is ignored), reading only its tail."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
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


# ------------------------------------------------------------------ runs and their state


def is_run_dir(path: Path) -> bool:
    """A run directory is a folder holding a ``config.json``."""
    return (Path(path) / CONFIG).is_file()


def find_run_dirs(path: Path) -> list[Path]:
    """Run directories at or below ``path``, sorted."""
    path = Path(path)
    if is_run_dir(path):
        return [path]
    return sorted({p.parent for p in path.rglob(CONFIG)})


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / SUMMARY)


def run_state(run_dir: Path) -> str:
    """'finished' or 'diverged' (the run ended and says so), 'failed' (a sweep recorded an error),
    'partial' (a checkpoint to resume from) or 'pending' (nothing to continue)."""
    run_dir = Path(run_dir)
    status = (read_summary(run_dir) or {}).get("status")
    if status in ("finished", "diverged"):
        return str(status)
    if (run_dir / ERROR).exists():
        return "failed"
    if (run_dir / CHECKPOINT).exists() or (run_dir / PREV_CHECKPOINT).exists():
        return "partial"
    return "pending"


def has_ended(run_dir: Path) -> bool:
    """The run reached its end (finished, or stopped for good because it diverged)."""
    return run_state(run_dir) in ("finished", "diverged")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def primary_metric(rows: Iterable[dict[str, Any]]) -> str | None:
    """The first of :data:`PRIMARY_METRICS` that holds a number in any of ``rows`` (eval rows of one run);
    ``None`` when none does (no evaluation yet, or every value was non-finite)."""
    present = {k for row in rows for k in PRIMARY_METRICS if _is_number(row.get(k))}
    return next((k for k in PRIMARY_METRICS if k in present), None)


# ------------------------------------------------------------------ locks


def try_lock(path: Path) -> int | None:
    """Lock ``path`` exclusively without waiting (creating it): the open descriptor, or ``None`` if
    another process holds the lock.

    The lock is ``flock``'s: it belongs to the open file, so a child process that inherits the
    descriptor (``subprocess.Popen(pass_fds=...)``) holds it too, and it is released only when
    every process holding it has closed it or exited (a ``kill -9`` included). Closing the
    descriptor in one process does not unlock it for the others. POSIX only (Linux, macOS).
    """
    return _lock(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644))


def _lock(fd: int) -> int | None:
    import fcntl  # POSIX; imported here so that this module imports everywhere

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def lock_run_dir(run_dir: Path) -> int | None:
    """Take ``RUN_DIR/run.lock`` for the life of this process (see :func:`try_lock`); ``None`` when
    another process runs the run. The process training a run holds it while it trains, so that no
    second process (a rerun sweep, a hand-started ``--resume``) writes the same run directory."""
    return try_lock(Path(run_dir) / LOCK)


def run_dir_busy(run_dir: Path) -> bool:
    """Whether another process holds ``RUN_DIR/run.lock`` (a missing lock file means no; none is created)."""
    try:
        fd = _lock(os.open(Path(run_dir) / LOCK, os.O_RDWR))
    except FileNotFoundError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


# ------------------------------------------------------------------ paths read from files


#: The files of a run directory offrl reads or writes (none of them may be a symbolic link).
RUN_FILES = (CONFIG, SUMMARY, TRAIN_LOG, EVAL_LOG, OBS_STATS, CHECKPOINT, PREV_CHECKPOINT, ERROR, GROUP, LOCK,
             "policy_final.pt", "policy_best.pt")


def inside(base: Path, name: Any, source: Path) -> Path:
    """``base / name`` for a relative path ``name`` read from the file ``source``, refused (:class:`RunDirError`
    naming ``source``) when it is not a plain relative path or leads outside ``base`` (``..``, an absolute path,
    a symbolic link pointing elsewhere)."""
    from offrl.errors import RunDirError

    text = name if isinstance(name, str) else None
    rel = Path(text) if text else None
    if rel is None or rel.is_absolute() or ".." in rel.parts or text.strip() != text:
        raise RunDirError(f"'{source}' names {name!r}, which is not a path inside '{base}'; offrl only follows "
                          "paths that stay inside the folder of the file naming them (the file may be damaged or "
                          "crafted).")
    path = Path(base) / rel
    if not path.resolve().is_relative_to(Path(base).resolve()):
        raise RunDirError(f"'{source}' names '{name}', which leads outside '{base}' (to {path.resolve()}) through "
                          "a symbolic link; offrl only follows paths that stay inside the folder of the file naming "
                          "them.")
    return path


def check_no_links(run_dir: Path) -> None:
    """Refuse a run directory in which one of offrl's files is a symbolic link (it could lead anywhere: a lock
    file linked to a file of yours would be truncated, a log linked elsewhere appended to)."""
    from offrl.errors import RunDirError

    for name in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_symlink():
            raise RunDirError(f"'{path}' is a symbolic link (to {os.readlink(path)}); offrl does not follow links "
                              "among a run's files. Replace it with the file itself, or remove it.")


# ------------------------------------------------------------------ multi-seed groups


def seed_dir(group_dir: Path, seed: int) -> Path:
    return Path(group_dir) / f"seed{seed}"


def write_group(group_dir: Path, seeds: Iterable[int], run_dirs: Iterable[Path]) -> None:
    """``group.json``: the seeds and their run directories, relative to the group directory (always inside it)."""
    base = Path(group_dir).resolve()
    dirs = [str(Path(d).resolve().relative_to(base)) for d in run_dirs]
    write_json(Path(group_dir) / GROUP, {"seeds": list(seeds), "run_dirs": dirs})


def read_group(group_dir: Path) -> list[Path] | None:
    """The run directories of the multi-seed run in ``group_dir``; ``None`` if it is not one.

    A damaged ``group.json``, or one naming a directory outside the group (``"../../elsewhere"``, an absolute
    path, a link leading out), is one :class:`RunDirError` naming the file.
    """
    from offrl.errors import RunDirError

    path = Path(group_dir) / GROUP
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink():
        raise RunDirError(f"'{path}' is a symbolic link; offrl does not follow links among a run's files.")
    data = read_json(path)
    dirs = data.get("run_dirs") if data is not None else None
    if not isinstance(dirs, list) or not dirs:
        raise RunDirError(f"'{path}' is damaged (not a JSON object listing the seeds' run directories). Restore it, "
                          f"or continue each seed's directory on its own: `offrl run --resume {Path(group_dir)}/seed<S>`.")
    return [inside(Path(group_dir), d, path) for d in dirs]


__all__ = [
    "CHECKPOINT", "CONFIG", "ERROR", "EVAL_LOG", "GROUP", "LOCK", "METRIC_LABELS", "OBS_STATS", "PREV_CHECKPOINT",
    "PRIMARY_METRICS", "RUN_FILES", "SCALED_METRICS", "STATES", "SUMMARY", "TRAIN_LOG", "append_jsonl",
    "check_no_links", "dumps", "find_run_dirs", "finite_or_none", "floats_as_text", "has_ended", "inside",
    "is_run_dir", "last_row", "lock_run_dir", "primary_metric",
    "read_group", "read_json", "read_jsonl", "read_summary", "run_dir_busy", "run_state", "seed_dir", "truncate_jsonl",
    "try_lock", "write_group", "write_json", "write_text_atomic",
]
