"""`offrl report`: collection into one DataFrame, rliable's statistics via scipy, files written.

The run directories here are written by hand in the run-directory format of
``offrl run`` (config.json, eval.jsonl, summary.json), so the report is tested
without training anything.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from offrl.errors import RunDirError
from offrl.report import stats
from offrl.report.build import build_report, write_report
from offrl.report.collect import collect_runs

DATASETS = ("offrl/bandit/multimodal-v0", "offrl/toy/other-v0")


def make_run(
    root: Path,
    critic: str,
    actor: str,
    dataset: str,
    seed: int,
    scores: list[tuple[int, float | None]],
    finished: bool = True,
    name: str | None = None,
    extra_lines: list[str] = (),  # type: ignore[assignment]
    steps: int | None = None,  # the configured steps (the same for every run unless given)
) -> Path:
    """A run directory in the contract's format, with the given (step, normalised score) evaluations."""
    run_dir = root / (name or f"{critic}__{actor}__{dataset.replace('/', '-')}__seed{seed}")
    run_dir.mkdir(parents=True)
    config = {
        "critic": {"name": critic, "tau": 0.7},
        "actor": {"name": actor},
        "data": {"dataset": dataset},
        "trainer": {"steps": steps if steps is not None else 30, "seed": seed, "device": "cpu", "eval_every": 10},
        "preset": None,
        "offrl_version": "0.1.0",
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    lines = []
    for step, score in scores:
        ret = None if score is None else score / 100.0
        lines.append(json.dumps({
            "step": step, "time_s": step / 10, "return_mean": ret if ret is not None else 0.0, "return_std": 0.1,
            "normalized_score_100": score, "normalized_score_100_std": None if score is None else 3.0,
            "episodes": 5,
        }))
    (run_dir / "eval.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n")
    if finished:
        valid = [s for _, s in scores if s is not None]
        (run_dir / "summary.json").write_text(json.dumps({
            "status": "finished", "critic": critic, "actor": actor, "dataset": dataset, "seed": seed,
            "steps": scores[-1][0], "final_score_100": scores[-1][1], "best_score_100": max(valid) if valid else None,
            "best_step": 0, "final_return": 0.0, "best_return": 0.0, "wall_time_s": 1.0, "run_dir": str(run_dir),
        }))
    return run_dir


def make_sweep(root: Path, seeds: int = 3) -> Path:
    """A fake sweep: 2 critics × 2 actors × 2 datasets × ``seeds`` seeds, 3 evaluations each."""
    rng = np.random.default_rng(0)
    base = {"expectile": 50.0, "quantile": 60.0}
    bonus = {"gaussian-awr": 0.0, "edp": 15.0}
    for critic in base:
        for actor in bonus:
            for d, dataset in enumerate(DATASETS):
                for seed in range(seeds):
                    final = base[critic] + bonus[actor] + 5 * d + rng.normal(0, 4)
                    make_run(root / "runs", critic, actor, dataset, seed,
                             [(10, final / 3), (20, final + 8), (30, final)])
    return root


# ---------------------------------------------------------------- collection


def test_one_row_per_run_and_evaluation(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    df = collect_runs([sweep])
    assert len(df) == 2 * 2 * 2 * 2 * 3
    assert df.groupby("run_dir").size().eq(3).all()
    assert set(df.columns) >= {"critic", "actor", "dataset", "seed", "step", "score", "pairing", "status"}
    assert set(df["pairing"]) == {"expectile+gaussian-awr", "expectile+edp", "quantile+gaussian-awr", "quantile+edp"}
    assert (df["status"] == "finished").all()


def test_resumed_run_counts_each_evaluation_once(tmp_path: Path) -> None:
    # A resume that re-logged steps 20 and 30 (the last occurrence wins), then a torn line from a crash.
    run = make_run(tmp_path, "expectile", "edp", DATASETS[0], 0, [(10, 1.0), (20, 2.0), (30, 3.0), (20, 20.0),
                                                                   (30, 30.0), (40, 40.0)],
                   extra_lines=['{"step": 50, "return_me'])
    df = collect_runs([run])
    assert list(df["step"]) == [10, 20, 30, 40]
    assert list(df["score"]) == [1.0, 20.0, 30.0, 40.0]


def test_incomplete_runs_and_sweep_variants(tmp_path: Path) -> None:
    sweep = tmp_path / "sw"
    make_run(sweep / "runs", "expectile", "edp", DATASETS[0], 0, [(10, 5.0)], name="cellA")
    make_run(sweep / "runs", "expectile", "edp", DATASETS[0], 0, [(10, 7.0)], finished=False, name="cellB")
    (sweep / "runs" / "broken").mkdir()
    (sweep / "runs" / "broken" / "config.json").write_text("{not json")
    (sweep / "sweep.json").write_text(json.dumps({"cells": [
        {"key": "cellA", "overrides": {"critic.tau": "0.9"}}, {"key": "cellB", "overrides": {}}]}))
    skipped: list[tuple[str, str]] = []
    df = collect_runs([sweep], skipped=skipped)
    by_run = df.set_index("run")
    assert by_run.loc["cellA", "pairing"] == "expectile+edp [critic.tau=0.9]"
    assert by_run.loc["cellB", "status"] == "incomplete"
    assert [Path(p).name for p, _ in skipped] == ["broken"]


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        collect_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="No run directories"):
        collect_runs([tmp_path / "empty"])


# ---------------------------------------------------------------- statistics


def test_iqm_matches_hand_computed_value() -> None:
    # pooled and sorted: 0 10 20 30 40 50 60 100 -> drop 2 lowest and 2 highest -> mean(20, 30, 40, 50) = 35
    samples = [np.array([0.0, 30.0, 10.0, 20.0]), np.array([100.0, 40.0, 60.0, 50.0])]
    assert stats.iqm(samples) == pytest.approx(35.0)


def test_probability_of_improvement_matches_mann_whitney() -> None:
    x = [np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0])]
    y = [np.array([2.0, 2.0]), np.array([4.0, 5.0, 6.0])]
    # task 1: pairs (1,2)(1,2)=0, (2,2)(2,2)=.5+.5, (3,2)(3,2)=2 -> 3/6 = 0.5; task 2: (5,4)=1 (5,5)=.5 (5,6)=0, twice -> 3/6
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.5)
    expected = np.mean([sps.mannwhitneyu(a, b).statistic / (len(a) * len(b)) for a, b in zip(x, y)])
    assert stats.probability_of_improvement(x, y) == pytest.approx(expected)
    assert stats.probability_of_improvement(y, x) == pytest.approx(1 - expected)


