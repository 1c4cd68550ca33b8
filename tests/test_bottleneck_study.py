"""The bottleneck study: its sweep plan (a ``[bottleneck]`` table) and its report (matrices, gradients, MSE, deltas)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from offrl.errors import ConfigError
from offrl.report import bottleneck
from offrl.report.build import build_report, write_report
from offrl.sweep.cells import expand_cells
from offrl.sweep.spec import load_spec

SPEC = """
[sweep]
name = "bn"
critics = ["expectile", "sarsa"]
actors = ["ddpg-bc"]
seeds = 2

[run]
preset = "bandit"
steps = 100
set = ["trainer.log_every=50"]

[bottleneck]
value_fractions = [0.25, 1.0]
policy_fractions = [0.1, 0.5, 1]
opex_steps = 3
"""


def test_the_study_is_a_sweep_over_the_matrix(tmp_path: Path) -> None:
    path = tmp_path / "bn.toml"
    path.write_text(SPEC)
    spec = load_spec(path)
    assert spec.grid_dict == {"data.value_fraction": ("0.25", "1.0"), "data.policy_fraction": ("0.1", "0.5", "1.0")}
    assert set(spec.run.sets) == {"trainer.log_every=50", "data.validation_fraction=0.1", "trainer.phases=two-phase",
                                  "eval.diagnostics=true", "eval.opex_steps=3"}
    cells = expand_cells(spec)
    assert len(cells) == 2 * 1 * 2 * 2 * 3  # critics × actors × seeds × N_v × N_π
    assert len({c.key for c in cells}) == len(cells)
    from offrl.sweep.driver import validate_spec

    validate_spec(spec, cells)  # every cell is a valid `offrl run`


def test_the_benchmark_study_spec() -> None:
    from offrl.sweep.driver import validate_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "benchmarks" / "bottleneck-bandit.toml")
    assert len(expand_cells(spec)) == 2 * 3 * 16 * 3
    assert "trainer.phases=two-phase" in spec.run.sets and "eval.ttt_steps=100" in spec.run.sets
    validate_spec(spec)


@pytest.mark.parametrize("extra,match", [
    ('[grid]\n"data.value_fraction" = [0.5]\n', "remove it from \\[grid\\]"),
    ("", "unknown key 'value_fraction'"),
])
def test_study_conflicts_are_clear_errors(tmp_path: Path, extra: str, match: str) -> None:
    text = SPEC + extra
    if not extra:
        text = text.replace("value_fractions", "value_fraction")
    path = tmp_path / "bn.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_spec(path)


def test_the_study_refuses_td3_before_anything_runs(tmp_path: Path) -> None:
    from offrl.sweep.driver import validate_spec

    path = tmp_path / "bn.toml"
    path.write_text(SPEC.replace('"sarsa"', '"td3"'))
    with pytest.raises(ConfigError, match="td3"):
        validate_spec(load_spec(path))


# ------------------------------------------------------------------------------------ the report


def fake_run(root: Path, critic: str, vf: float, pf: float, seed: int, score: float, probes: bool = True) -> None:
    run_dir = root / "runs" / f"{critic}__ddpg-bc__bandit__seed{seed}__{vf}-{pf}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({
        "critic": {"name": critic}, "actor": {"name": "ddpg-bc"},
        "data": {"dataset": "offrl/bandit/multimodal-v0", "value_fraction": vf, "policy_fraction": pf},
        "trainer": {"seed": seed, "steps": 10}}))
    row = {"step": 10, "return_mean": score / 100, "normalized_score_100": score, "normalized_score_100_std": 1.0,
           "episodes": 10}
    if probes:
        row.update({"diag/mse_train": 0.1 + seed / 100, "diag/mse_validation": 0.2, "diag/mse_visited": 0.3,
                    "diag/value_bias": -0.5, "opex/normalized_score_100": score + 2 + seed,
                    "ttt/normalized_score_100": score - 1, "opex/seconds": 0.1, "ttt/seconds": 0.2})
    (run_dir / "eval.jsonl").write_text(json.dumps(row) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({
        "status": "finished", "critic": critic, "actor": "ddpg-bc", "dataset": "offrl/bandit/multimodal-v0",
        "seed": seed, "steps": 10, "value_transitions": int(2700 * vf), "policy_transitions": int(2700 * pf)}))


def study_dir(tmp_path: Path) -> Path:
    """expectile: +10 points per doubling of N_π only (policy-bound); sarsa: of N_v only (value-bound)."""
    root = tmp_path / "study"
    for seed in (0, 1, 2):
        for vf in (0.25, 0.5, 1.0):
            for pf in (0.25, 0.5, 1.0):
                noise = (seed - 1) * 0.5
                fake_run(root, "expectile", vf, pf, seed, 60 + 10 * {0.25: -2, 0.5: -1, 1.0: 0}[pf] + noise)
                fake_run(root, "sarsa", vf, pf, seed, 60 + 10 * {0.25: -2, 0.5: -1, 1.0: 0}[vf] + noise)
    return root


def test_gradients_read_the_bottleneck(tmp_path: Path) -> None:
    report = build_report([study_dir(tmp_path)], reps=500)
    tables = bottleneck.build(report.runs, reps=500, seed=0, confidence=0.95)
    g = tables.gradients.set_index("critic")
    assert g.loc["expectile", "verdict"] == "policy-bound" and g.loc["sarsa", "verdict"] == "value-bound"
    assert g.loc["expectile", "g_policy"] == pytest.approx(10.0) and g.loc["expectile", "g_value"] == pytest.approx(0)
    assert g.loc["expectile", "g_policy_low"] < 10 < g.loc["expectile", "g_policy_high"]
    cell = tables.cells[(tables.cells["critic"] == "sarsa") & (tables.cells["value_fraction"] == 0.25)
                        & (tables.cells["policy_fraction"] == 1.0)].iloc[0]
    assert cell["runs"] == 3 and cell["mean"] == pytest.approx(40.0) and cell["value_transitions"] == 675
    # the full-data cell: MSE and the paired OPEX/TTT differences (+2 + seed, −1)
    tt = tables.testtime.set_index("critic")
    assert tt.loc["expectile", "opex"] == pytest.approx(3.0) and tt.loc["expectile", "ttt"] == pytest.approx(-1.0)
    assert tables.mse.set_index("critic").loc["sarsa", "train"] == pytest.approx(0.11)


def test_flat_matrices_and_plain_sweeps() -> None:
    assert bottleneck.verdict((0.1, -1.0, 1.0), (0.2, -0.5, 0.8)) == "flat"
    assert bottleneck.verdict((1.0, 0.5, 1.5), (0.7, 0.2, 1.2)) == "both"
    assert bottleneck.verdict((1.0, float("nan"), float("nan")), (0.1, float("nan"), float("nan"))).startswith(
        "value-bound (point estimate")
    empty = bottleneck.build(pd.DataFrame(columns=["run_dir", "critic", "actor", "dataset", "seed", "metric",
                                                   "variant", "status", "final", "last_step"]), 10, 0, 0.95)
    assert empty.empty


def test_report_draws_the_matrices(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = build_report([study_dir(tmp_path)], reps=200)
    out = tmp_path / "report"
    written = write_report(report, out)
    for stem in ("bottleneck_matrices", "bottleneck_mse", "bottleneck_testtime"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.svg").exists()
    assert (out / "bottleneck_gradients.csv").exists()
    md = written.markdown.read_text()
    assert "## Bottleneck study" in md and "policy-bound" in md
    assert "![bottleneck_matrices](bottleneck_matrices.png)" in md
    # expectile's row N_v = 0.25 (columns: N_π ascending), sarsa's column N_π = 0.25 read down (N_v descending)
    assert "| 0.25 | 40.0 (n=3) | 50.0 (n=3) | 60.0 (n=3) |" in md
    assert "| 1 | 60.0 (n=3) | 60.0 (n=3) | 60.0 (n=3) |" in md


def test_a_plain_sweep_gets_no_bottleneck_section(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    for seed in (0, 1):
        fake_run(root, "expectile", 1.0, 1.0, seed, 50.0 + seed, probes=False)
    out = tmp_path / "report"
    written = write_report(build_report([root], reps=100), out, plots=False)
    assert "Bottleneck" not in written.markdown.read_text() and not (out / "bottleneck_cells.csv").exists()
