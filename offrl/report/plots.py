"""Report figures (matplotlib, the ``plot`` extra), written as PNG files with the Agg backend.

- ``learning_curves.png``: score over training steps per dataset (one panel
  each), mean over seeds with its confidence band;
- ``aggregate_iqm.png``: each pairing's IQM across datasets with its
  stratified-bootstrap interval;
- ``performance_profile.png``: fraction of runs above each score threshold,
  with bootstrap bands.

Each pairing keeps one colour in every figure.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd


class PlotsUnavailable(Exception):
    """matplotlib is not installed; the message names the extra to install."""


MESSAGE = "Plots skipped: matplotlib is not installed. Install the extra: pip install 'offrl[plot]'."


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(MESSAGE) from None
    matplotlib.use("Agg", force=True)  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def colours(pairings: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(pairings) <= 10 else "tab20")
    return {p: cmap(i % cmap.N) for i, p in enumerate(sorted(pairings))}


def learning_curves(curves: pd.DataFrame, path: Path, palette: dict[str, Any]) -> Path:
    plt = _pyplot()
    datasets = sorted(curves["dataset"].unique())
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        sub = curves[curves["dataset"] == dataset]
        for pairing, g in sub.groupby("pairing", sort=True):
            ax.plot(g["step"], g["mean"], color=palette[pairing], label=pairing, lw=1.6)
            band = g.dropna(subset=["low", "high"])
            ax.fill_between(band["step"], band["low"], band["high"], color=palette[pairing], alpha=0.18, lw=0)
        metric = sub["metric"].iloc[0]
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("normalised score" if metric == "score" else "return")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout()
    # outside the panels, at the right: it never covers a curve and never gets clipped
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def aggregate_intervals(agg: pd.DataFrame, path: Path, palette: dict[str, Any], confidence: float) -> Path:
    plt = _pyplot()
    agg = agg.sort_values("iqm", kind="stable")
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(agg) + 1.4))
    y = np.arange(len(agg))
    for yi, (_, r) in zip(y, agg.iterrows()):
        c = palette[r["pairing"]]
        if not math.isnan(r["iqm_low"]):
            ax.hlines(yi, r["iqm_low"], r["iqm_high"], color=c, lw=6, alpha=0.45)
        ax.plot([r["iqm"]], [yi], "o", color=c, ms=7)
    ax.set_yticks(y, agg["pairing"], fontsize=8)
    ax.set_xlabel(f"IQM of final normalised score ({confidence:.0%} stratified-bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def performance_profiles(prof: pd.DataFrame, path: Path, palette: dict[str, Any]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for pairing, g in prof.groupby("pairing", sort=True):
        ax.plot(g["tau"], g["fraction"], color=palette[pairing], label=pairing, lw=1.6)
        band = g.dropna(subset=["low", "high"])
        ax.fill_between(band["tau"], band["low"], band["high"], color=palette[pairing], alpha=0.15, lw=0)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
