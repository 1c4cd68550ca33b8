"""Collect run directories into one DataFrame: one row per run × evaluation.

Input is anything ``offrl`` wrote: sweep directories (their ``runs/*``), a
folder of run directories, or single run directories. A run directory is any
folder with a ``config.json``; its identity (critic, actor, dataset, seed)
comes from that resolved config, so runs made by hand with ``offrl run`` and
runs made by a sweep are treated alike. Grid values of sweep cells come from
the sweep's ``sweep.json``.

Each dataset is scored by one *primary metric*, so a column of a table never
mixes two scales: the success rate (``success_rate_100``) when the runs'
evaluations report one (tasks judged by success, e.g. OGBench), else the
normalised score (``normalized_score_100``), else the raw return
(``return_mean``); see :data:`offrl.rundir.PRIMARY_METRICS`. The ``score``
column holds that metric and ``metric`` names it.

Robustness rules, because runs may have crashed, diverged or been resumed:

- a torn or malformed line of ``eval.jsonl`` (a crash mid-write) is skipped;
- a row whose ``step`` is not a whole number (or is non-finite, negative or
  beyond 2^53) is skipped, and the run is listed among the warned runs;
- a run found twice (the same directory given twice, or inside two folders
  given) is counted once, and said so;
- if an evaluation step appears more than once (a resume that did not
  truncate), the last occurrence wins, so each evaluation counts once;
- a run directory, or one of the files read from it, that leads outside the
  folder given (a symbolic link) is not read, and is listed;
- ``status`` is the run's state (:func:`offrl.rundir.run_state`): ``finished``,
  ``diverged`` (the trainer stopped it for good), ``failed`` (a sweep recorded
  an error) or ``incomplete`` (still running, interrupted, or not started).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from offrl.cli.terminal import plural
from offrl.errors import RunDirError
from offrl.report.configs import config_hash, differing_keys, split_label
from offrl.rundir import CONFIG, EVAL_LOG, PRIMARY_METRICS, SUMMARY, find_run_dirs, read_jsonl, run_state
from offrl.rundir import read_json as _read_json

#: Raw evaluation columns kept from ``eval.jsonl`` (each with its ``_std`` where the trainer logs one).
RAW_COLUMNS: tuple[str, ...] = (
    "return_mean", "return_std", "normalized_score_100", "normalized_score_100_std",
    "success_rate_100", "success_rate_100_std", "episodes", "ope_estimate",
)
#: The score of runs without any evaluation (no environment): their FQE estimate (``offrl ope``, ope_final.json).
OPE_METRIC = "ope_estimate"

#: What identifies a run (one row per run in :attr:`Collected.runs`).
RUN_COLUMNS: tuple[str, ...] = (
    "sweep", "run", "run_dir", "critic", "actor", "variant", "pairing", "dataset", "seed", "status", "online_from",
)
#: Columns of the collected evaluations, in order.
COLUMNS: tuple[str, ...] = (*RUN_COLUMNS, "step", "time_s", "metric", "score", "score_std", *RAW_COLUMNS)

#: ``status`` values (see the module docstring).
STATUSES: tuple[str, ...] = ("finished", "diverged", "failed", "incomplete")

Notes = list[tuple[str, str]]  # (run directory, what was left out or is worth a warning)


def sweep_variants(root: Path) -> dict[str, str]:
    """Cell key -> grid values text (``critic.tau=0.9``) from a sweep's ``sweep.json``."""
    data = _read_json(root / "sweep.json") or {}
    cells = data.get("cells")
    out = {}
    for cell in cells if isinstance(cells, list) else []:  # a damaged entry names no variant, it is not fatal
        overrides = cell.get("overrides") if isinstance(cell, dict) else None
        if isinstance(cell, dict) and isinstance(cell.get("key"), str) and isinstance(overrides or {}, dict):
            out[cell["key"]] = ",".join(f"{k}={v}" for k, v in (overrides or {}).items())
    return out


def pairing_label(critic: str, actor: str, variant: str = "") -> str:
    """How a method is named in tables and plots: ``expectile+edp`` or ``expectile+edp [critic.tau=0.9]``."""
    return f"{critic}+{actor}" + (f" [{variant}]" if variant else "")


def _name(section: Any) -> str | None:
    if isinstance(section, dict):
        return section.get("name")
    return section if isinstance(section, str) else None


def _status(run_dir: Path) -> str:
    state = run_state(run_dir)
    return state if state in STATUSES else "incomplete"