def test_intervals_are_reproducible_under_a_seed() -> None:
    rng = np.random.default_rng(1)
    samples = [rng.normal(m, 10, 5) for m in (30, 50, 70)]
    a = stats.iqm_interval(samples, reps=2000, seed=7)
    b = stats.iqm_interval(samples, reps=2000, seed=7)
    c = stats.iqm_interval(samples, reps=2000, seed=8)
    assert a == b
    assert a != c
    assert a[0] < stats.iqm(samples) < a[1]
    p1 = stats.poi_interval(samples, [s - 5 for s in samples], reps=500, seed=3)
    assert p1 == stats.poi_interval(samples, [s - 5 for s in samples], reps=500, seed=3)
    assert 0 <= p1[0] <= p1[1] <= 1


def test_single_run_tasks_give_no_interval() -> None:
    lo, hi = stats.iqm_interval([np.array([1.0]), np.array([2.0, 3.0])], reps=100)
    assert np.isnan(lo) and np.isnan(hi)


def test_iqm_interval_covers_the_true_iqm_about_95_percent() -> None:
    # Tasks with means 40/50/60 and equal noise: the pooled distribution is symmetric about 50, so its IQM is 50.
    rng = np.random.default_rng(2024)
    sims, covered = 200, 0
    for i in range(sims):
        samples = [rng.normal(m, 10.0, 10) for m in (40.0, 50.0, 60.0)]
        lo, hi = stats.iqm_interval(samples, reps=500, seed=i)
        covered += lo <= 50.0 <= hi
    # Percentile intervals under-cover slightly at 30 runs (~93 % measured); binomial SE at 200 sims is ~1.6 %.
    assert 0.87 <= covered / sims <= 0.99


