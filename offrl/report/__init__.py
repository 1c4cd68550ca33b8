"""Reports: turn sweep and run directories into the tables and plots a paper would print.

``collect_runs`` gives one DataFrame row per run × evaluation, scored by each
dataset's primary metric (success rate > normalised score > return);
``build_report`` computes per-dataset means, IQM with stratified-bootstrap
intervals, probabilities of improvement, performance profiles and learning
curves (rliable's definitions, computed with scipy), counting diverged runs
apart; ``write_report`` writes CSVs, figures (PNG, PDF, SVG) and ``report.md``.
"""
from offrl.report.build import Report, WrittenReport, build_report, parse_labels, write_report
from offrl.report.collect import collect, collect_runs
from offrl.report.stats import (
    aggregate,
    improvement_table,
    iqm,
    iqm_interval,
    performance_profile,
    poi_interval,
    probability_of_improvement,
)

__all__ = [
    "Report",
    "WrittenReport",
    "aggregate",
    "build_report",
    "collect",
    "collect_runs",
    "improvement_table",
    "iqm",
    "iqm_interval",
    "parse_labels",
    "performance_profile",
    "poi_interval",
    "probability_of_improvement",
    "write_report",
]
