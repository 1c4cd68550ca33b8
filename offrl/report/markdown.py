"""The markdown report: the tables a paper would print, pairings as rows and datasets as columns.

In each per-dataset column the best mean is in bold (all tied means are);
"± x" is the sample standard deviation over seeds. Each column is one scale:
the dataset's primary score (success rate, normalised score or raw return, as
its header says). Diverged runs are counted beside the means, never in them.
Aggregates and probabilities of improvement carry their bootstrap intervals
in brackets; "†" marks an interval resting on fewer than three runs in some
dataset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from offrl.cli.terminal import plural
from offrl.report.stats import FEW_RUNS
from offrl.rundir import METRIC_LABELS

#: Mark of an interval resting on fewer than FEW_RUNS runs.
FEW_MARK = "†"
#: Header suffix of a dataset column by its primary metric (the normalised score is the default scale).
HEADER_SUFFIX = {"success_rate_100": " (success rate %)", "normalized_score_100": "", "return_mean": " (raw return)",
                 "ope_estimate": " (FQE estimate, no environment)"}


@dataclass
class ReportContext:
    """Facts about how the report was made, printed at its top."""

    sources: Sequence[str]
    offrl_version: str
    reps: int
    seed: int
    confidence: float
    include_incomplete: bool
    title: str = "offrl report"
    labels: Mapping[str, str] = field(default_factory=dict)  # pairing -> name shown
    figures: Sequence[tuple[str, Sequence[str]]] = ()  # (PNG shown in the report, every format written)
    captions: Mapping[str, str] = field(default_factory=dict)  # PNG name → its caption (shown under it)
    notes: list[str] = field(default_factory=list)


def fmt(value: float, metric: str = "score") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}" if metric in ("return_mean", "ope_estimate") else f"{value:.1f}"


def _mean_std(mean: float, std: float, metric: str) -> str:
    return fmt(mean, metric) + ("" if std is None or math.isnan(std) else f" ± {fmt(std, metric)}")


def _name(pairing: str, labels: Mapping[str, str]) -> str:
    return labels.get(pairing, pairing)


def dataset_table(table: pd.DataFrame, which: str, labels: Mapping[str, str] | None = None) -> str:
    """Pairings × datasets table of ``which`` ('final' or 'best') mean ± std; best per column in bold."""
    labels = labels or {}
    if table.empty:
        return "_No runs with evaluations._\n"
    datasets = sorted(table["dataset"].unique())
    pairings = sorted(table["pairing"].unique())
    seeds_vary = table.loc[table["seeds"] > 0, "seeds"].nunique() > 1
    cells: dict[tuple[str, str], str] = {}
    for dataset in datasets:
        col = table[table["dataset"] == dataset]
        best = col[f"{which}_mean"].max()
        for _, r in col.iterrows():
            if r["seeds"] == 0:
                text = f"diverged ({plural(r['diverged'], 'run')})" if r["diverged"] else "–"
            else:
                text = _mean_std(r[f"{which}_mean"], r[f"{which}_std"], r["metric"])
                if seeds_vary:
                    text += f" (n={r['seeds']})"
                if not math.isnan(best) and math.isclose(r[f"{which}_mean"], best, rel_tol=0, abs_tol=1e-9):
                    text = f"**{text}**"
                if r["diverged"]:
                    text += f" + {r['diverged']} diverged"
            cells[(r["pairing"], dataset)] = text
    headers = []
    for dataset in datasets:
        metric = table.loc[table["dataset"] == dataset, "metric"].iloc[0]
        headers.append(dataset + HEADER_SUFFIX.get(metric, ""))
    lines = ["| pairing | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(datasets)]
    for p in pairings:
        lines.append(f"| {_name(p, labels)} | " + " | ".join(cells.get((p, d), "") for d in datasets) + " |")
    return "\n".join(lines) + "\n"


def aggregate_table(agg: pd.DataFrame, confidence: float, labels: Mapping[str, str] | None = None) -> str:
    labels = labels or {}
    if agg.empty:
        return "_No 0–100 scores to aggregate (no dataset has reference scores or success rates)._\n"
    pct = f"{confidence:.0%}"
    lines = [f"| pairing | IQM | {pct} CI | mean | median | runs | tasks | diverged |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    best = agg["iqm"].max()
    for _, r in agg.iterrows():
        iqm = fmt(r["iqm"])
        if not math.isnan(r["iqm"]) and math.isclose(r["iqm"], best, abs_tol=1e-9):
            iqm = f"**{iqm}**"
        ci = "–" if math.isnan(r["iqm_low"]) else f"[{fmt(r['iqm_low'])}, {fmt(r['iqm_high'])}]"
        if r["runs"] and r["few_runs"]:
            ci += f" {FEW_MARK}"
        lines.append(
            f"| {_name(r['pairing'], labels)} | {iqm} | {ci} | {fmt(r['mean'])} | {fmt(r['median'])} | {r['runs']} "
            f"| {r['tasks']} | {r['diverged']} |"
        )
    return "\n".join(lines) + "\n"


def improvement_matrix(poi: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    labels = labels or {}
    if poi.empty:
        return "_Needs at least two pairings with 0–100 scores._\n"
    names = sorted(set(poi["x"]) | set(poi["y"]))
    lookup = {(r.x, r.y): r for r in poi.itertuples()}
    lines = ["| P(row > column) | " + " | ".join(_name(n, labels) for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for x in names:
        cells = []
        for y in names:
            r = lookup.get((x, y))
            if x == y or r is None:
                cells.append("–" if x == y else "")
            elif math.isnan(r.poi_low):
                cells.append(f"{r.poi:.2f}")
            else:
                cells.append(f"{r.poi:.2f} [{r.poi_low:.2f}, {r.poi_high:.2f}]")
        lines.append(f"| {_name(x, labels)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scales_text(table: pd.DataFrame) -> str:
    """Which scale each dataset's column is on (one sentence)."""
    if table.empty:
        return ""
    by_metric: dict[str, list[str]] = {}
    for dataset, metric in sorted(set(zip(table["dataset"], table["metric"]))):
        by_metric.setdefault(metric, []).append(dataset)
    parts = []
    if "normalized_score_100" in by_metric:
        parts.append("normalised scores on 0–100 (0 = the dataset's reference minimum, 100 = its reference maximum)"
                     + ("" if len(by_metric) == 1 else f" for {', '.join(by_metric['normalized_score_100'])}"))
    if "success_rate_100" in by_metric:
        parts.append(f"success rates in % for {', '.join(by_metric['success_rate_100'])}")
    if "return_mean" in by_metric:
        parts.append(f"raw returns (no reference scores, left out of the aggregates) for "
                     f"{', '.join(by_metric['return_mean'])}")
    unscored = by_metric.get("", [])
    text = ("Scores are " + "; ".join(parts) + ".") if parts else ""
    return (text + (f" No scores yet for {', '.join(unscored)}." if unscored else "")).strip()