def test_performance_profile() -> None:
    samples = [np.array([10.0, 30.0, 50.0, 70.0]), np.array([60.0, 80.0])]
    prof = stats.performance_profile(samples, np.array([0.0, 40.0, 75.0, 100.0]))
    np.testing.assert_allclose(prof, [1.0, (0.5 + 1.0) / 2, (0.0 + 0.5) / 2, 0.0])


def test_per_dataset_final_and_best(tmp_path: Path) -> None:
    for seed, (final, best) in enumerate([(40.0, 60.0), (50.0, 70.0), (60.0, 65.0)]):
        make_run(tmp_path / "runs", "expectile", "edp", DATASETS[0], seed, [(10, best), (20, final)])
    report = build_report([tmp_path], reps=200)
    row = report.per_dataset.iloc[0]
    assert row["final_mean"] == pytest.approx(50.0)
    assert row["final_std"] == pytest.approx(10.0)
    assert row["best_mean"] == pytest.approx(65.0)
    assert row["seeds"] == 3
    runs = report.runs.set_index("seed")
    assert runs.loc[1, "best_step"] == 10 and runs.loc[1, "final"] == 50.0


# ---------------------------------------------------------------- the written report


def test_report_files_markdown_and_pngs(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep", seeds=3)
    # an unfinished run is listed but not aggregated
    make_run(sweep / "runs", "expectile", "edp", DATASETS[0], 9, [(10, 99.0)], finished=False, steps=30)
    report = build_report([sweep], reps=500, seed=0)
    assert len(report.aggregate) == 4
    assert report.aggregate.iloc[0]["pairing"] == "quantile+edp"  # the best by construction
    assert len(report.improvement) == 4 * 3
    written = write_report(report, tmp_path / "report")
    out = tmp_path / "report"
    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 2 * 2 * 2 * 3 * 3 + 1
    md = (out / "report.md").read_text()
    assert "| pairing | offrl/bandit/multimodal-v0 | offrl/toy/other-v0 |" in md
    assert md.count("**") >= 2 * 2  # the best per column, in both per-dataset tables
    assert "Probability of improvement" in md and "not finished" in md
    try:
        import pyarrow  # noqa: F401

        assert (out / "runs.parquet").exists()
    except ImportError:
        pass
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "offrl[plot]" in written.plot_message
        return
    for name in ("learning_curves.png", "aggregate_iqm.png", "performance_profile.png"):
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in md


def test_plots_skipped_with_a_message_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    written = write_report(build_report([sweep], reps=100), tmp_path / "report")
    assert "offrl[plot]" in written.plot_message
    assert not list((tmp_path / "report").glob("*.png"))
    assert "offrl[plot]" in (tmp_path / "report" / "report.md").read_text()


def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.cli import report as cli

    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(sweep), "--out", str(tmp_path / "r"), "--reps", "200", "--no-plots"])
    assert cli.run(args) == 0
    assert (tmp_path / "r" / "report.md").exists()
    assert "IQM" in capsys.readouterr().out
    bad = parser.parse_args(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")])
    with pytest.raises(RunDirError, match="missing"):
        cli.run(bad)


# ---------------------------------------------------------------- robustness, diverged runs, primary scores


def _diverge(run_dir: Path, step: int) -> None:
    (run_dir / "summary.json").write_text(json.dumps({"status": "diverged", "steps": step}))


def test_out_that_is_an_existing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.cli.main import main

    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert main(["report", str(sweep), "--out", str(target), "--reps", "50", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"--out '{target}' is an existing file" in err and "Traceback" not in err
    assert target.read_text() == "keep me"


def test_rows_with_a_non_numeric_step_are_skipped_and_the_run_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from offrl.cli.main import main

    run = make_run(tmp_path / "runs", "expectile", "edp", DATASETS[0], 0, [(10, 5.0), (20, 6.0)],
                   extra_lines=['{"step": "ten", "normalized_score_100": 50}', '{"step": 2.5, "normalized_score_100": 1}',
                                '{"step": true, "normalized_score_100": 2}', '{"normalized_score_100": 3}'])
    skipped: list[tuple[str, str]] = []
    df = collect_runs([tmp_path], skipped=skipped)
    assert list(df["step"]) == [10, 20] and list(df["score"]) == [5.0, 6.0]
    assert skipped == [(str(run), "skipped 4 rows of eval.jsonl whose step is not a whole number in [0, 2^53] ('ten', 2.5, True)")]
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out), "--reps", "50", "--no-plots"]) == 0
    assert "skipped 4 rows of eval.jsonl" in capsys.readouterr().out
    assert f"- `{run}`: skipped 4 rows" in (out / "report.md").read_text()


