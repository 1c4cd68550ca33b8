"""The bottleneck study in a report: data-scaling matrices, their gradients, the three-set MSE, OPEX and TTT.

Read from each counted run: its ``config.json`` (``data.value_fraction``,
``data.policy_fraction``), ``summary.json`` (the transitions each component
learned from) and the last row of ``eval.jsonl`` (the final score, ``diag/*``,
``opex/*``, ``ttt/*``; docs/bottleneck.md). Written when the runs hold any of
it:

- ``bottleneck_cells.csv`` + ``bottleneck_matrices.*``: per critic × actor ×
  dataset, a heatmap of the mean final score over (N_v, N_π) — value data on
  the vertical axis, policy data on the horizontal one, each cell annotated
  with its mean and number of runs (Park et al. 2024's layout);
- ``bottleneck_gradients.csv``: per matrix, the least-squares plane
  score ≈ c + g_v·log₂ N_v + g_π·log₂ N_π fitted to the cells (g in points
  per doubling of the data), with stratified-bootstrap intervals (runs
  resampled within each cell), and the verdict: **value-bound** when the
  score moves mostly along N_v (|g_v| ≥ 2|g_π|), **policy-bound** when mostly
  along N_π, **both** in between, **flat** when neither slope's interval
  excludes 0. The arrow on each heatmap is (g_π, g_v);
- ``bottleneck_mse.csv`` + ``bottleneck_mse.*``: the policy's action MSE on
  training, held-out and visited states, mean with its bootstrap interval, at
  each matrix's full-data cell (the largest N_v and N_π);
- ``bottleneck_testtime.csv`` + ``bottleneck_testtime.*``: OPEX and TTT minus
  the plain score of the same run (a paired difference), mean with its
  bootstrap interval, at the same cell.

Nothing here needs torch; figures need matplotlib (the ``plot`` extra).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offrl.report import stats
from offrl.rundir import CONFIG, EVAL_LOG, METRIC_LABELS, SUMMARY, read_json, read_jsonl

MATRIX = ["critic", "actor", "dataset", "variant"]  # variant: the grid values other than the two fractions
FRACTION_KEYS = ("data.value_fraction", "data.policy_fraction")
CELL = [*MATRIX, "value_fraction", "policy_fraction"]
MSE_SETS = ("train", "validation", "visited")
PASSES = ("opex", "ttt")
#: A matrix is value-bound when |g_v| ≥ DOMINANCE·|g_π| (policy-bound the other way round), else both.
DOMINANCE = 2.0


def _number(value: Any, default: float = math.nan) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


def study_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per counted run with its cell (fractions, transitions), final score and probe values."""
    rows = []
    for _, r in stats.counted(runs).iterrows():
        run_dir = Path(r["run_dir"])
        data = (read_json(run_dir / CONFIG) or {}).get("data") or {}
        summary = read_json(run_dir / SUMMARY) or {}
        evals = [e for e in read_jsonl(run_dir / EVAL_LOG) if e.get("step") == r["last_step"]]
        last = evals[-1] if evals else {}
        metric = str(r["metric"])
        row = {k: r[k] for k in ("run_dir", "critic", "actor", "dataset", "seed", "metric")}
        row["variant"] = ",".join(item for item in str(r.get("variant") or "").split(",")
                                  if item and item.split("=", 1)[0] not in FRACTION_KEYS)
        row.update(value_fraction=_number(data.get("value_fraction"), 1.0),
                   policy_fraction=_number(data.get("policy_fraction"), 1.0),
                   value_transitions=_number(summary.get("value_transitions")),
                   policy_transitions=_number(summary.get("policy_transitions")),
                   score=_number(r["final"]))
        for name in MSE_SETS:
            row[f"mse_{name}"] = _number(last.get(f"diag/mse_{name}"))
        for name in ("value_bias", "value_rmse"):
            row[name] = _number(last.get(f"diag/{name}"))
        for p in PASSES:
            row[f"{p}_score"] = _number(last.get(f"{p}/{metric}"))
            row[f"{p}_delta"] = row[f"{p}_score"] - row["score"]
            row[f"{p}_seconds"] = _number(last.get(f"{p}/seconds"))
        rows.append(row)
    columns = ["run_dir", "critic", "actor", "dataset", "variant", "seed", "metric", "value_fraction",
               "policy_fraction",
               "value_transitions", "policy_transitions", "score", *[f"mse_{n}" for n in MSE_SETS], "value_bias",
               "value_rmse", *[f"{p}_{k}" for p in PASSES for k in ("score", "delta", "seconds")]]
    return pd.DataFrame(rows, columns=columns)


def mean_interval(values: np.ndarray, reps: int, seed: int, confidence: float) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values and its percentile bootstrap interval (NaN below 2)."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return math.nan, math.nan, math.nan
    lo, hi = stats.bootstrap_interval([x], stats._mean, reps, seed, confidence)
    return float(x.mean()), float(lo), float(hi)


