"""``offrl report``: tables and figures from one or more sweep (or run) directories (see docs/benchmarks.md)."""
from __future__ import annotations

import argparse
import math

# pandas, scipy and matplotlib are imported in run(), not here: `offrl --help` and
# `offrl run` build every subcommand's parser and must not pay for them.
DEFAULT_REPS = 10_000  # = offrl.report.stats.DEFAULT_REPS
DEFAULT_CONFIDENCE = 0.95

DESCRIPTION = """\
Tables and figures from one or more sweep (or run) directories: runs.csv (one row per run x evaluation; runs.parquet
too with pyarrow), per-dataset and aggregate tables as CSV (IQM with stratified-bootstrap intervals, probabilities of
improvement), figures as PNG, PDF and SVG (the plot extra) and report.md.
"""

EPILOG = """\
examples:
  offrl report runs/bandit --out runs/bandit/report
  offrl report runs/sweep-a runs/sweep-b --out runs/combined-report --reps 50000 --seed 1
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="tables (IQM, bootstrap CIs, probability of improvement) and plots from sweep directories",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="sweep directories (or run directories)")
    p.add_argument("--out", required=True, help="report directory to write")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, metavar="N", help="bootstrap resamples, at most 100,000")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed, for reproducible intervals")
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, metavar="LEVEL", help="interval level")
    p.add_argument("--include-incomplete", action="store_true",
                   help="aggregate unfinished runs too (diverged runs are only ever counted)")
    p.add_argument("--no-plots", action="store_true", help="write tables only")
    p.add_argument("--title", help="title of report.md and of every figure")
    p.add_argument("--captions-in-figures", action="store_true",
                   help="also draw each figure's caption into the image (by default it is under the figure in "
                        "report.md and in STEM.caption.txt, so the image fits under a paper's own caption)")
    p.add_argument("--label", action="append", default=[], metavar="PAIRING=NAME",
                   help="name a pairing in report.md and the figures, e.g. 'expectile+gaussian-awr=IQL'; repeatable")
    return p


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from offrl.cli.terminal import console as make_console
    from offrl.cli.terminal import plural
    from offrl.report.build import build_report, parse_labels, prepare_out_dir, write_report

    console = make_console()
    prepare_out_dir(args.out)  # an unusable --out fails before minutes of bootstrapping
    report = build_report(
        args.sweeps, reps=args.reps, seed=args.seed, confidence=args.confidence,
        include_incomplete=args.include_incomplete,
    )
    labels = parse_labels(args.label, report.pairings)
    written = write_report(report, args.out, plots=not args.no_plots, title=args.title, labels=labels,
                           captions_in_figures=args.captions_in_figures)
    if not report.aggregate.empty:
        table = Table(title=f"IQM of final score, 0–100 ({args.confidence:.0%} CI)", title_justify="left")
        for col in ("pairing", "IQM", "CI", "runs", "tasks", "diverged"):
            table.add_column(col, justify="left" if col == "pairing" else "right", no_wrap=col != "pairing")
        for _, r in report.aggregate.iterrows():
            ci = "–" if math.isnan(r["iqm_low"]) else f"[{r['iqm_low']:.1f}, {r['iqm_high']:.1f}]"
            ci += " †" if r["runs"] and r["few_runs"] else ""
            iqm = "–" if math.isnan(r["iqm"]) else f"{r['iqm']:.1f}"
            table.add_row(escape(labels.get(r["pairing"], r["pairing"])), iqm, escape(ci), str(r["runs"]),
                          str(r["tasks"]), str(r["diverged"]))
        console.print(table)
        if (report.aggregate["few_runs"] & (report.aggregate["runs"] > 0)).any():
            console.print("† the interval rests on fewer than 3 runs in some dataset", markup=False)
    runs = report.runs
    diverged = int((runs["status"] == "diverged").sum())
    console.print(f"{plural(len(runs), 'run')}" + (f" ({diverged} diverged)" if diverged else "")
                  + f", {plural(len(report.evals), 'evaluation')} -> {args.out}", markup=False)
    if report.left_out:
        console.print(f"{plural(len(report.left_out), 'note')} on runs left out or with warnings "
                      "(all listed in report.md):", markup=False)
        for path, reason in report.left_out[:10]:
            console.print(f"  {path}: {reason}", markup=False)
        if len(report.left_out) > 10:
            console.print(f"  … and {len(report.left_out) - 10} more", markup=False)
    if written.plot_message:
        console.print(written.plot_message, style="yellow", markup=False)
    console.print(f"Report: {written.markdown}", markup=False)
    return 0
