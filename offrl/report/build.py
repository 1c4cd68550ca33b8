"""From sweep directories to a report directory: collect, compute, write.

::

    REPORT_DIR/
      runs.csv (+ runs.parquet)   one row per run × evaluation
      run_scores.csv              one row per run: final / best primary score and return, status
      per_dataset.csv             per (pairing, dataset): final and best mean ± std over seeds, diverged runs
      aggregate.csv               per pairing: IQM across datasets with its interval, diverged runs
      improvement.csv             P(X > Y) with its interval for each ordered pair of pairings
      profiles.csv, curves.csv    the data behind the figures (columns: docs/benchmarks.md)
      report.md                   the tables, and the figures below
      *.png, *.pdf, *.svg         figures (the ``plot`` extra)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from offrl.errors import RunDirError, unknown
from offrl.report import stats
from offrl.report.collect import collect, write_table
from offrl.report.markdown import ReportContext, render


@dataclass
class Report:
    """Every table of a report (DataFrames), before anything is written."""

    sources: list[str]
    evals: pd.DataFrame  # one row per run × evaluation
    runs: pd.DataFrame  # one row per run (all runs, finished or not; ``counted`` marks those in the statistics)
    per_dataset: pd.DataFrame
    aggregate: pd.DataFrame
    improvement: pd.DataFrame
    profiles: pd.DataFrame
    curves: pd.DataFrame
    left_out: list[tuple[str, str]] = field(default_factory=list)  # runs left out, and runs with warnings
    reps: int = stats.DEFAULT_REPS
    seed: int = 0
    confidence: float = stats.DEFAULT_CONFIDENCE
    include_incomplete: bool = False

    @property
    def pairings(self) -> list[str]:
        return sorted(self.runs["pairing"].unique()) if len(self.runs) else []


def build_report(
    paths: Iterable[str | Path],
    reps: int = stats.DEFAULT_REPS,
    seed: int = 0,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    include_incomplete: bool = False,
) -> Report:
    """Collect the runs under ``paths`` and compute every table (finished runs only, unless asked;
    diverged runs are counted, never averaged)."""
    from offrl.validation import MAX_SEED

    if not 0 < confidence < 1:
        raise RunDirError(f"confidence must be in (0, 1), got {confidence}")
    if not 1 <= reps <= MAX_REPS:
        raise RunDirError(f"reps must be in [1, {MAX_REPS:,}], got {reps:,} (more resamples do not sharpen an "
                          "interval that rests on a few runs; they only take longer)")
    if not 0 <= seed <= MAX_SEED:
        raise RunDirError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    sources = [str(p) for p in paths]
    collected = collect(sources)
    evals = collected.evals
    if evals.empty and not (collected.runs["status"] == "diverged").any():
        raise RunDirError(
            "No evaluations found under " + ", ".join(sources) + " (runs have not evaluated yet, or failed)."
        )
    runs = stats.run_scores(evals, collected.runs)
    runs["counted"] = runs["status"] != "diverged" if include_incomplete else runs["status"] == "finished"
    counted_dirs = set(runs.loc[runs["counted"], "run_dir"])
    return Report(
        sources=sources,
        evals=evals,
        runs=runs,
        per_dataset=stats.per_dataset(runs),
        aggregate=stats.aggregate(runs, reps, seed, confidence),
        improvement=stats.improvement_table(runs, reps, seed, confidence),
        profiles=stats.profiles(runs, stats.profile_taus(runs), reps, seed, confidence),
        curves=stats.learning_curves(evals[evals["run_dir"].isin(counted_dirs)], reps, seed, confidence),
        left_out=collected.notes,
        reps=reps,
        seed=seed,
        confidence=confidence,
        include_incomplete=include_incomplete,
    )


#: Most bootstrap resamples a report computes (rliable's default is 50,000; offrl's 10,000).
MAX_REPS = 100_000


def prepare_out_dir(out_dir: str | Path) -> Path:
    """The report directory, created; a clear error if it is an existing file or cannot be created."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out '{out}' is an existing file, not a directory; give a directory for the report "
                          f"(e.g. --out {out.with_name(out.name + '-report')}).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"--out '{out}': a part of this path is an existing file; give a directory.") from None
    except OSError as e:
        raise RunDirError(f"Cannot create the report directory '{out}': {e.strerror or e}.") from None
    return out


