"""Figures of the bottleneck study (:mod:`offrl.report.bottleneck`), in the report's style and formats.

- ``matrices``: one heatmap per critic × actor × dataset (rows: dataset and
  critic, columns: actor), value data on the vertical axis and policy data on
  the horizontal one, each cell annotated with its mean final score and runs;
  the arrow is the fitted gradient (g_π, g_v), the title its verdict;
- ``mse_bars``: the action MSE on training, held-out and visited states per
  pairing, with bootstrap intervals;
- ``testtime_deltas``: OPEX − plain and TTT − plain per pairing, with
  bootstrap intervals.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from offrl.report.plots import _footer, _pyplot, _save
from offrl.rundir import METRIC_LABELS

SET_LABELS = {"train": "training states", "validation": "held-out states", "visited": "visited states"}


def _size(fraction: float, transitions: float) -> str:
    return f"{fraction:g}" + ("" if math.isnan(transitions) else f"\n({int(round(transitions)):,})")


def matrices(cells: pd.DataFrame, grads: pd.DataFrame, stem: Path, confidence: float, reps: int,
             title: str | None = None) -> list[Path]:
    plt = _pyplot()
    keys = sorted({(r.dataset, r.critic) for r in cells.itertuples()})
    actors = sorted(cells["actor"].unique())
    nrows, ncols = len(keys), len(actors)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.2, 3.9 * nrows), squeeze=False,
                             layout="constrained")
    lo, hi = float(np.nanmin(cells["mean"])), float(np.nanmax(cells["mean"]))
    image = None
    for i, (dataset, critic) in enumerate(keys):
        for j, actor in enumerate(actors):
            ax = axes[i, j]
            g = cells[(cells["dataset"] == dataset) & (cells["critic"] == critic) & (cells["actor"] == actor)]
            if g.empty:
                ax.axis("off")
                continue
            vs, ps = sorted(g["value_fraction"].unique()), sorted(g["policy_fraction"].unique())
            grid = np.full((len(vs), len(ps)), np.nan)
            for r in g.itertuples():
                a, b = vs.index(r.value_fraction), ps.index(r.policy_fraction)
                grid[a, b] = r.mean
                ax.text(b, a, f"{r.mean:.1f}\nn={r.runs}", ha="center", va="center", fontsize=7.5,
                        color="white" if (r.mean - lo) < 0.5 * (hi - lo + 1e-12) else "black")
            image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
            ax.set_xticks(range(len(ps)), [_size(p, g[g["policy_fraction"] == p]["policy_transitions"].mean())
                                           for p in ps], fontsize=7)
            ax.set_yticks(range(len(vs)), [_size(v, g[g["value_fraction"] == v]["value_transitions"].mean())
                                           for v in vs], fontsize=7)
            ax.set_xlabel("policy data N_π (share, transitions)", fontsize=8)
            ax.set_ylabel("value data N_v", fontsize=8)
            row = grads[(grads["dataset"] == dataset) & (grads["critic"] == critic) & (grads["actor"] == actor)]
            verdict = row["verdict"].iloc[0] if len(row) else ""
            if len(row) and not (math.isnan(row["g_value"].iloc[0]) or math.isnan(row["g_policy"].iloc[0])):
                gv, gp = float(row["g_value"].iloc[0]), float(row["g_policy"].iloc[0])
                norm = math.hypot(gv, gp)
                if norm > 0:
                    cx, cy = (len(ps) - 1) / 2, (len(vs) - 1) / 2
                    span = 0.35 * min(len(ps), len(vs))
                    ax.annotate("", xy=(cx + span * gp / norm, cy + span * gv / norm),
                                xytext=(cx - span * gp / norm, cy - span * gv / norm),
                                arrowprops=dict(arrowstyle="->", color="red", lw=1.6))
            ax.set_title(f"{critic} + {actor}\n{dataset}\n{verdict.split(' (')[0]}", fontsize=8)
    if image is not None:
        metric = METRIC_LABELS.get(cells["metric"].iloc[0], "score")
        fig.colorbar(image, ax=axes, shrink=0.8, label=f"final {metric}")
    if title:
        fig.suptitle(title)
    _footer(fig, [
        "Each cell: mean final score over runs (n) with the critic trained on the value data N_v and the actor on "
        "the policy data N_π (shares of the training episodes; transitions in brackets).",
        "Red arrow: direction of the least-squares plane's gradient over log₂ N_π (right) and log₂ N_v (up); "
        "the title says what it reads as (bottleneck_gradients.csv has the slopes with "
        f"{confidence:.0%} bootstrap intervals, {reps:,} resamples).",
    ])
    return _save(fig, stem)


def _labels(frame: pd.DataFrame) -> list[str]:
    many = frame["dataset"].nunique() > 1
    return [f"{r.critic}+{r.actor}" + (f"\n{r.dataset}" if many else "") for r in frame.itertuples()]


def _bars(ax: object, frame: pd.DataFrame, names: list[str], labels: dict[str, str]) -> None:
    x = np.arange(len(frame))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        mean = frame[name].to_numpy(float)
        low, high = frame[f"{name}_low"].to_numpy(float), frame[f"{name}_high"].to_numpy(float)
        err = np.stack([np.where(np.isnan(low), 0, mean - low), np.where(np.isnan(high), 0, high - mean)])
        ax.bar(x + (k - (len(names) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=labels[name])
    ax.set_xticks(x, _labels(frame), fontsize=7, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)


def mse_bars(mse: pd.DataFrame, stem: Path, confidence: float, reps: int, title: str | None = None) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(mse) + 2), 3.8))
    _bars(ax, mse, ["train", "validation", "visited"], SET_LABELS)
    ax.set_ylabel("action MSE against the reference")
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _footer(fig, [
        "Mean over runs of the policy's action MSE (unit action space, mean over action dimensions) at each "
        f"matrix's full-data cell; bars: {confidence:.0%} percentile bootstrap interval over runs ({reps:,} "
        "resamples). A missing bar: no reference on that set (the dataset action exists on dataset states only).",
    ])
    return _save(fig, stem)


def testtime_deltas(tt: pd.DataFrame, stem: Path, confidence: float, reps: int,
                    title: str | None = None) -> list[Path]:
    plt = _pyplot()
    names = [n for n in ("opex", "ttt") if f"{n}_runs" in tt and tt[f"{n}_runs"].sum() > 0]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(tt) + 2), 3.8))
    _bars(ax, tt, names, {"opex": "OPEX − plain", "ttt": "TTT − plain"})
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_ylabel("change in final score")
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _footer(fig, [
        "Paired difference per run: the score of the OPEX / TTT pass minus the plain score of the same evaluation "
        f"(same episode seeds and acting noise), mean over runs at the full-data cell; bars: {confidence:.0%} "
        f"percentile bootstrap interval ({reps:,} resamples).",
    ])
    return _save(fig, stem)
