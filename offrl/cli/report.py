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
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, metavar="N", help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed, for reproducible intervals")
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, metavar="LEVEL", help="interval level")
    p.add_argument("--include-incomplete", action="store_true", help="aggregate unfinished runs too")
    p.add_argument("--no-plots", action="store_true", help="write tables only")
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from offrl.report.build import build_report, write_report

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # logs and CI: wide tables rather than squashed columns
        console.width = max(console.width, 160)
    report = build_report(
        args.sweeps, reps=args.reps, seed=args.seed, confidence=args.confidence,
        include_incomplete=args.include_incomplete,
    )
    written = write_report(report, args.out, plots=not args.no_plots)
    if not report.aggregate.empty:
        table = Table(title=f"IQM of final normalised score ({args.confidence:.0%} CI)", title_justify="left")
        for col in ("pairing", "IQM", "CI", "runs", "tasks"):
            table.add_column(col, justify="left" if col == "pairing" else "right")
        for _, r in report.aggregate.iterrows():
            ci = "–" if math.isnan(r["iqm_low"]) else f"[{r['iqm_low']:.1f}, {r['iqm_high']:.1f}]"
            table.add_row(escape(r["pairing"]), f"{r['iqm']:.1f}", escape(ci), str(r["runs"]), str(r["tasks"]))
        console.print(table)
    n_runs = len(report.runs)
    console.print(f"{n_runs} runs, {len(report.evals)} evaluations -> {args.out}", markup=False)
    if written.plot_message:
        console.print(f"[yellow]{escape(written.plot_message)}[/]")
    console.print(f"Report: {written.markdown}", markup=False)
    return 0
