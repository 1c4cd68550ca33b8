"""Collect run directories into one DataFrame: one row per run × evaluation.

Input is anything ``offrl`` wrote: sweep directories (their ``runs/*``), a
folder of run directories, or single run directories. A run directory is any
folder with a ``config.json``; its identity (critic, actor, dataset, seed)
comes from that resolved config, so runs made by hand with ``offrl run`` and
runs made by a sweep are treated alike. Grid values of sweep cells come from
the sweep's ``sweep.json``.

Robustness rules, because runs may have crashed or been resumed:

- a torn or malformed line of ``eval.jsonl`` (a crash mid-write) is skipped;
- if an evaluation step appears more than once (a resume that did not
  truncate), the last occurrence wins, so each evaluation counts once;
- a run without ``summary.json`` is kept with ``status = "incomplete"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from offrl.errors import RunDirError
from offrl.rundir import CONFIG, EVAL_LOG, SUMMARY, find_run_dirs, read_jsonl
from offrl.rundir import read_json as _read_json

#: Columns of the collected DataFrame, in order.
COLUMNS: tuple[str, ...] = (
    "sweep", "run", "run_dir", "critic", "actor", "variant", "pairing", "dataset", "seed", "status",
    "step", "time_s", "return_mean", "return_std", "score", "score_std", "episodes",
)


def sweep_variants(root: Path) -> dict[str, str]:
    """Cell key -> grid values text (``critic.tau=0.9``) from a sweep's ``sweep.json``."""
    data = _read_json(root / "sweep.json") or {}
    out = {}
    for cell in data.get("cells", []):
        overrides = cell.get("overrides") or {}
        out[cell.get("key", "")] = ",".join(f"{k}={v}" for k, v in overrides.items())
    return out


def pairing_label(critic: str, actor: str, variant: str = "") -> str:
    """How a method is named in tables and plots: ``expectile+edp`` or ``expectile+edp [critic.tau=0.9]``."""
    return f"{critic}+{actor}" + (f" [{variant}]" if variant else "")


def _name(section: Any) -> str | None:
    if isinstance(section, dict):
        return section.get("name")
    return section if isinstance(section, str) else None


def load_run(run_dir: Path, sweep: str = "", variant: str = "") -> pd.DataFrame:
    """The evaluations of one run as rows (empty if it has none yet); raises if ``config.json`` is unusable."""
    config = _read_json(run_dir / CONFIG)
    if config is None:
        raise RunDirError(f"'{run_dir / CONFIG}' is missing or not valid JSON.")
    summary = _read_json(run_dir / SUMMARY) or {}
    critic = _name(config.get("critic")) or summary.get("critic")
    actor = _name(config.get("actor")) or summary.get("actor")
    data = config.get("data") or {}
    dataset = data.get("dataset") if isinstance(data, dict) else None
    dataset = dataset or summary.get("dataset")
    trainer = config.get("trainer") or {}
    seed = trainer.get("seed", summary.get("seed")) if isinstance(trainer, dict) else summary.get("seed")
    missing = [k for k, v in (("critic", critic), ("actor", actor), ("dataset", dataset), ("seed", seed)) if v is None]
    if missing:
        raise RunDirError(f"'{run_dir / CONFIG}' does not name the run's {', '.join(missing)}.")

    rows = read_jsonl(run_dir / EVAL_LOG)
    evals = pd.DataFrame(rows)
    if evals.empty or "step" not in evals:
        evals = pd.DataFrame({"step": pd.Series(dtype="int64")})
    evals = evals.drop_duplicates("step", keep="last").sort_values("step", kind="stable")
    out = pd.DataFrame(
        {
            "step": evals["step"].astype("int64"),
            "time_s": _column(evals, "time_s"),
            "return_mean": _column(evals, "return_mean"),
            "return_std": _column(evals, "return_std"),
            "score": _column(evals, "normalized_score_100"),
            "score_std": _column(evals, "normalized_score_100_std"),
            "episodes": _column(evals, "episodes"),
        }
    )
    meta = {
        "sweep": sweep,
        "run": run_dir.name,
        "run_dir": str(run_dir),
        "critic": str(critic),
        "actor": str(actor),
        "variant": variant,
        "pairing": pairing_label(str(critic), str(actor), variant),
        "dataset": str(dataset),
        "seed": int(seed),
        "status": "finished" if summary.get("status") == "finished" else "incomplete",
    }
    for key, value in meta.items():
        out[key] = value
    return out[list(COLUMNS)].reset_index(drop=True)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[name], errors="coerce").astype("float64")


def collect_runs(paths: Iterable[str | Path], skipped: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """All runs under ``paths`` as one DataFrame with :data:`COLUMNS` (one row per run × evaluation).

    Unusable run directories are left out and, if ``skipped`` is given,
    appended to it as ``(path, reason)``. Raises :class:`RunDirError` if a path
    does not exist or holds no run directory at all.
    """
    frames: list[pd.DataFrame] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise RunDirError(f"'{root}' does not exist (expected a sweep or run directory).")
        run_dirs = find_run_dirs(root)
        if not run_dirs:
            raise RunDirError(f"No run directories (folders with a config.json) found under '{root}'.")
        variants = sweep_variants(root)
        for run_dir in run_dirs:
            try:
                frame = load_run(run_dir, sweep=root.name, variant=variants.get(run_dir.name, ""))
            except RunDirError as e:
                if skipped is not None:
                    skipped.append((str(run_dir), str(e)))
                continue
            if frame.empty and skipped is not None:
                skipped.append((str(run_dir), "no evaluations yet"))
            frames.append(frame)
    if not frames:
        return empty_frame()
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty_frame()
    return pd.concat(frames, ignore_index=True)


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})


def write_table(df: pd.DataFrame, out_dir: Path, stem: str = "runs") -> list[Path]:
    """``<stem>.csv``, plus ``<stem>.parquet`` when pyarrow is importable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{stem}.csv"]
    df.to_csv(written[0], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    written.append(out_dir / f"{stem}.parquet")
    df.to_parquet(written[1], index=False)
    return written
