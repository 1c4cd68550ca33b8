"""Report figures (matplotlib, the ``plot`` extra), each written as PNG, PDF and SVG.

- ``learning_curves``: primary score over training steps per dataset (one
  panel each), mean over runs with its bootstrap band;
- ``aggregate_iqm``: each pairing's IQM across datasets with its
  stratified-bootstrap interval;
- ``performance_profile``: fraction of runs above each score threshold, with
  bootstrap bands.

Every figure's caption says what its bands or intervals are and how many runs
each rests on; it is written beside the figure (``STEM.caption.txt``, and under
the figure in report.md), so the image can go into a paper under the paper's own
caption — ``captions_in_figure`` (``offrl report --captions-in-figures``) draws it
under the plot instead. Legends always carry n per pairing, and an interval
resting on fewer than
:data:`offrl.report.stats.FEW_RUNS` runs differently (dashed line, hatched
band, hollow marker), so a figure cut out of the report still tells the truth.
Each pairing keeps one colour and one marker in every figure (curves that
coincide stay visible: markers differ, lines are drawn translucent with the
later pairings thinner on top); its shown name can be set
(``--label``), as can a title (``--title``). PDF keeps fonts as TrueType and
SVG keeps text as text, so both can be edited for a paper.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from offrl.cli.terminal import plural
from offrl.report.stats import FEW_RUNS
from offrl.rundir import METRIC_LABELS

#: Formats every figure is written in (PNG is the one report.md shows).
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
#: Matplotlib settings for editable vector output.
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "offrl"}


class PlotsUnavailable(Exception):
    """matplotlib is not installed; the message names the extra to install."""


MESSAGE = "Plots skipped: matplotlib is not installed. Install the extra: pip install 'offrl[plot]'."


@dataclass
class FigureStyle:
    """What the user chose to show: names of pairings, a title; and what the intervals are."""

    confidence: float
    reps: int
    labels: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    captions_in_figure: bool = False

    def name(self, pairing: str) -> str:
        return self.labels.get(pairing, pairing)


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


#: One marker per pairing (by sorted position), so identical curves of two pairings are both seen.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def markers(pairings: Sequence[str]) -> dict[str, str]:
    return {p: MARKERS[i % len(MARKERS)] for i, p in enumerate(sorted(pairings))}


def _save(fig: Any, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem.png``, ``stem.pdf`` and ``stem.svg`` and its caption (:func:`_footer`) as
    ``stem.caption.txt``; returns the paths, PNG first, the caption last."""
    plt = _pyplot()
    paths = []
    with plt.rc_context(RC):
        for ext in FORMATS:
            path = stem.with_name(f"{stem.name}.{ext}")
            fig.savefig(path, dpi=150 if ext == "png" else None, bbox_inches="tight",
                        metadata={"Date": None} if ext in ("svg", "pdf") else None)
            paths.append(path)
    caption = getattr(fig, "offrl_caption", None)
    if caption:
        path = stem.with_name(f"{stem.name}.{CAPTION_SUFFIX}")
        path.write_text(caption + "\n")
        paths.append(path)
    plt.close(fig)
    return paths


#: The file beside each figure holding its caption.
CAPTION_SUFFIX = "caption.txt"


