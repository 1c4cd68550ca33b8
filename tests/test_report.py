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
) -> Path:
    """A run directory in the contract's format, with the given (step, normalised score) evaluations."""
    run_dir = root / (name or f"{critic}__{actor}__{dataset.replace('/', '-')}__seed{seed}")
    run_dir.mkdir(parents=True)
    config = {
        "critic": {"name": critic, "tau": 0.7},
        "actor": {"name": actor},
        "data": {"dataset": dataset},
        "trainer": {"steps": scores[-1][0] if scores else 0, "seed": seed, "device": "cpu", "eval_every": 10},
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
    make_run(sweep / "runs", "expectile", "edp", DATASETS[0], 9, [(10, 99.0)], finished=False)
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
