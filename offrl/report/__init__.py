"""Reports: turn sweep and run directories into the tables and plots a paper would print.

``collect_runs`` gives one DataFrame row per run × evaluation; ``build_report``
computes per-dataset means, IQM with stratified-bootstrap intervals,
probabilities of improvement and performance profiles (rliable's definitions,
computed with scipy); ``write_report`` writes CSVs, PNGs and ``report.md``.
"""
from offrl.report.build import Report, WrittenReport, build_report, write_report
from offrl.report.collect import collect_runs
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
    "collect_runs",
    "improvement_table",
    "iqm",
    "iqm_interval",
    "performance_profile",
    "poi_interval",
    "probability_of_improvement",
    "write_report",
]