def run_identity(run_dir: Path, sweep: str = "", variant: str = "") -> dict[str, Any]:
    """A run's :data:`RUN_COLUMNS` from its ``config.json`` (and summary); raises if they cannot be read."""
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
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or not float(seed).is_integer():
        raise RunDirError(f"'{run_dir / CONFIG}' gives the seed as {seed!r}, not an integer.")
    seed = int(seed)
    online = config.get("online") if isinstance(config.get("online"), dict) else {}
    offline_steps = trainer.get("steps") if isinstance(trainer, dict) else None
    # the step where an online phase starts (its curves' boundary in the figures), None for offline runs
    online_from = (int(offline_steps) if isinstance(online.get("steps"), int) and online["steps"] > 0
                   and isinstance(offline_steps, int) else None)
    return {
        "sweep": sweep,
        "run": run_dir.name,
        "run_dir": str(run_dir),
        "critic": str(critic),
        "actor": str(actor),
        "variant": variant,
        "pairing": pairing_label(str(critic), str(actor), variant),
        "dataset": str(dataset),
        "seed": seed,
        "status": _status(run_dir),
        "online_from": online_from,
    }


def load_run(run_dir: Path, sweep: str = "", variant: str = "", notes: Notes | None = None,
             identity: dict[str, Any] | None = None) -> pd.DataFrame:
    """The evaluations of one run as rows (empty if it has none yet); raises if ``config.json`` is unusable.

    ``score`` and ``metric`` are left empty here: which metric scores a dataset depends on all its runs
    (:func:`assign_primary_scores`). Rows dropped for a bad step are reported in ``notes``.
    """
    meta = identity if identity is not None else run_identity(run_dir, sweep, variant)
    evals = pd.DataFrame(read_jsonl(run_dir / EVAL_LOG))
    if evals.empty or "step" not in evals:
        ope = _read_json(run_dir / "ope_final.json")  # no environment: rank by the off-policy estimate
        if ope and _is_plain_number(ope.get("estimate")) and _is_plain_number(ope.get("policy_step")):
            evals = pd.DataFrame([{"step": ope["policy_step"], OPE_METRIC: ope["estimate"]}])
        else:
            evals = pd.DataFrame({"step": pd.Series(dtype="float64")})
    steps = pd.to_numeric(evals["step"].where(evals["step"].map(_is_plain_number)), errors="coerce")
    bad = steps.isna() | ~np.isfinite(steps) | (steps != np.floor(steps)) | (steps < 0) | (steps > MAX_STEP)
    if bad.any() and notes is not None:
        examples = ", ".join(repr(v) for v in evals.loc[bad, "step"].head(3))
        notes.append((str(run_dir), f"skipped {plural(int(bad.sum()), 'row')} of {EVAL_LOG} whose step is not a "
                                    f"whole number in [0, 2^53] ({examples})"))
    evals = evals.loc[~bad].assign(step=steps[~bad].astype("int64"))
    evals = evals.drop_duplicates("step", keep="last").sort_values("step", kind="stable")
    out = pd.DataFrame({"step": evals["step"], "time_s": _column(evals, "time_s")})
    for name in RAW_COLUMNS:
        out[name] = _column(evals, name)
    for key, value in {**meta, "metric": "", "score": np.nan, "score_std": np.nan}.items():
        out[key] = value
    return out[list(COLUMNS)].reset_index(drop=True)


#: Largest step a log row may hold (2^53: beyond it a float no longer holds every integer).
MAX_STEP = 2**53


def _is_plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[name], errors="coerce").astype("float64")


def run_metric(frame: pd.DataFrame) -> str | None:
    """The primary metric of one run's rows: the first of PRIMARY_METRICS with a finite value."""
    for name in (*PRIMARY_METRICS, OPE_METRIC):
        if name in frame and np.isfinite(frame[name].to_numpy(float)).any():
            return name
    return None


def assign_primary_scores(df: pd.DataFrame, notes: Notes | None = None) -> pd.DataFrame:
    """Fill ``metric``, ``score`` and ``score_std``: each dataset's primary metric, chosen over all its runs.

    A run lacking its dataset's metric (an older run without ``success_rate_100`` beside newer ones
    with it) gets no score there, and is reported in ``notes``: one column is one scale.
    """
    df = df.copy()
    for dataset, rows in df.groupby("dataset", sort=True):
        per_run = {run: run_metric(g) for run, g in rows.groupby("run_dir", sort=True)}
        found = [m for m in (*PRIMARY_METRICS, OPE_METRIC) if m in per_run.values()]
        if not found:
            continue
        metric = found[0]
        df.loc[rows.index, "metric"] = metric
        df.loc[rows.index, "score"] = rows[metric]
        df.loc[rows.index, "score_std"] = (np.nan if metric == OPE_METRIC else rows[f"{metric}_std"]
                                           if metric != "return_mean" else rows["return_std"])
        if notes is not None:
            for run, own in per_run.items():
                if own is not None and own != metric:
                    notes.append((run, f"has no {metric} in {EVAL_LOG} while other runs of {dataset} do; "
                                       "left out of that dataset's scores"))
    return df