def _n_text(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _footer(fig: Any, lines: Sequence[str], fontsize: float = 7.5, in_figure: bool = True) -> None:
    """The figure's caption: what it shows. Always kept for ``stem.caption.txt`` (:func:`_save`); drawn under
    the plot, wrapped to the figure's width, only when ``in_figure``."""
    fig.offrl_caption = " ".join(lines)
    if not in_figure:
        return
    width = int(fig.get_figwidth() * 72 / (fontsize * 0.52))  # characters of this font across the figure
    text = "\n".join(textwrap.fill(line, width) for line in lines)
    fig.text(0.0, 0.0, text, ha="left", va="top", fontsize=fontsize, color="0.25", transform=fig.transFigure)


def _few_text(any_few: bool, marks: str) -> list[str]:
    if not any_few:
        return []
    return [f"{marks}: fewer than {FEW_RUNS} runs behind the interval, which then says little about the spread "
            "(a single run has none)."]


def learning_curves(curves: pd.DataFrame, stem: Path, palette: dict[str, Any], style: FigureStyle,
                    online_from: Mapping[str, Sequence[int]] | None = None) -> list[Path]:
    """``online_from``: per dataset, the steps where runs' online phases start (a dotted line marks each:
    offline training left of it, environment steps right of it)."""
    plt = _pyplot()
    datasets = sorted(curves["dataset"].unique())
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    runs_of: dict[str, list[int]] = {}
    marks = markers(sorted(curves["pairing"].unique()))
    order = {p: i for i, p in enumerate(sorted(marks))}
    for ax, dataset in zip(axes.flat, datasets):
        sub = curves[curves["dataset"] == dataset]
        for pairing, g in sub.groupby("pairing", sort=True):
            colour = palette[pairing]
            runs_of.setdefault(pairing, []).extend(g["runs"].tolist())
            few = bool(g["few_runs"].any())
            # later pairings thinner and on top, translucent, each with its marker: coinciding curves all show
            ax.plot(g["step"], g["mean"], color=colour, lw=max(2.4 - 0.35 * order[pairing], 0.9),
                    ls="--" if few else "-", alpha=0.85, marker=marks[pairing], ms=4,
                    markevery=max(1, len(g) // 12), zorder=2 + order[pairing])
            band = g.dropna(subset=["low", "high"])
            ax.fill_between(band["step"], band["low"], band["high"], facecolor=colour, edgecolor=colour,
                            alpha=0.12 if few else 0.18, lw=0, hatch="///" if few else None)
        ax.set_title(dataset, fontsize=10)
        starts = list((online_from or {}).get(dataset, []))
        for x in starts:
            ax.axvline(x, color="0.35", ls=":", lw=1.1, zorder=1)  # named in the legend, never over a curve
        ax.set_xlabel("training step (offline), then environment step (online)" if starts else "training step")
        ax.set_ylabel(METRIC_LABELS.get(sub["metric"].iloc[0], "score"))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    pairings = sorted(runs_of)
    handles = [plt.Line2D([], [], color=palette[p], lw=1.6, marker=marks[p], ms=4,
                          ls="--" if min(runs_of[p]) < FEW_RUNS else "-") for p in pairings]
    labels = [f"{style.name(p)} (n={_n_text(runs_of[p])})" for p in pairings]
    if any((online_from or {}).values()):
        handles.append(plt.Line2D([], [], color="0.35", ls=":", lw=1.1))
        labels.append("online phase starts")
    if style.title:
        fig.suptitle(style.title)
    fig.tight_layout()
    # outside the panels, at the right: it never covers a curve and never gets clipped
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    _footer(fig, [
        f"Line: mean over runs at each evaluation. Band: {style.confidence:.0%} percentile bootstrap interval "
        f"over runs ({style.reps:,} resamples, whole curves resampled).",
        f"n = runs per pairing and dataset: {_n_text(curves['runs'].tolist())} (per pairing in the legend).",
        *(["Dotted line: where the online phase starts; right of it a step is an environment step (with "
           "online.updates_per_step updates each)."] if any((online_from or {}).values()) else []),
        *_few_text(bool(curves["few_runs"].any()), "Dashed line, hatched band"),
    ], in_figure=style.captions_in_figure)
    return _save(fig, stem)


def aggregate_intervals(agg: pd.DataFrame, stem: Path, palette: dict[str, Any], style: FigureStyle) -> list[Path]:
    plt = _pyplot()
    agg = agg.sort_values("iqm", kind="stable", na_position="first")
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(agg) + 1.6))
    y = np.arange(len(agg))
    names = []
    for yi, (_, r) in zip(y, agg.iterrows()):
        colour = palette[r["pairing"]]
        few = bool(r["few_runs"])
        if r["runs"] == 0:
            names.append(f"{style.name(r['pairing'])} (all {plural(r['diverged'], 'run')} diverged)")
            continue
        if not math.isnan(r["iqm_low"]):
            ax.barh(yi, r["iqm_high"] - r["iqm_low"], left=r["iqm_low"], height=0.5, facecolor=colour,
                    edgecolor=colour, alpha=0.25 if few else 0.45, hatch="///" if few else None, lw=0)
        ax.plot([r["iqm"]], [yi], "o", ms=7, color=colour, mfc="white" if few else colour, clip_on=False,
                zorder=3)  # a dot at the axis' end is drawn whole
        diverged = f", {r['diverged']} diverged" if r["diverged"] else ""
        names.append(f"{style.name(r['pairing'])} (n={plural(r['runs'], 'run')}, "
                     f"{plural(r['tasks'], 'task')}{diverged})")
    ax.set_yticks(y, names, fontsize=8)
    ax.margins(x=0.06)  # room for a whole dot at the lowest and highest IQM
    ax.set_xlabel(f"IQM of final score, 0–100 ({style.confidence:.0%} stratified-bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    if style.title:
        ax.set_title(style.title)
    fig.tight_layout()
    _footer(fig, [
        f"Dot: interquartile mean of the final scores of all runs × datasets. Bar: {style.confidence:.0%} "
        f"stratified-bootstrap percentile interval ({style.reps:,} resamples; runs resampled within each dataset).",
        "Diverged runs are not in the IQM; their number is in the label.",
        *_few_text(bool((agg["few_runs"] & (agg["runs"] > 0)).any()), "Hollow dot, hatched bar"),
    ], in_figure=style.captions_in_figure)
    return _save(fig, stem)


def performance_profiles(prof: pd.DataFrame, stem: Path, palette: dict[str, Any], style: FigureStyle) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    marks = markers(sorted(prof["pairing"].unique()))
    order = {p: i for i, p in enumerate(sorted(marks))}
    for pairing, g in prof.groupby("pairing", sort=True):
        few = bool(g["few_runs"].iloc[0])
        label = f"{style.name(pairing)} (n={plural(g['runs'].iloc[0], 'run')}, {plural(g['tasks'].iloc[0], 'task')})"
        ax.plot(g["tau"], g["fraction"], color=palette[pairing], label=label, ls="--" if few else "-",
                lw=max(2.4 - 0.35 * order[pairing], 0.9), alpha=0.85, marker=marks[pairing], ms=4,
                markevery=max(1, len(g) // 10), zorder=2 + order[pairing], clip_on=False)
        band = g.dropna(subset=["low", "high"])
        ax.fill_between(band["tau"], band["low"], band["high"], facecolor=palette[pairing],
                        edgecolor=palette[pairing], alpha=0.15, lw=0, hatch="///" if few else None)
    ax.set_xlabel("score threshold τ (0–100)")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if style.title:
        ax.set_title(style.title)
    fig.tight_layout()
    _footer(fig, [
        "Line: fraction of a pairing's runs whose final score exceeds τ, averaged over datasets.",
        f"Band: {style.confidence:.0%} stratified-bootstrap percentile interval ({style.reps:,} resamples).",
        *_few_text(bool(prof["few_runs"].any()), "Dashed line, hatched band"),
    ], in_figure=style.captions_in_figure)
    return _save(fig, stem)
