"""The benchmark scripts: throughput prints its table and JSON rows (no timing thresholds); parity records
its study."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--dataset", "offrl/bandit/multimodal-v0",
         "--store", str(store), "--peer", "none", "--seconds", "0.1", "--min-updates", "4", "--chunk", "2",
         "--warmup", "1", "--rounds", "1", "--set", "critic.hidden_dims=[16,16]", "--set", "actor.hidden_dims=[16,16]",
         *(args if "--pairings" in args else ("--pairings", "iql", *args))],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )


def test_throughput_script_prints_a_table(session_store: Path) -> None:
    proc = _run("--seeds", "1", "2", "--modes", "off", store=session_store)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2  # E = 1 and E = 2, eager
    cells = [c.strip() for c in rows[0].split("│")[1:-1]]
    assert cells[:4] == ["offrl", "iql", "off", "1"] and cells[7] == "1.00"  # eager E=1 is the reference


def test_throughput_json_rows(session_store: Path) -> None:
    proc = _run("--seeds", "2", "--modes", "off", "--json", store=session_store)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"impl", "mode", "seeds", "updates_per_s", "seed_updates_per_s"} <= row.keys()
    assert row["seeds"] == 2 and row["seed_updates_per_s"] == 2 * row["updates_per_s"] > 0


def test_throughput_failed_and_left_out_rows_are_rows(session_store: Path) -> None:
    """A configuration that fails is a failed row with its error; the others are still measured; rows left
    out on CPU say why (no silent drops)."""
    proc = _run("--seeds", "1", "--modes", "off", "graph", "--json", store=session_store)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    ok, failed = rows
    assert ok["mode"] == "off" and ok["updates_per_s"] > 0 and ok["timed_updates"] >= 4
    assert failed["mode"] == "graph" and "needs a CUDA device" in failed["error"]
    proc = _run("--pairings", "edp", "--seeds", "16", "--modes", "off", "--max-seeds-heavy", "8", store=session_store)
    assert proc.returncode == 0, proc.stderr
    assert "left out: E > 8 on CPU" in proc.stdout.replace("\n", " ")


def test_throughput_times_evaluation(session_store: Path) -> None:
    proc = _run("--seeds", "2", "--modes", "off", "--eval", "--eval-steps", "5", "--json", store=session_store)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["eval_vstep_ms"] > 0 and row["eval_envs_total"] == 2 * 10
    assert 0 < row["eval_share"] < 1 and row["budget_min"] > row["budget_min_async"] > 0


def test_parity_study_records_every_part_and_refuses_another_protocol(tmp_path: Path) -> None:
    """benchmarks/parity.py may be started in parts (--only, --seeds): parity.json keeps every command and
    the union of seeds; a part with another budget or evaluation is refused instead of mixing studies."""
    import argparse

    import pytest

    sys.path.insert(0, str(ROOT))
    from benchmarks.parity import record_commands

    def args(**kw: object) -> argparse.Namespace:
        base = {"dataset": "d", "updates": 100, "eval_every": 10, "eval_episodes": 5, "seeds": [0, 1], "out": tmp_path}
        return argparse.Namespace(**{**base, **kw})

    record_commands(args(), [("offrl-iql", ["offrl", "run"])])
    record_commands(args(seeds=[2]), [("d3rlpy-iql-seed2", ["peer", "train"])])
    record = json.loads((tmp_path / "parity.json").read_text())
    assert record["seeds"] == [0, 1, 2] and set(record["commands"]) == {"offrl-iql", "d3rlpy-iql-seed2"}
    with pytest.raises(SystemExit, match="updates: 100 there, 200 now"):
        record_commands(args(updates=200), [("offrl-edp", ["offrl", "run"])])
    assert "offrl-edp" not in json.loads((tmp_path / "parity.json").read_text())["commands"]


def test_parity_figure_reads_both_libraries_runs(tmp_path: Path) -> None:
    """The figure's curves come from every group's seed*/eval.jsonl (offrl's and the peer's format alike);
    evaluations without a score (a crash mid-line is not written) are skipped, empty groups left out."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.parity import plot_curves, read_curves

    for group, seeds in {"offrl-iql": 2, "d3rlpy-iql": 1}.items():
        for s in range(seeds):
            d = tmp_path / group / f"seed{s}"
            d.mkdir(parents=True)
            rows = [{"step": k * 10, "normalized_score_100": 50.0 + k + s} for k in (1, 2)] + [{"step": 30}]
            (d / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_curves(tmp_path, "offrl-iql") == [{10: 51.0, 20: 52.0}, {10: 52.0, 20: 53.0}]
    assert read_curves(tmp_path, "offrl-edp") == []
    plot_curves(tmp_path, tmp_path / "fig" / "curves.png")
    assert (tmp_path / "fig" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parity_loss_table_averages_one_window_per_seed_then_over_seeds(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.parity import loss_table

    def write(group: str, seed: int, rows: list[dict]) -> None:
        d = tmp_path / group / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    # offrl logs every 5 updates: the window (10, 20] holds steps 15 and 20; step 10 is outside
    write("offrl-iql", 0, [{"step": s, "critic/q_loss": q, "critic/v_loss": 1.0, "actor/loss": 2.0}
                           for s, q in ((10, 100.0), (15, 4.0), (20, 6.0))])
    write("offrl-iql", 1, [{"step": 20, "critic/q_loss": 9.0, "critic/v_loss": 3.0, "actor/loss": 4.0}])
    write("d3rlpy-td3+bc", 0, [{"step": 20, "critic/q_loss": 0.5, "actor/loss": -1.0}])  # no V: a dash
    table = loss_table(tmp_path, 10, 20)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and "seeds" not in line}
    assert rows["offrl-iql"] == ["2", "7.00", "2.00", "3.00"]  # seed 0: q 5.0; seed 1: 9.0 -> 7.0
    assert rows["d3rlpy-td3+bc"] == ["1", "0.50", "–", "-1.00"]


def test_parity_plot_only_uses_the_studys_recorded_budget(tmp_path: Path) -> None:
    """--plot-only redraws from OUT alone: the loss window is the last evaluation interval of the budget
    recorded in parity.json, not the command line's defaults."""
    (tmp_path / "parity.json").write_text(json.dumps({"dataset": "d", "updates": 20, "eval_every": 10,
                                                      "eval_episodes": 1, "seeds": [0], "commands": {}}))
    d = tmp_path / "offrl-iql" / "seed0"
    d.mkdir(parents=True)
    (d / "eval.jsonl").write_text(json.dumps({"step": 20, "normalized_score_100": 1.0}) + "\n")
    (d / "train.jsonl").write_text("".join(json.dumps({"step": s, "critic/q_loss": float(s)}) + "\n" for s in (10, 20)))
    script = ROOT / "benchmarks" / "parity.py"
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--plot-only"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "updates 11–20" in proc.stdout and "| offrl-iql | 1 | 20.00 | – | – |" in proc.stdout
    assert (tmp_path / "parity_curves.png").exists()