def render(
    ctx: ReportContext,
    runs: pd.DataFrame,
    table: pd.DataFrame,
    agg: pd.DataFrame,
    poi: pd.DataFrame,
    left_out: Sequence[tuple[str, str]],
) -> str:
    """The whole report as markdown text."""
    n = len(runs)
    finished = int((runs["status"] == "finished").sum()) if n else 0
    diverged = int((runs["status"] == "diverged").sum()) if n else 0
    pct = f"{ctx.confidence:.0%}"
    scaled = sorted({METRIC_LABELS.get(m, m) for m in table["metric"] if m != "return_mean"}) if len(table) else []
    out = [
        f"# {ctx.title}",
        "",
        f"Generated by offrl {ctx.offrl_version} from: " + ", ".join(f"`{s}`" for s in ctx.sources) + ".",
        f"{plural(n, 'run')} ({finished} finished" + (f", {diverged} diverged" if diverged else "") + "), "
        f"{plural(runs['pairing'].nunique() if n else 0, 'pairing')}, "
        f"{plural(runs['dataset'].nunique() if n else 0, 'dataset')}. "
        + ("Unfinished runs are included." if ctx.include_incomplete else "Only finished runs are aggregated."),
        "",
        scales_text(table),
        f"Intervals: {pct} stratified-bootstrap percentile intervals ({ctx.reps:,} resamples, seed {ctx.seed}); "
        "IQM = 25 %-trimmed mean over all runs × datasets (rliable's definitions, computed with scipy); "
        f"{FEW_MARK} = an interval resting on fewer than {FEW_RUNS} runs in some dataset.",
        "",
    ]
    if diverged:
        out += [
            f"{plural(diverged, 'run')} diverged (the trainer stopped them for good). They are counted in each "
            "table (\"+ k diverged\", the diverged column) and left out of every mean, interval and profile, "
            "which therefore describe the runs that did not diverge.",
            "",
        ]
    out += [
        "## Final score (last evaluation), mean ± std over seeds",
        "",
        dataset_table(table, "final", ctx.labels),
        "## Best score (maximum over evaluations), mean ± std over seeds",
        "",
        "The best evaluation selects on the test metric and is optimistic; compare methods on the final score.",
        "",
        dataset_table(table, "best", ctx.labels),
        f"## Aggregate over datasets: IQM of final scores with {pct} CI",
        "",
        f"Over the datasets scored on 0–100 ({', '.join(scaled) or 'none'}).",
        "",
        aggregate_table(agg, ctx.confidence, ctx.labels),
        "## Probability of improvement",
        "",
        "P(X > Y) for the pairing X of the row against Y of the column: the probability that a run of X "
        "scores above a run of Y on the same dataset (ties count ½), averaged over datasets, "
        f"with its {pct} CI.",
        "",
        improvement_matrix(poi, ctx.labels),
    ]
    if ctx.figures:
        out += ["## Figures", ""]
        for png, files in ctx.figures:
            out += [f"![{png.rsplit('.', 1)[0]}]({png})", ""]
            if ctx.captions.get(png):
                out += [f"*{ctx.captions[png]}*", ""]
            out += ["Also as " + ", ".join(f"`{f}`" for f in files if f != png) + ".", ""]
    for note in ctx.notes:
        out += [f"> {note}", ""]
    others = runs[runs["status"] != "finished"] if n else runs
    if len(others) or left_out:
        out += ["## Runs diverged, unfinished, left out or with warnings", ""]
        for _, r in others.iterrows():
            at = "no evaluation" if pd.isna(r["last_step"]) else f"last evaluation at step {int(r['last_step'])}"
            if r["status"] == "diverged":
                out.append(f"- `{r['run_dir']}`: diverged ({at}); counted as diverged, left out of the means")
                continue
            verb = "included" if ctx.include_incomplete else "left out of the tables"
            out.append(f"- `{r['run_dir']}`: {r['status']}, not finished ({at}); {verb}")
        for path, reason in left_out:
            out.append(f"- `{path}`: {reason}")
        out.append("")
    return "\n".join(out)