def parse_labels(items: Sequence[str], pairings: Sequence[str]) -> dict[str, str]:
    """``--label PAIRING=NAME`` items -> {pairing: name}. A pairing's own name may hold '=' (grid values,
    ``expectile+edp [critic.tau=0.9]``), so the split is the '=' whose left side is a pairing."""
    labels: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise RunDirError(f"--label expects PAIRING=NAME (e.g. --label 'expectile+gaussian-awr=IQL'), got '{item}'.")
        cuts = [i for i, ch in enumerate(item) if ch == "=" and item[:i].strip() in pairings]
        if not cuts:
            raise unknown("pairing in --label", item.split("=", 1)[0].strip(), pairings)
        pairing, name = item[:cuts[-1]].strip(), item[cuts[-1] + 1:].strip()
        if not name:
            raise RunDirError(f"--label '{item}' gives no name for '{pairing}'.")
        labels[pairing] = name
    return labels


@dataclass
class WrittenReport:
    files: list[Path]
    markdown: Path
    plot_message: str = ""  # why plots were skipped, if they were


def write_report(
    report: Report,
    out_dir: str | Path,
    plots: bool = True,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    captions_in_figures: bool = False,
) -> WrittenReport:
    """Write the CSV tables, the figures (when matplotlib is available) and ``report.md``.

    ``labels`` renames pairings in the figures and report.md (the CSVs keep the pairings' own
    names); ``title`` heads report.md and every figure. Captions go under each figure in report.md and into
    ``STEM.caption.txt``; ``captions_in_figures`` also draws them into the images.
    """
    out = prepare_out_dir(out_dir)
    try:
        return _write(report, out, plots, title, dict(labels or {}), captions_in_figures)
    except OSError as e:  # a full disk, a folder made read-only: one message, the run directories untouched
        where = f"{e.filename}: " if e.filename else ""
        raise RunDirError(f"Could not write the report in '{out}' ({where}{e.strerror or e}). Free space or choose "
                          "another --out; the run directories are only read, never changed.") from None


def _write(report: Report, out: Path, plots: bool, title: str | None, labels: dict[str, str],
           captions_in_figures: bool = False) -> WrittenReport:
    from offrl import __version__

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

    figures: list[list[Path]] = []
    message = ""
    if plots:
        figures, message = _write_figures(report, out, title, labels, captions_in_figures)
    else:
        message = "Plots skipped (--no-plots)."
    files += [path for fig in figures for path in fig]
    from offrl.report import bottleneck  # data-scaling matrices, diagnostics, OPEX/TTT (when the runs hold them)

    extra, section, skipped = bottleneck.write(report.runs, out, plots, report.reps, report.seed, report.confidence,
                                               title)
    files += extra
    message = message or skipped
    ctx = ReportContext(
        sources=report.sources,
        offrl_version=__version__,
        reps=report.reps,
        seed=report.seed,
        confidence=report.confidence,
        include_incomplete=report.include_incomplete,
        title=title or "offrl report",
        labels=labels,
        figures=[(fig[0].name, [p.name for p in fig]) for fig in figures],
        captions={fig[0].name: p.read_text().strip() for fig in figures for p in fig if p.name.endswith(".caption.txt")},
        notes=[message] if message else [],
    )
    md = out / "report.md"
    md.write_text(render(ctx, report.runs, report.per_dataset, report.aggregate, report.improvement, report.left_out)
                  + (("\n" + section) if section else ""))
    files.append(md)
    return WrittenReport(files, md, message)


def _write_figures(report: Report, out: Path, title: str | None, labels: Mapping[str, str],
                   captions_in_figures: bool = False) -> tuple[list[list[Path]], str]:
    from offrl.report import plots

    try:
        palette = plots.colours(report.pairings)
    except plots.PlotsUnavailable as e:
        return [], str(e)
    style = plots.FigureStyle(confidence=report.confidence, reps=report.reps, labels=labels, title=title,
                              captions_in_figure=captions_in_figures)
    written = []
    if not report.curves.empty:
        starts = report.runs.dropna(subset=["online_from"]) if "online_from" in report.runs else report.runs[:0]
        boundaries = {str(d): sorted({int(v) for v in g["online_from"]}) for d, g in starts.groupby("dataset")}
        written.append(plots.learning_curves(report.curves, out / "learning_curves", palette, style, boundaries))
    if not report.aggregate.empty:
        written.append(plots.aggregate_intervals(report.aggregate, out / "aggregate_iqm", palette, style))
    if not report.profiles.empty:
        written.append(plots.performance_profiles(report.profiles, out / "performance_profile", palette, style))
    return written, ""