@dataclass
class Collected:
    """Everything read from the run directories."""

    evals: pd.DataFrame  # :data:`COLUMNS`, one row per run × evaluation
    runs: pd.DataFrame  # :data:`RUN_COLUMNS`, one row per usable run, evaluated or not (a run may diverge first)
    notes: Notes = field(default_factory=list)  # runs left out, and runs with warnings


def collect(paths: Iterable[str | Path]) -> Collected:
    """Read every run directory under ``paths``. Raises :class:`RunDirError` if a path does not exist or holds
    no run directory at all; unusable run directories are left out and listed in ``notes``."""
    notes: Notes = []
    frames: list[pd.DataFrame] = []
    identities: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []  # each identity's config.json, to tell runs that may be pooled
    seen: dict[Path, str] = {}  # resolved run directory -> how it was first found
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise RunDirError(f"'{root}' does not exist (expected a sweep or run directory).")
        if not root.is_dir():
            raise RunDirError(f"'{root}' is a file; give a sweep directory or a run directory.")
        run_dirs = find_run_dirs(root)
        if not run_dirs:
            raise RunDirError(f"No run directories (folders with a config.json) found under '{root}'.")
        variants = sweep_variants(root)
        for run_dir in run_dirs:
            outside = _leads_outside(run_dir, root)
            if outside:
                notes.append((str(run_dir), outside))
                continue
            if run_dir.resolve() in seen:
                notes.append((str(run_dir), f"the same run as {seen[run_dir.resolve()]}, given twice; counted once"))
                continue
            seen[run_dir.resolve()] = str(run_dir)
            try:
                identity = run_identity(run_dir, sweep=root.name, variant=variants.get(run_dir.name, ""))
            except RunDirError as e:
                notes.append((str(run_dir), str(e)))
                continue
            identities.append(identity)
            configs.append(_read_json(run_dir / CONFIG) or {})
    split_differing_configs(identities, configs, notes)
    for identity in identities:
        run_dir = Path(identity["run_dir"])
        frame = load_run(run_dir, notes=notes, identity=identity)
        if frame.empty:
            ended = "diverged before its first evaluation" if identity["status"] == "diverged" else ""
            notes.append((str(run_dir), ended or "no evaluations yet"))
        else:
            frames.append(frame)
    runs = pd.DataFrame(identities, columns=list(RUN_COLUMNS))
    evals = assign_primary_scores(pd.concat(frames, ignore_index=True), notes) if frames else empty_frame()
    return Collected(evals, runs, notes)


def split_differing_configs(identities: list[dict[str, Any]], configs: list[dict[str, Any]], notes: Notes) -> None:
    """Give runs of one row (pairing × dataset) whose configurations differ (:mod:`offrl.report.configs`)
    their own rows, labelled by the differing keys, and say so in ``notes``: seeds are pooled only when the
    runs computed the same thing but for the seed."""
    rows: dict[tuple[str, str], list[int]] = {}
    for i, identity in enumerate(identities):
        identity["config_hash"] = config_hash(configs[i])
        rows.setdefault((identity["pairing"], identity["dataset"]), []).append(i)
    for (pairing, dataset), members in rows.items():
        if len({identities[i]["config_hash"] for i in members}) < 2:
            continue
        keys = differing_keys(configs[i] for i in members)
        for i in members:
            identity = identities[i]
            label = split_label(configs[i], keys)
            identity["variant"] = ",".join(v for v in (identity["variant"], label) if v)
            identity["pairing"] = pairing_label(identity["critic"], identity["actor"], identity["variant"])
        notes.append((f"{pairing} on {dataset}",
                      f"{plural(len(members), 'run')} with different configurations (differing in "
                      f"{', '.join(keys[:6])}{', …' if len(keys) > 6 else ''}); not pooled: shown as separate rows"))


def _leads_outside(run_dir: Path, root: Path) -> str | None:
    """Why ``run_dir`` is not read: it, or a file of it, is a link leading outside ``root`` (``None``: read it)."""
    if not run_dir.resolve().is_relative_to(root.resolve()):
        return f"leads outside {root} (to {run_dir.resolve()}); not read"
    for name in (CONFIG, EVAL_LOG, SUMMARY):
        if (run_dir / name).is_symlink():
            return f"its {name} is a symbolic link (offrl does not follow links among a run's files); not read"
    return None


def collect_runs(paths: Iterable[str | Path], skipped: Notes | None = None) -> pd.DataFrame:
    """All evaluations under ``paths`` as one DataFrame with :data:`COLUMNS` (see :func:`collect`);
    the notes (runs left out or warned about) are appended to ``skipped`` when it is given."""
    collected = collect(paths)
    if skipped is not None:
        skipped.extend(collected.notes)
    return collected.evals


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
