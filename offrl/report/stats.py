"""The statistics of a report, with rliable's definitions computed by scipy.

Definitions (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice", as implemented by rliable):

- a *task* is a dataset; a method's scores form one sample per task (its runs,
  i.e. seeds), on the 0–100 normalised scale;
- **IQM** = the 25 %-trimmed mean of all runs × tasks pooled
  (``scipy.stats.trim_mean(x, 0.25)``);
- **stratified bootstrap**: runs are resampled *within* each task, tasks are
  never resampled. ``scipy.stats.bootstrap`` given one sample per task with
  ``paired=False`` resamples each sample independently, which is exactly
  that; ``method='percentile'`` gives rliable's default interval (scipy's own
  default is BCa);
- **probability of improvement** P(X > Y) = the mean over tasks of
  P(X_t > Y_t) + ½ P(X_t = Y_t) over all pairs of runs (the Mann–Whitney U
  statistic divided by n·m); its interval resamples X's and Y's runs
  independently within each task;
- **performance profile** τ ↦ the fraction of runs scoring above τ, averaged
  over tasks;
- **learning curves**: the mean over runs at each evaluation step, with the
  same bootstrap over runs (whole curves resampled together; for one task it
  *is* the stratified bootstrap). Its percentile interval never leaves the
  range of the runs' values, where a Student-t interval at 2 runs spans
  ±12.7 standard errors (−142…285 on a 0–100 scale was seen). Intervals
  resting on fewer than :data:`FEW_RUNS` runs are flagged (``few_runs``).

Which runs count: finished runs (and, when asked, unfinished ones). Diverged
runs never enter a mean: they are counted, per pairing and dataset, in a
``diverged`` column. Only datasets scored on the 0–100 scale (success rate or
normalised score, :data:`offrl.rundir.SCALED_METRICS`) enter the aggregates.

Why not rliable itself: rliable 1.2 imports only with ``arch < 8`` and arch
7.x fails to import under pandas 3, so it cannot be installed beside offrl's
pandas; scipy is maintained, already a dependency, and gives the same
estimators. The bootstrap is seeded (``seed``), so a report is reproducible.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from offrl.rundir import SCALED_METRICS

Samples = Sequence[np.ndarray]  # one 1-D array of run scores per task

DEFAULT_REPS = 10_000
DEFAULT_CONFIDENCE = 0.95
IQM_TRIM = 0.25
#: Intervals resting on fewer runs than this (in some task) are flagged ``few_runs``: a bootstrap of 1–2
#: values says little about the spread of a method.
FEW_RUNS = 3
#: Most array elements one vectorised bootstrap batch may hold (bounds memory for long learning curves).
BATCH_ELEMENTS = 4_000_000


# ---------------------------------------------------------------- point estimates


def iqm(samples: Samples) -> float:
    """Interquartile mean of all runs × tasks pooled (rliable's ``aggregate_iqm``)."""
    return float(_iqm(*[np.asarray(s, dtype=float) for s in samples]))


def _iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(np.concatenate(samples, axis=axis), IQM_TRIM, axis=axis)


def probability_of_improvement(x: Samples, y: Samples) -> float:
    """P(X > Y) with ties counted ½, averaged over tasks (rliable's ``probability_of_improvement``)."""
    return float(_poi(*[np.asarray(s, float) for s in x], *[np.asarray(s, float) for s in y]))


def performance_profile(samples: Samples, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with score > τ for each τ, averaged over tasks (rliable's run-score profile)."""
    return np.moveaxis(_profile(np.asarray(taus, float))(*[np.asarray(s, float) for s in samples]), 0, -1)


def _poi(*xy: np.ndarray, axis: int = -1) -> np.ndarray:
    half = len(xy) // 2
    per_task = []
    for x, y in zip(xy[:half], xy[half:]):
        greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-1, -2))
        ties = (x[..., :, None] == y[..., None, :]).mean(axis=(-1, -2))
        per_task.append(greater + 0.5 * ties)
    return np.mean(per_task, axis=0)


def _profile(taus: np.ndarray) -> Callable[..., np.ndarray]:
    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        per_task = [(s[..., None, :] > taus[:, None]).mean(axis=-1) for s in samples]  # [..., T]
        return np.moveaxis(np.mean(per_task, axis=0), -1, 0)  # [T, ...]: scipy wants outputs first

    return statistic


# ---------------------------------------------------------------- intervals


def bootstrap_interval(
    samples: Samples,
    statistic: Callable[..., np.ndarray],
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic`` under the stratified bootstrap (each sample resampled alone).

    A sample's runs lie along its last axis; leading axes (e.g. evaluation steps) are resampled
    together, so whole learning curves are drawn. Returns NaNs when some task has fewer than two
    runs (a single run cannot be resampled); a degenerate (constant) sample gives a zero-width interval.
    """
    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(s.shape[-1] < 2 for s in data):
        nan = np.full(np.shape(statistic(*data)), np.nan)
        return nan, nan
    batch = max(1, min(reps, BATCH_ELEMENTS // max(1, sum(s.size for s in data))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=reps,
            batch=batch,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            paired=False,
            axis=-1,
            rng=np.random.default_rng(seed),
        )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def iqm_interval(
    samples: Samples, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """95 % (by default) stratified-bootstrap percentile interval of the IQM."""
    lo, hi = bootstrap_interval(samples, _iqm, reps, seed, confidence)
    return float(lo), float(hi)


def poi_interval(
    x: Samples, y: Samples, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Interval of P(X > Y): X's and Y's runs resampled independently within each task."""
    if len(x) != len(y):
        raise ValueError("x and y need the same tasks")
    lo, hi = bootstrap_interval([*x, *y], _poi, reps, seed, confidence)
    return float(lo), float(hi)


def profile_interval(
    samples: Samples, taus: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    return bootstrap_interval(samples, _profile(np.asarray(taus, float)), reps, seed, confidence)


# ---------------------------------------------------------------- tables from the collected runs

RUN_KEYS = ["run_dir", "sweep", "run", "critic", "actor", "variant", "pairing", "dataset", "seed", "status",
            "online_from"]


def run_scores(df: pd.DataFrame, identities: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: its final (last evaluation) and best primary score, and return.

    ``final`` is the primary score (see :mod:`offrl.report.collect`) of the last evaluation (what
    the policy at the end of training achieves); ``best`` is the maximum over evaluations, which is
    optimistic (it selects on the test metric) and reported, as CORL does, only beside ``final``.
    ``identities`` (one row per run, evaluated or not) adds runs that have no evaluation, e.g. a
    run that diverged before its first one, with empty scores.
    """
    columns = [*RUN_KEYS, "metric", "final", "best", "best_step", "final_return", "best_return", "last_step",
               "evaluations"]
    if df.empty:
        out = pd.DataFrame(columns=columns)
    else:
        ordered = df.sort_values(["run_dir", "step"], kind="stable")
        groups = ordered.groupby("run_dir", sort=True)
        last = groups.tail(1).set_index("run_dir")
        best_idx = ordered["score"].where(ordered["score"].notna(), -np.inf).groupby(ordered["run_dir"]).idxmax()
        out = last[[k for k in RUN_KEYS if k != "run_dir"] + ["metric"]].copy()
        out["final"] = last["score"]
        out["best"] = groups["score"].max()
        out["best_step"] = ordered.loc[best_idx.values, ["run_dir", "step"]].set_index("run_dir")["step"]
        out["final_return"] = last["return_mean"]
        out["best_return"] = groups["return_mean"].max()
        out["last_step"] = last["step"]
        out["evaluations"] = groups.size()
        out = out.reset_index()
    if identities is not None and len(identities):
        unseen = identities[~identities["run_dir"].isin(out["run_dir"])]
        if len(unseen):
            extra = unseen[RUN_KEYS].assign(metric=lambda f: f["dataset"].map(dataset_metrics(out)).fillna(""),
                                            evaluations=0)
            out = pd.concat([out, extra], ignore_index=True) if len(out) else extra.reindex(columns=columns)
    return out[columns].sort_values("run_dir", kind="stable").reset_index(drop=True)


def dataset_metrics(runs: pd.DataFrame) -> dict[str, str]:
    """Dataset -> its primary metric (as chosen when collecting)."""
    if runs.empty:
        return {}
    known = runs[runs["metric"].astype(str) != ""]
    return dict(zip(known["dataset"], known["metric"]))


def counted(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose scores enter means and intervals (``counted`` column; all runs without one),
    never diverged ones."""
    mask = runs["counted"] if "counted" in runs else pd.Series(True, index=runs.index)
    return runs[mask.astype(bool) & (runs["status"] != "diverged")]


def diverged_counts(runs: pd.DataFrame, by: list[str]) -> pd.Series:
    """Number of diverged runs per group of ``by``."""
    return runs[runs["status"] == "diverged"].groupby(by).size()


def per_dataset(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (pairing, dataset): final and best primary score, mean ± std over the counted runs (ddof=1),
    and how many runs diverged.

    ``metric`` is the dataset's primary metric; a dataset without reference scores is in raw
    return, so it is never mixed into the 0–100 aggregates. A pairing whose runs all diverged has
    a row with ``seeds`` = 0 and its ``diverged`` count.
    """
    metrics = dataset_metrics(runs)
    diverged = diverged_counts(runs, ["pairing", "dataset"])
    used = counted(runs)
    rows = []
    for (pairing, dataset), g in runs.groupby(["pairing", "dataset"], sort=True):
        mine = used[(used["pairing"] == pairing) & (used["dataset"] == dataset)]
        final, best = mine["final"].dropna(), mine["best"].dropna()
        rows.append(
            {
                "pairing": pairing,
                "critic": g["critic"].iloc[0],
                "actor": g["actor"].iloc[0],
                "variant": g["variant"].iloc[0],
                "dataset": dataset,
                "metric": metrics.get(dataset, ""),
                "seeds": int(len(final)),
                "diverged": int(diverged.get((pairing, dataset), 0)),
                "final_mean": final.mean() if len(final) else np.nan,
                "final_std": final.std(ddof=1) if len(final) > 1 else np.nan,
                "best_mean": best.mean() if len(best) else np.nan,
                "best_std": best.std(ddof=1) if len(best) > 1 else np.nan,
            }
        )
    columns = ["pairing", "critic", "actor", "variant", "dataset", "metric", "seeds", "diverged", "final_mean",
               "final_std", "best_mean", "best_std"]
    return pd.DataFrame(rows, columns=columns)


def task_samples(runs: pd.DataFrame, pairing: str, tasks: Sequence[str], column: str = "final") -> list[np.ndarray]:
    """The pairing's run scores, one array per task (dataset), NaNs dropped."""
    mine = runs[runs["pairing"] == pairing]
    return [mine.loc[mine["dataset"] == t, column].dropna().to_numpy(float) for t in tasks]


def scored_tasks(runs: pd.DataFrame, pairing: str | None = None) -> list[str]:
    """Datasets scored on the 0–100 scale that have scores (optionally: for this pairing)."""
    sub = runs if pairing is None else runs[runs["pairing"] == pairing]
    sub = sub[sub["metric"].isin(SCALED_METRICS) & sub["final"].notna()]
    return sorted(sub["dataset"].unique())


def aggregate(
    runs: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """Per pairing across the 0–100 datasets: IQM of the counted final scores with its stratified-bootstrap
    interval, and the number of diverged runs. ``few_runs`` flags an interval resting on fewer than
    :data:`FEW_RUNS` runs in some task."""
    used = counted(runs)
    diverged = diverged_counts(runs, ["pairing"])
    rows = []
    for pairing in sorted(runs["pairing"].unique()):
        tasks = scored_tasks(used, pairing)
        samples = [s for s in task_samples(used, pairing, tasks) if len(s)]
        n_diverged = int(diverged.get(pairing, 0))
        if not samples:
            if n_diverged:  # every run diverged: shown as such, not as a pairing without runs
                rows.append({"pairing": pairing, "iqm": np.nan, "iqm_low": np.nan, "iqm_high": np.nan,
                             "mean": np.nan, "median": np.nan, "runs": 0, "tasks": 0, "few_runs": True,
                             "diverged": n_diverged})
            continue
        lo, hi = iqm_interval(samples, reps, seed, confidence)
        pooled = np.concatenate(samples)
        rows.append(
            {
                "pairing": pairing,
                "iqm": float(iqm(samples)),
                "iqm_low": lo,
                "iqm_high": hi,
                "mean": float(pooled.mean()),
                "median": float(np.median(pooled)),
                "runs": int(len(pooled)),
                "tasks": len(samples),
                "few_runs": min(len(s) for s in samples) < FEW_RUNS,
                "diverged": n_diverged,
            }
        )
    columns = ["pairing", "iqm", "iqm_low", "iqm_high", "mean", "median", "runs", "tasks", "few_runs", "diverged"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("iqm", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def improvement_table(
    runs: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """P(X > Y) with its interval for every ordered pair of pairings, over the 0–100 tasks both have."""
    used = counted(runs)
    pairings = sorted(used["pairing"].unique())
    rows = []
    for x in pairings:
        for y in pairings:
            if x == y:
                continue
            tasks = sorted(set(scored_tasks(used, x)) & set(scored_tasks(used, y)))
            if not tasks:
                continue
            xs, ys = task_samples(used, x, tasks), task_samples(used, y, tasks)
            lo, hi = poi_interval(xs, ys, reps, seed, confidence)
            rows.append(
                {"x": x, "y": y, "poi": probability_of_improvement(xs, ys), "poi_low": lo, "poi_high": hi,
                 "tasks": len(tasks)}
            )
    return pd.DataFrame(rows, columns=["x", "y", "poi", "poi_low", "poi_high", "tasks"])


def profile_taus(runs: pd.DataFrame, points: int = 101) -> np.ndarray:
    """Thresholds spanning 0–100 and every counted final score on the 0–100 datasets."""
    used = counted(runs)
    finals = used.loc[used["metric"].isin(SCALED_METRICS), "final"].dropna()
    top = max(100.0, float(finals.max())) if len(finals) else 100.0
    bottom = min(0.0, float(finals.min())) if len(finals) else 0.0
    return np.linspace(bottom, top, points)


def profiles(
    runs: pd.DataFrame, taus: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Performance profile of each pairing at each τ, with its interval (long format; see docs/benchmarks.md)."""
    used = counted(runs)
    frames = []
    for pairing in sorted(used["pairing"].unique()):
        tasks = scored_tasks(used, pairing)
        samples = [s for s in task_samples(used, pairing, tasks) if len(s)]
        if not samples:
            continue
        lo, hi = profile_interval(samples, taus, reps, seed, confidence)
        frames.append(
            pd.DataFrame({"pairing": pairing, "tau": taus, "fraction": performance_profile(samples, taus),
                          "low": lo, "high": hi, "runs": sum(len(s) for s in samples), "tasks": len(samples),
                          "few_runs": min(len(s) for s in samples) < FEW_RUNS})
        )
    if not frames:
        return pd.DataFrame(columns=["pairing", "tau", "fraction", "low", "high", "runs", "tasks", "few_runs"])
    return pd.concat(frames, ignore_index=True)


def learning_curves(
    df: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """Mean primary score over runs at each evaluation step, with a bootstrap interval over runs.

    Per (pairing, dataset) the runs' curves are resampled whole (the runs present at a step; runs
    that stopped early simply have fewer points). ``few_runs`` flags points resting on fewer than
    :data:`FEW_RUNS` runs; a single run has no interval.
    """
    rows = []
    for (pairing, dataset), g in df.dropna(subset=["score"]).groupby(["pairing", "dataset"], sort=True):
        wide = g.pivot(index="run_dir", columns="step", values="score")  # runs × steps
        by_runs: dict[tuple[bool, ...], list[int]] = {}
        for step in wide.columns:
            by_runs.setdefault(tuple(wide[step].notna()), []).append(step)
        for present, steps in by_runs.items():
            values = wide.loc[list(present), steps].to_numpy(float).T  # steps × runs
            lo, hi = bootstrap_interval([values], _mean, reps, seed, confidence)
            n = values.shape[1]
            for i, step in enumerate(steps):
                rows.append({"pairing": pairing, "dataset": dataset, "metric": g["metric"].iloc[0], "step": int(step),
                             "mean": float(values[i].mean()), "low": float(lo[i]), "high": float(hi[i]), "runs": n,
                             "few_runs": n < FEW_RUNS})
    columns = ["pairing", "dataset", "metric", "step", "mean", "low", "high", "runs", "few_runs"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["pairing", "dataset", "step"], kind="stable").reset_index(drop=True)