@pytest.mark.parametrize("include_incomplete", [False, True])
def test_diverged_runs_are_counted_not_averaged(tmp_path: Path, include_incomplete: bool) -> None:
    """A pairing whose runs diverged is shown as diverged; its column keeps the dataset's scale."""
    for seed in range(3):
        make_run(tmp_path / "runs", "quantile", "edp", DATASETS[0], seed, [(10, 40.0 + seed), (20, 50.0 + seed)])
        # "expectile+ddpg-bc" sorts first: its last evaluation has no score, as a diverging run's may not
        _diverge(make_run(tmp_path / "runs", "expectile", "ddpg-bc", DATASETS[0], seed, [(10, 30.0), (20, None)],
                          finished=False), 20)
    _diverge(make_run(tmp_path / "runs", "quantile", "edp", DATASETS[0], 9, [(10, 99.0)], finished=False), 10)
    report = build_report([tmp_path], reps=200, include_incomplete=include_incomplete)
    rows = report.per_dataset.set_index("pairing")
    assert rows.loc["expectile+ddpg-bc", "seeds"] == 0 and rows.loc["expectile+ddpg-bc", "diverged"] == 3
    assert rows.loc["quantile+edp", "seeds"] == 3 and rows.loc["quantile+edp", "diverged"] == 1
    assert rows.loc["quantile+edp", "final_mean"] == pytest.approx(51.0)  # the diverged 99 is not averaged
    agg = report.aggregate.set_index("pairing")
    assert agg.loc["expectile+ddpg-bc", "runs"] == 0 and agg.loc["expectile+ddpg-bc", "diverged"] == 3
    assert agg.loc["quantile+edp", "runs"] == 3 and agg.loc["quantile+edp", "diverged"] == 1
    md = render_markdown(report, tmp_path / "report")
    assert f"| pairing | {DATASETS[0]} |" in md  # the normalised scale, not "(raw return)"
    assert "(raw return)" not in md
    assert "| expectile+ddpg-bc | diverged (3 runs) |" in md
    assert "51.0 ± 1.0** + 1 diverged" in md
    assert "4 runs diverged" in md and "| 0 | 0 | 3 |" in md


def render_markdown(report: "object", out: Path) -> str:
    write_report(report, out, plots=False)  # type: ignore[arg-type]
    return (out / "report.md").read_text()