def cells(study: pd.DataFrame, reps: int, seed: int, confidence: float) -> pd.DataFrame:
    """Per matrix cell: the mean final score over runs, its interval, the transitions behind it."""
    out = []
    for key, g in study.groupby(CELL, sort=True):
        mean, lo, hi = mean_interval(g["score"].to_numpy(), reps, seed, confidence)
        out.append({**dict(zip(CELL, key)), "metric": g["metric"].iloc[0], "runs": len(g), "mean": mean,
                    "std": float(g["score"].std(ddof=1)) if len(g) > 1 else math.nan, "low": lo, "high": hi,
                    "value_transitions": float(g["value_transitions"].mean()),
                    "policy_transitions": float(g["policy_transitions"].mean())})
    return pd.DataFrame(out, columns=[*CELL, "metric", "runs", "mean", "std", "low", "high", "value_transitions",
                                      "policy_transitions"])


def plane_slopes(x_v: np.ndarray, x_p: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(g_v, g_π) of the least-squares plane c + g_v·x_v + g_π·x_p through cell means [..., C]."""
    design = np.stack([np.ones_like(x_v), x_v, x_p], 1)
    pinv = np.linalg.pinv(design)  # [3, C]
    return np.asarray(means) @ pinv[1:].T


def verdict(g_v: tuple[float, float, float], g_p: tuple[float, float, float]) -> str:
    """What the matrix's gradient says (see the module docstring); each g is (estimate, low, high)."""
    def clear(g: tuple[float, float, float]) -> bool:
        return not (math.isnan(g[1]) or g[1] <= 0 <= g[2])

    if any(math.isnan(g[0]) for g in (g_v, g_p)):
        return "not enough cells"
    no_interval = math.isnan(g_v[1]) or math.isnan(g_p[1])
    if not no_interval and not clear(g_v) and not clear(g_p):
        return "flat"
    a, b = abs(g_v[0]), abs(g_p[0])
    found = ("flat" if a == b == 0 else "value-bound" if a >= DOMINANCE * b else
             "policy-bound" if b >= DOMINANCE * a else "both")
    return found + (" (point estimate: a cell has a single run)" if no_interval else "")


def gradients(study: pd.DataFrame, reps: int, seed: int, confidence: float) -> pd.DataFrame:
    """Per matrix: the plane's slopes with stratified-bootstrap intervals, and the verdict."""
    out = []
    alpha = (1 - confidence) / 2
    for key, g in study.groupby(MATRIX, sort=True):
        groups = [c["score"].to_numpy(float) for _, c in g.groupby(["value_fraction", "policy_fraction"], sort=True)]
        keys = sorted(g.groupby(["value_fraction", "policy_fraction"]).groups)
        x_v = np.log2([k[0] for k in keys])
        x_p = np.log2([k[1] for k in keys])
        row: dict[str, Any] = dict(zip(MATRIX, key))
        row["cells"] = len(keys)
        enough = len(set(x_v)) > 1 and len(set(x_p)) > 1
        if enough:
            means = np.array([s.mean() for s in groups])
            est = plane_slopes(x_v, x_p, means)
            rng = np.random.default_rng(seed)
            boot = np.stack([s[rng.integers(0, len(s), (reps, len(s)))].mean(1) for s in groups], 1)  # [reps, C]
            slopes = plane_slopes(x_v, x_p, boot)
            lo, hi = np.quantile(slopes, alpha, axis=0), np.quantile(slopes, 1 - alpha, axis=0)
            single = any(len(s) < 2 for s in groups)
            g_v = (float(est[0]), *((math.nan, math.nan) if single else (float(lo[0]), float(hi[0]))))
            g_p = (float(est[1]), *((math.nan, math.nan) if single else (float(lo[1]), float(hi[1]))))
        else:
            g_v = g_p = (math.nan, math.nan, math.nan)
        row.update(g_value=g_v[0], g_value_low=g_v[1], g_value_high=g_v[2],
                   g_policy=g_p[0], g_policy_low=g_p[1], g_policy_high=g_p[2], verdict=verdict(g_v, g_p))
        out.append(row)
    return pd.DataFrame(out, columns=[*MATRIX, "cells", "g_value", "g_value_low", "g_value_high", "g_policy",
                                      "g_policy_low", "g_policy_high", "verdict"])


def full_cell(study: pd.DataFrame) -> pd.DataFrame:
    """The runs of each matrix's full-data cell (largest N_v, then largest N_π)."""
    parts = []
    for _, g in study.groupby(MATRIX, sort=True):
        v = g["value_fraction"].max()
        gv = g[g["value_fraction"] == v]
        parts.append(gv[gv["policy_fraction"] == gv["policy_fraction"].max()])
    return pd.concat(parts, ignore_index=True) if parts else study.iloc[:0]


def per_pairing(study: pd.DataFrame, columns: dict[str, str], reps: int, seed: int,
                confidence: float) -> pd.DataFrame:
    """Per matrix (at its full-data cell): mean and interval of each of ``columns`` (name -> label)."""
    out = []
    for key, g in full_cell(study).groupby(MATRIX, sort=True):
        row: dict[str, Any] = {**dict(zip(MATRIX, key)), "value_fraction": g["value_fraction"].iloc[0],
                               "policy_fraction": g["policy_fraction"].iloc[0], "metric": g["metric"].iloc[0]}
        for col, label in columns.items():
            mean, lo, hi = mean_interval(g[col].to_numpy(), reps, seed, confidence)
            row.update({label: mean, f"{label}_low": lo, f"{label}_high": hi,
                        f"{label}_runs": int(np.isfinite(g[col].to_numpy(float)).sum())})
        out.append(row)
    return pd.DataFrame(out)


@dataclass
class BottleneckTables:
    study: pd.DataFrame
    cells: pd.DataFrame
    gradients: pd.DataFrame
    mse: pd.DataFrame
    testtime: pd.DataFrame
    figures: list[list[Path]] = field(default_factory=list)

    @property
    def has_matrix(self) -> bool:
        return bool((self.gradients["cells"] > 1).any()) if len(self.gradients) else False

    @property
    def has_mse(self) -> bool:
        return len(self.mse) > 0 and any(self.mse.get(f"{n}_runs", pd.Series([0])).sum() > 0 for n in MSE_SETS)

    @property
    def has_testtime(self) -> bool:
        return len(self.testtime) > 0 and any(self.testtime.get(f"{p}_runs", pd.Series([0])).sum() > 0
                                              for p in PASSES)

    @property
    def empty(self) -> bool:
        return not (self.has_matrix or self.has_mse or self.has_testtime)


def build(runs: pd.DataFrame, reps: int, seed: int, confidence: float) -> BottleneckTables:
    """Every table; the bootstraps run only for what the runs hold (a plain sweep costs a few file reads)."""
    study = study_runs(runs)
    probed = study.filter(regex="^(mse_|opex_score|ttt_score)").notna().any()
    grads = gradients(study, reps, seed, confidence)
    matrix = bool((grads["cells"] > 1).any()) if len(grads) else False
    empty = pd.DataFrame(columns=[*MATRIX])
    mse = per_pairing(study, {f"mse_{n}": n for n in MSE_SETS}, reps, seed, confidence) \
        if any(probed.get(f"mse_{n}", False) for n in MSE_SETS) else empty
    testtime = per_pairing(study, {"score": "plain", **{f"{p}_delta": p for p in PASSES}}, reps, seed, confidence) \
        if any(probed.get(f"{p}_score", False) for p in PASSES) else empty
    return BottleneckTables(study, cells(study, reps, seed, confidence) if matrix else cells(study.iloc[:0], reps,
                                                                                              seed, confidence),
                            grads, mse, testtime)


# ------------------------------------------------------------------------------------------ writing


def write(runs: pd.DataFrame, out: Path, plots: bool, reps: int, seed: int, confidence: float,
          title: str | None = None) -> tuple[list[Path], str, str]:
    """Tables, figures and the report.md section of the bottleneck study; nothing when the runs hold none of it.

    Returns (files written, markdown section, why plots were skipped)."""
    tables = build(runs, reps, seed, confidence)
    if tables.empty:
        return [], "", ""
    files = []
    for name, frame in (("bottleneck_runs", tables.study), ("bottleneck_cells", tables.cells),
                        ("bottleneck_gradients", tables.gradients), ("bottleneck_mse", tables.mse),
                        ("bottleneck_testtime", tables.testtime)):
        frame.to_csv(out / f"{name}.csv", index=False)
        files.append(out / f"{name}.csv")
    message = ""
    if plots:
        from offrl.report import bottleneck_plots as bp
        from offrl.report.plots import PlotsUnavailable

        try:
            if tables.has_matrix:
                tables.figures.append(bp.matrices(with_variant(tables.cells), with_variant(tables.gradients),
                                                  out / "bottleneck_matrices", confidence, reps, title))
            if tables.has_mse:
                tables.figures.append(bp.mse_bars(with_variant(tables.mse), out / "bottleneck_mse", confidence, reps,
                                                  title))
            if tables.has_testtime:
                tables.figures.append(bp.testtime_deltas(with_variant(tables.testtime), out / "bottleneck_testtime",
                                                         confidence, reps, title))
        except PlotsUnavailable as e:
            message = str(e)
    files += [p for fig in tables.figures for p in fig]
    return files, markdown(tables, confidence), message


def _actor(r: Any) -> str:
    return f"{r['actor']} [{r['variant']}]" if r.get("variant") else str(r["actor"])


def with_variant(frame: pd.DataFrame) -> pd.DataFrame:
    """``actor`` named with its other grid values, for figures (one column per actor variant)."""
    if "variant" not in frame or not (frame["variant"].astype(str) != "").any():
        return frame
    return frame.assign(actor=[f"{a} [{v}]" if v else a for a, v in zip(frame["actor"], frame["variant"])])


def _ci(mean: float, lo: float, hi: float, digits: int = 1) -> str:
    if math.isnan(mean):
        return "–"
    text = f"{0.0 if round(mean, digits) == 0 else mean:.{digits}f}"  # never "-0.0"
    return text + ("" if math.isnan(lo) else f" [{lo:.{digits}f}, {hi:.{digits}f}]")


def markdown(t: BottleneckTables, confidence: float) -> str:
    pct = f"{confidence:.0%}"
    out = ["## Bottleneck study", "",
           "The critic learned from N_v and the actor from N_π of the training episodes (docs/bottleneck.md). "
           f"Values are means over runs with {pct} bootstrap intervals.", ""]
    if t.has_matrix:
        out += ["### Data-scaling matrices: final score", "",
                "Gradient: the plane score ≈ c + g_v·log₂ N_v + g_π·log₂ N_π fitted to the cells (points per "
                f"doubling, {pct} stratified-bootstrap interval over runs within cells); value-bound when "
                f"|g_v| ≥ {DOMINANCE:g}·|g_π|, policy-bound the other way round, both in between, flat when neither "
                "interval excludes 0.", "",
                "| critic | actor | dataset | cells | g_v (value data) | g_π (policy data) | verdict |",
                "|---|---|---|---|---|---|---|"]
        for _, r in t.gradients.iterrows():
            out.append(f"| {r['critic']} | {_actor(r)} | {r['dataset']} | {r['cells']} | "
                       f"{_ci(r['g_value'], r['g_value_low'], r['g_value_high'])} | "
                       f"{_ci(r['g_policy'], r['g_policy_low'], r['g_policy_high'])} | {r['verdict']} |")
        out.append("")
        for key, g in t.cells.groupby(MATRIX, sort=True):
            pfs = sorted(g["policy_fraction"].unique())
            out += [f"**{key[0]} + {key[1]}**{f' [{key[3]}]' if key[3] else ''} on `{key[2]}` "
                    f"({METRIC_LABELS.get(g['metric'].iloc[0], 'score')}; rows: value fraction N_v, columns: "
                    "policy fraction N_π)", "",
                    "| N_v \\ N_π | " + " | ".join(f"{p:g}" for p in pfs) + " |",
                    "|---|" + "---|" * len(pfs)]
            for v in sorted(g["value_fraction"].unique(), reverse=True):
                row = g[g["value_fraction"] == v].set_index("policy_fraction")
                vals = [f"{row.loc[p, 'mean']:.1f} (n={int(row.loc[p, 'runs'])})" if p in row.index else "–"
                        for p in pfs]
                out.append(f"| {v:g} | " + " | ".join(vals) + " |")
            out.append("")
    if t.has_mse:
        out += ["### Action MSE against the reference (full-data cell)", "",
                "Training states: the actor's own; held-out: the validation episodes; visited: the evaluation "
                "episodes' states (what the reference is: `diagnostics_reference` in each run's summary.json).", "",
                "| critic | actor | dataset | train | held-out | visited |", "|---|---|---|---|---|---|"]
        for _, r in t.mse.iterrows():
            vals = [_ci(r[n], r[f"{n}_low"], r[f"{n}_high"], 4) for n in MSE_SETS]
            out.append(f"| {r['critic']} | {_actor(r)} | {r['dataset']} | " + " | ".join(vals) + " |")
        out.append("")
    if t.has_testtime:
        out += ["### Test-time policy improvement (full-data cell)", "",
                "OPEX / TTT minus the plain score of the same run and evaluation (paired).", "",
                "| critic | actor | dataset | plain | OPEX − plain | TTT − plain |", "|---|---|---|---|---|---|"]
        for _, r in t.testtime.iterrows():
            vals = [_ci(r[n], r[f"{n}_low"], r[f"{n}_high"]) for n in ("plain", *PASSES)]
            out.append(f"| {r['critic']} | {_actor(r)} | {r['dataset']} | " + " | ".join(vals) + " |")
        out.append("")
    for fig in t.figures:
        png = fig[0].name
        out += [f"![{png.rsplit('.', 1)[0]}]({png})", "",
                "Also as " + ", ".join(f"`{f.name}`" for f in fig if f.name != png) + ".", ""]
    return "\n".join(out) + "\n"
