"""From sweep directories to a report directory: collect, compute, write.

::

    REPORT_DIR/
      runs.csv (+ runs.parquet)   one row per run × evaluation
      run_scores.csv              one row per run: final / best score and return
      per_dataset.csv             per (pairing, dataset): final and best mean ± std over seeds
      aggregate.csv               per pairing: IQM across datasets with its interval
      improvement.csv             P(X > Y) with its interval for each ordered pair of pairings
      profiles.csv, curves.csv    the data behind the plots
      report.md                   the tables, and the plots below
      *.png                       plots (the ``plot`` extra)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from offrl.report import stats
from offrl.report.collect import collect_runs, write_table
from offrl.report.markdown import ReportContext, render
from offrl.errors import RunDirError


@dataclass
class Report:
    """Every table of a report (DataFrames), before anything is written."""

    sources: list[str]
    evals: pd.DataFrame  # one row per run × evaluation
    runs: pd.DataFrame  # one row per run (all runs, finished or not)
    per_dataset: pd.DataFrame
    aggregate: pd.DataFrame
    improvement: pd.DataFrame
    profiles: pd.DataFrame
    curves: pd.DataFrame
    left_out: list[tuple[str, str]] = field(default_factory=list)
    reps: int = stats.DEFAULT_REPS
    seed: int = 0
    confidence: float = stats.DEFAULT_CONFIDENCE
    include_incomplete: bool = False


def build_report(
    paths: Iterable[str | Path],
    reps: int = stats.DEFAULT_REPS,
    seed: int = 0,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    include_incomplete: bool = False,
) -> Report:
    """Collect the runs under ``paths`` and compute every table (finished runs only, unless asked)."""
    if not 0 < confidence < 1:
        raise RunDirError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise RunDirError(f"reps must be >= 1, got {reps}")
    sources = [str(p) for p in paths]
    left_out: list[tuple[str, str]] = []
    evals = collect_runs(sources, skipped=left_out)
    if evals.empty:
        raise RunDirError(
            "No evaluations found under " + ", ".join(sources) + " (runs have not evaluated yet, or failed)."
        )
    runs = stats.run_scores(evals)
    used = runs if include_incomplete else runs[runs["status"] == "finished"]
    used_evals = evals if include_incomplete else evals[evals["status"] == "finished"]
    finals = used["final"].dropna()
    top = max(100.0, float(finals.max())) if len(finals) else 100.0
    bottom = min(0.0, float(finals.min())) if len(finals) else 0.0
    taus = np.linspace(bottom, top, 101)
    return Report(
        sources=sources,
        evals=evals,
        runs=runs,
        per_dataset=stats.per_dataset(used),
        aggregate=stats.aggregate(used, reps, seed, confidence),
        improvement=stats.improvement_table(used, reps, seed, confidence),
        profiles=stats.profiles(used, taus, reps, seed, confidence),
        curves=stats.learning_curves(used_evals, confidence),
        left_out=left_out,
        reps=reps,
        seed=seed,
        confidence=confidence,
        include_incomplete=include_incomplete,
    )


@dataclass
class WrittenReport:
    files: list[Path]
    markdown: Path
    plot_message: str = ""  # why plots were skipped, if they were


def write_report(report: Report, out_dir: str | Path, plots: bool = True) -> WrittenReport:
    """Write the CSV tables, the plots (when matplotlib is available) and ``report.md``."""
    from offrl import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = write_table(report.evals, out, "runs")
    for name, frame in (
        ("run_scores", report.runs),
        ("per_dataset", report.per_dataset),
        ("aggregate", report.aggregate),
        ("improvement", report.improvement),
        ("profiles", report.profiles),
        ("curves", report.curves),
    ):
        frame.to_csv(out / f"{name}.csv", index=False)
        files.append(out / f"{name}.csv")

    pngs: list[Path] = []
    message = ""
    if plots:
        pngs, message = _write_plots(report, out)
    elif not plots:
        message = "Plots skipped (--no-plots)."
    files += pngs
    ctx = ReportContext(
        sources=report.sources,
        offrl_version=__version__,
        reps=report.reps,
        seed=report.seed,
        confidence=report.confidence,
        include_incomplete=report.include_incomplete,
        plots=[p.name for p in pngs],
        notes=[message] if message else [],
    )
    md = out / "report.md"
    md.write_text(render(ctx, report.runs, report.per_dataset, report.aggregate, report.improvement, report.left_out))
    files.append(md)
    return WrittenReport(files, md, message)


def _write_plots(report: Report, out: Path) -> tuple[list[Path], str]:
    from offrl.report import plots

    try:
        palette = plots.colours(list(report.runs["pairing"].unique()))
    except plots.PlotsUnavailable as e:
        return [], str(e)
    written = []
    if not report.curves.empty:
        written.append(plots.learning_curves(report.curves, out / "learning_curves.png", palette))
    if not report.aggregate.empty:
        written.append(plots.aggregate_intervals(report.aggregate, out / "aggregate_iqm.png", palette,
                                                 report.confidence))
    if not report.profiles.empty:
        written.append(plots.performance_profiles(report.profiles, out / "performance_profile.png", palette))
    return written, ""