def _write_evals(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_primary_score_is_success_rate_then_normalised_score_then_return(tmp_path: Path) -> None:
    goal, plain = "ogbench/cube-single-v0", "offrl/toy/unscored-v0"
    for seed in range(3):
        run = make_run(tmp_path / "runs", "expectile", "edp", goal, seed, [(10, 0.0)])
        _write_evals(run, [{"step": 10, "return_mean": -50.0, "normalized_score_100": 12.0, "success_rate_100": 60.0 + seed},
                           {"step": 20, "return_mean": -40.0, "normalized_score_100": 15.0, "success_rate_100": 70.0 + seed}])
        run = make_run(tmp_path / "runs", "expectile", "edp", plain, seed, [(10, 0.0)])
        _write_evals(run, [{"step": 10, "return_mean": 100.0 + seed}, {"step": 20, "return_mean": 200.0 + seed}])
    old = make_run(tmp_path / "runs", "expectile", "edp", goal, 7, [(10, 12.0), (20, 15.0)])  # no success_rate_100
    report = build_report([tmp_path], reps=200)
    table = report.per_dataset.set_index("dataset")
    assert table.loc[goal, "metric"] == "success_rate_100" and table.loc[goal, "final_mean"] == pytest.approx(71.0)
    assert table.loc[goal, "seeds"] == 3  # the run without a success rate has no score on this dataset
    assert table.loc[plain, "metric"] == "return_mean" and table.loc[plain, "final_mean"] == pytest.approx(201.0)
    assert report.aggregate.iloc[0]["tasks"] == 1  # raw returns never enter the 0–100 aggregate
    assert set(report.curves["metric"]) == {"success_rate_100", "return_mean"}
    assert any(path == str(old) and "has no success_rate_100" in reason for path, reason in report.left_out)
    md = render_markdown(report, tmp_path / "report")
    assert f"| pairing | {plain} (raw return) | {goal} (success rate %) |" in md
    assert "success rates in % for ogbench/cube-single-v0" in md


def test_learning_curve_intervals_stay_within_the_runs_and_flag_few_runs(tmp_path: Path) -> None:
    """Two runs at 10 and 90: a Student-t interval would span about −500…600; the bootstrap stays in [10, 90]."""
    for seed, score in enumerate((10.0, 90.0)):
        make_run(tmp_path / "two", "expectile", "edp", DATASETS[0], seed, [(10, score), (20, score)])
    make_run(tmp_path / "one", "expectile", "edp", DATASETS[0], 0, [(10, 50.0)])
    for seed in range(5):
        make_run(tmp_path / "five", "expectile", "edp", DATASETS[0], seed, [(10, 40.0 + 5 * seed)])
    two = stats.learning_curves(collect_runs([tmp_path / "two"]), reps=2000)
    assert (two["low"] >= 10.0).all() and (two["high"] <= 90.0).all() and (two["high"] - two["low"] > 40).all()
    assert two["few_runs"].all() and (two["runs"] == 2).all()
    one = stats.learning_curves(collect_runs([tmp_path / "one"]), reps=200)
    assert one["low"].isna().all() and one["few_runs"].all()
    five = stats.learning_curves(collect_runs([tmp_path / "five"]), reps=2000)
    assert not five["few_runs"].any() and 40.0 < five["low"].iloc[0] < 50.0 < five["high"].iloc[0] < 60.0
    written = write_report(build_report([tmp_path / "two"], reps=200), tmp_path / "report", plots=False)
    curves = pd.read_csv(tmp_path / "report" / "curves.csv")
    assert list(curves.columns) == ["pairing", "dataset", "metric", "step", "mean", "low", "high", "runs", "few_runs"]
    assert curves["few_runs"].all()
    assert written.markdown.exists()


def test_figures_for_a_paper(tmp_path: Path) -> None:
    """PNG, PDF and SVG of every figure; the title and pairing names as set; each says what its bands are and n."""
    pytest.importorskip("matplotlib")
    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    report = build_report([sweep], reps=200)
    labels = {"expectile+gaussian-awr": "IQL (ours)"}
    write_report(report, tmp_path / "report", title="Bandit study", labels=labels)
    out = tmp_path / "report"
    for stem in ("learning_curves", "aggregate_iqm", "performance_profile"):
        for ext in ("png", "pdf", "svg"):
            assert (out / f"{stem}.{ext}").stat().st_size > 5_000
        svg = (out / f"{stem}.svg").read_text()
        assert "Bandit study" in svg and "IQL (ours)" in svg and "expectile+gaussian-awr" not in svg
        assert "n=" in svg and "fewer than 3 runs" not in svg  # the caption is not baked into the image …
        caption = (out / f"{stem}.caption.txt").read_text()
        assert "bootstrap" in caption and "fewer than 3 runs" in caption  # … it is beside it (2 seeds: flagged)
        assert f"*{caption.strip()}*" in (out / "report.md").read_text()  # and under the figure in report.md
    write_report(report, tmp_path / "baked", title="Bandit study", labels=labels, captions_in_figures=True)
    assert "fewer than 3 runs" in (tmp_path / "baked" / "aggregate_iqm.svg").read_text()
    md = (out / "report.md").read_text()
    assert md.startswith("# Bandit study") and "| IQL (ours) |" in md
    assert "`learning_curves.pdf`" in md and "`learning_curves.svg`" in md
    assert "expectile+gaussian-awr" in pd.read_csv(out / "aggregate.csv")["pairing"].tolist()  # CSVs keep ids


def test_figures_keep_coinciding_curves_and_edge_dots_visible(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pairings with the same curve: both seen (own marker, translucent, the later thinner on top); an IQM
    dot at the axis' end is not clipped."""
    pytest.importorskip("matplotlib")
    from offrl.report import plots

    figs: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, stem: figs.append(fig) or [])
    steps = [0, 10, 20]
    curves = pd.DataFrame([{"pairing": p, "dataset": "d", "metric": "normalized_score_100", "step": s,
                            "mean": 50.0 + s, "low": 40.0 + s, "high": 60.0 + s, "runs": 5, "few_runs": False}
                           for p in ("a+x", "b+y") for s in steps])
    style = plots.FigureStyle(confidence=0.95, reps=100)
    palette = plots.colours(["a+x", "b+y"])
    plots.learning_curves(curves, tmp_path / "c", palette, style)
    lines = [ln for ln in figs[0].axes[0].get_lines()]
    assert len(lines) == 2 and lines[0].get_marker() != lines[1].get_marker()
    assert all(ln.get_alpha() < 1 for ln in lines) and lines[1].get_linewidth() < lines[0].get_linewidth()
    assert lines[1].get_zorder() > lines[0].get_zorder()
    agg = pd.DataFrame([{"pairing": "a+x", "iqm": 100.0, "iqm_low": 90.0, "iqm_high": 100.0, "runs": 5,
                         "tasks": 1, "diverged": 0, "few_runs": False}])
    plots.aggregate_intervals(agg, tmp_path / "a", palette, style)
    [dot] = figs[1].axes[0].get_lines()
    assert not dot.get_clip_on() and figs[1].axes[0].get_xlim()[1] > 100.0


def test_labels_name_known_pairings_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.cli.main import main
    from offrl.report.build import parse_labels

    pairings = ["expectile+edp", "expectile+edp [critic.tau=0.9]"]
    assert parse_labels(["expectile+edp [critic.tau=0.9]=EDP τ=0.9", "expectile+edp=EDP"], pairings) == {
        "expectile+edp [critic.tau=0.9]": "EDP τ=0.9", "expectile+edp": "EDP"}
    with pytest.raises(RunDirError, match="PAIRING=NAME"):
        parse_labels(["EDP"], pairings)
    sweep = make_sweep(tmp_path / "sweep", seeds=2)
    assert main(["report", str(sweep), "--out", str(tmp_path / "r"), "--reps", "50", "--no-plots",
                 "--label", "expectile+ed=EDP"]) == 2
    err = capsys.readouterr().err
    assert "Unknown pairing in --label 'expectile+ed'. Did you mean 'expectile+edp'?" in err
    assert main(["report", str(sweep), "--out", str(tmp_path / "r"), "--reps", "50", "--no-plots",
                 "--label", "expectile+edp=EDP", "--title", "T"]) == 0
    assert "│ EDP " in capsys.readouterr().out
