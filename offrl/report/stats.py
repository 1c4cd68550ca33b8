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
  over tasks.

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

Samples = Sequence[np.ndarray]  # one 1-D array of run scores per task

DEFAULT_REPS = 10_000
DEFAULT_CONFIDENCE = 0.95
IQM_TRIM = 0.25


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

    Returns NaNs when some task has fewer than two runs (a single run cannot be
    resampled); a degenerate (constant) sample gives a zero-width interval.
    """
    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(len(s) < 2 for s in data):
        nan = np.full(np.shape(statistic(*data)), np.nan)
        return nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=reps,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            paired=False,
            rng=np.random.default_rng(seed),
        )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


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


def run_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its final (last evaluation) and best score and return.

    ``final`` is the score of the last evaluation (what the policy at the end
    of training achieves); ``best`` is the maximum over evaluations, which is
    optimistic (it selects on the test metric) and reported, as CORL does,
    only beside ``final``.
    """
    keys = ["run_dir", "sweep", "run", "critic", "actor", "variant", "pairing", "dataset", "seed", "status"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "final", "best", "best_step", "final_return", "best_return", "last_step"])
    ordered = df.sort_values(["run_dir", "step"], kind="stable")
    groups = ordered.groupby("run_dir", sort=True)
    last = groups.tail(1).set_index("run_dir")
    best_idx = ordered["score"].where(ordered["score"].notna(), -np.inf).groupby(ordered["run_dir"]).idxmax()
    out = last[[k for k in keys if k != "run_dir"]].copy()
    out["final"] = last["score"]
    out["best"] = groups["score"].max()
    out["best_step"] = ordered.loc[best_idx.values, ["run_dir", "step"]].set_index("run_dir")["step"]
    out["final_return"] = last["return_mean"]
    out["best_return"] = groups["return_mean"].max()
    out["last_step"] = last["step"]
    return out.reset_index()


def per_dataset(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (pairing, dataset): final and best score, mean ± std over seeds (sample std, ddof=1).

    A dataset without reference scores (no normalised score) falls back to raw
    returns, marked in the ``metric`` column, so it is never mixed into the
    0–100 aggregates.
    """
    rows = []
    for (pairing, dataset), g in runs.groupby(["pairing", "dataset"], sort=True):
        metric = "score" if g["final"].notna().any() else "return"
        final = g["final"] if metric == "score" else g["final_return"]
        best = g["best"] if metric == "score" else g["best_return"]
        rows.append(
            {
                "pairing": pairing,
                "critic": g["critic"].iloc[0],
                "actor": g["actor"].iloc[0],
                "variant": g["variant"].iloc[0],
                "dataset": dataset,
                "metric": metric,
                "seeds": int(final.notna().sum()),
                "final_mean": final.mean(),
                "final_std": final.std(ddof=1),
                "best_mean": best.mean(),
                "best_std": best.std(ddof=1),
            }
        )
    return pd.DataFrame(rows)


def task_samples(runs: pd.DataFrame, pairing: str, tasks: Sequence[str], column: str = "final") -> list[np.ndarray]:
    """The pairing's run scores, one array per task (dataset), NaNs dropped."""
    mine = runs[runs["pairing"] == pairing]
    return [mine.loc[mine["dataset"] == t, column].dropna().to_numpy(float) for t in tasks]


def scored_tasks(runs: pd.DataFrame, pairing: str | None = None) -> list[str]:
    """Datasets that have normalised scores (optionally: for this pairing)."""
    sub = runs if pairing is None else runs[runs["pairing"] == pairing]
    return sorted(sub.loc[sub["final"].notna(), "dataset"].unique())


def aggregate(
    runs: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """Per pairing across datasets: IQM of the final scores with its stratified-bootstrap interval."""
    rows = []
    for pairing in sorted(runs["pairing"].unique()):
        tasks = scored_tasks(runs, pairing)
        samples = [s for s in task_samples(runs, pairing, tasks) if len(s)]
        if not samples:
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
            }
        )
    out = pd.DataFrame(rows, columns=["pairing", "iqm", "iqm_low", "iqm_high", "mean", "median", "runs", "tasks"])
    return out.sort_values("iqm", ascending=False, kind="stable").reset_index(drop=True)


def improvement_table(
    runs: pd.DataFrame, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """P(X > Y) with its interval for every ordered pair of pairings, over the tasks both have."""
    pairings = sorted(runs["pairing"].unique())
    rows = []
    for x in pairings:
        for y in pairings:
            if x == y:
                continue
            tasks = sorted(set(scored_tasks(runs, x)) & set(scored_tasks(runs, y)))
            if not tasks:
                continue
            xs, ys = task_samples(runs, x, tasks), task_samples(runs, y, tasks)
            lo, hi = poi_interval(xs, ys, reps, seed, confidence)
            rows.append(
                {"x": x, "y": y, "poi": probability_of_improvement(xs, ys), "poi_low": lo, "poi_high": hi,
                 "tasks": len(tasks)}
            )
    return pd.DataFrame(rows, columns=["x", "y", "poi", "poi_low", "poi_high", "tasks"])


def profiles(
    runs: pd.DataFrame, taus: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Performance profile of each pairing at each τ, with its interval (long format)."""
    frames = []
    for pairing in sorted(runs["pairing"].unique()):
        tasks = scored_tasks(runs, pairing)
        samples = [s for s in task_samples(runs, pairing, tasks) if len(s)]
        if not samples:
            continue
        lo, hi = profile_interval(samples, taus, reps, seed, confidence)
        frames.append(
            pd.DataFrame({"pairing": pairing, "tau": taus, "fraction": performance_profile(samples, taus),
                          "low": lo, "high": hi})
        )
    if not frames:
        return pd.DataFrame(columns=["pairing", "tau", "fraction", "low", "high"])
    return pd.concat(frames, ignore_index=True)


def learning_curves(df: pd.DataFrame, confidence: float = DEFAULT_CONFIDENCE) -> pd.DataFrame:
    """Mean score over seeds at each evaluation step, with a Student-t interval of the mean.

    Per step there are only a handful of seeds, so the t interval (exact for
    normal noise, cheap for hundreds of points) is used rather than a bootstrap.
    Datasets without normalised scores use raw returns (``metric`` column).
    """
    rows = []
    for (pairing, dataset), g in df.groupby(["pairing", "dataset"], sort=True):
        column = "score" if g["score"].notna().any() else "return_mean"
        for step, s in g.groupby("step", sort=True):
            values = s[column].dropna().to_numpy(float)
            if not len(values):
                continue
            mean = float(values.mean())
            if len(values) > 1:
                half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values))
            else:
                half = np.nan
            rows.append(
                {"pairing": pairing, "dataset": dataset, "metric": "score" if column == "score" else "return",
                 "step": int(step), "mean": mean, "low": mean - half, "high": mean + half, "seeds": len(values)}
            )
    return pd.DataFrame(rows, columns=["pairing", "dataset", "metric", "step", "mean", "low", "high", "seeds"])
