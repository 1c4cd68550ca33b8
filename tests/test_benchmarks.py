"""The benchmark scripts: throughput prints its table and JSON rows (no timing thresholds); parity records
its study."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


# --- the seohongpark/fql peer: the tooling, without JAX -------------------------------------------------------------
def _fql_peer():  # noqa: ANN202
    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    import fql_peer

    return fql_peer


def test_ogbench_export_is_what_ogbench_loads_and_relabels(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """benchmarks/common.py export_ogbench_npz: OGBench's own loader (ogbench.utils.load_dataset, as
    seohongpark/fql's main.py calls it through make_env_and_datasets) reads the export back to offrl's
    transitions, and its relabel_dataset (from the exported qpos and button states) gives offrl's rewards
    and masks — the check the FQL peer repeats before training."""
    import numpy as np
    import pytest

    ogbench = pytest.importorskip("ogbench")
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import export_ogbench_npz
    from offrl.data.dataset import load_offline_dataset
    from offrl.datagen.recipes import ogbench as recipe

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "offrl/ogbench/scene-play-singletask-task2-v0"
    recipe.make(dataset, seed=0, episodes=2, episode_length=30)
    data_dir = export_ogbench_npz(dataset, tmp_path / "npz")
    assert sorted(p.name for p in data_dir.iterdir()) == ["scene-play-v0-val.npz", "scene-play-v0.npz"]
    fql_peer = _fql_peer()
    assert fql_peer.dataset_file("scene-play-singletask-task2-v0") == "scene-play-v0.npz"
    env, train, val = ogbench.make_env_and_datasets("scene-play-singletask-task2-v0", dataset_dir=str(data_dir))
    ours = load_offline_dataset(dataset, reward="none", action_clip_eps=0.0).arrays
    assert len(train["observations"]) == len(ours) == 60 and len(val["observations"]) == 30
    np.testing.assert_array_equal(train["observations"], ours.observations)
    np.testing.assert_array_equal(train["next_observations"], ours.next_observations)
    np.testing.assert_allclose(train["actions"], ours.actions, atol=1e-6)
    np.testing.assert_array_equal(train["rewards"], ours.rewards)  # OGBench's relabelling = offrl's
    np.testing.assert_array_equal(train["masks"], 1.0 - ours.terminals)
    assert train["rewards"].min() < 0 and len(set(train["rewards"].tolist())) > 1  # the check can fail
    env.close()
    import functools  # the peer's own check (fql_peer.py train runs it before training), and its refusal

    monkeypatch.setattr(ogbench, "make_env_and_datasets",
                        functools.partial(ogbench.make_env_and_datasets, dataset_dir=str(data_dir)))
    assert fql_peer.check_relabelling(data_dir, "scene-play-singletask-task2-v0") == {
        "transitions": 60, "max_reward_diff": 0.0, "max_mask_diff": 0.0}
    z = dict(np.load(data_dir / "scene-play-v0.npz"))
    z["offrl_rewards"][3] += 1.0
    np.savez(data_dir / "scene-play-v0.npz", **z)
    with pytest.raises(SystemExit, match="relabelling differ"):
        fql_peer.check_relabelling(data_dir, "scene-play-singletask-task2-v0")


def test_fql_logs_become_an_offrl_run_directory(tmp_path: Path) -> None:
    """FQL's train.csv / eval.csv rewritten with offrl's names and loss definitions (×2 for the twin-Q mean of
    FQL's and ReBRAC's critic loss, ÷ α_actor for ReBRAC's actor loss); FQL's step-1 evaluation dropped."""
    import argparse

    fql_peer = _fql_peer()
    run = tmp_path / "raw"
    run.mkdir()
    (run / "train.csv").write_text("training/critic/critic_loss,training/actor/total_loss,training/actor/mse,step\n"
                                   "0.5,-2.0,0.3,1000\n0.25,-1.0,0.2,2000\n")
    (run / "eval.csv").write_text("evaluation/success,evaluation/episode.return,evaluation/episode.length,step\n"
                                  "0.0,-200.0,200,1\n0.4,-120.5,180,2000\n")
    args = argparse.Namespace(agent="rebrac", eval_episodes=5, dataset="offrl/ogbench/x", seed=3, updates=2000,
                              fql=Path("/fql"), env_name="cube-single-play-singletask-task2-v0")
    out = tmp_path / "seed3"
    out.mkdir()
    fql_peer.write_run_dir(out, run, args, {"alpha_actor": 0.5, "actor_hidden_dims": (8, 8)}, {"transitions": 9}, 1.5)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert train == [{"step": 1000, "critic/q_loss": 1.0, "actor/loss": -4.0, "actor/bc_mse": 0.3},
                     {"step": 2000, "critic/q_loss": 0.5, "actor/loss": -2.0, "actor/bc_mse": 0.2}]
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert evals == [{"step": 2000, "success_rate_100": 40.0, "return_mean": -120.5, "length_mean": 180.0,
                      "episodes": 5}]
    config = json.loads((out / "config.json").read_text())
    assert config["actor"]["name"] == "rebrac" and config["actor"]["actor_hidden_dims"] == [8, 8]
    assert json.loads((out / "summary.json").read_text())["final_success_rate_100"] == 40.0
    from offrl.report.collect import load_run  # offrl report reads the peer's runs

    frame = load_run(out)
    assert frame["actor"].tolist() == ["rebrac"] and frame["success_rate_100"].tolist() == [40.0]


def test_fql_parity_study_commands_match_on_both_sides(tmp_path: Path) -> None:
    """benchmarks/parity_fql.py: the same widths, updates, evaluation cadence and episodes on both sides;
    FQL's agent settings are the offrl presets' (α, α_actor, α_critic); commands interleave the libraries."""
    import argparse

    sys.path.insert(0, str(ROOT))
    from benchmarks import parity_fql as study

    args = argparse.Namespace(fql=Path("/fql"), dataset="offrl/ogbench/cube-single-play-singletask-task2-v0",
                              hidden="64,64", updates=500, seeds=[0, 1], eval_every=250, eval_episodes=5,
                              log_every=50, out=tmp_path, compile="off")
    ours = study.offrl_command("rebrac", args)
    theirs = study.peer_command("rebrac", 1, args, Path("python"), tmp_path / "npz",
                                "cube-single-play-singletask-task2-v0")
    assert "critic.hidden_dims=[64,64]" in ours and "actor.hidden_dims=[64,64]" in ours
    assert theirs[theirs.index("--hidden") + 1] == "64,64" and "alpha_actor=1" in theirs and "alpha_critic=0" in theirs
    for flag, value in (("--steps", "500"), ("--eval-every", "250"), ("--eval-episodes", "5")):
        assert ours[ours.index(flag) + 1] == value
    for flag, value in (("--updates", "500"), ("--eval-every", "250"), ("--eval-episodes", "5"), ("--seed", "1")):
        assert theirs[theirs.index(flag) + 1] == value
    import offrl

    critic, actor, preset, _, _ = study.AGENTS["rebrac"]
    cfg = offrl.make_config(critic=critic, actor=actor, preset=preset)
    assert (cfg.actor_cfg.alpha, cfg.critic_cfg.alpha_critic, cfg.actor_cfg.update_every) == (1.0, 0.0, 2)
    assert offrl.make_config(critic="td3", actor="fql", preset=study.AGENTS["fql"][2]).actor_cfg.alpha == 300
    assert study.interleave([1, 2], ["a", "b", "c"]) == [1, "a", 2, "b", "c"]


def test_fql_parity_tables_and_figure(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks import parity_fql as study

    for group, finals in {"offrl-fql": (40.0, 60.0), "fql-fql": (50.0,)}.items():
        for s, final in enumerate(finals):
            d = tmp_path / group / f"seed{s}"
            d.mkdir(parents=True)
            (d / "eval.jsonl").write_text(json.dumps({"step": 10, "success_rate_100": 10.0}) + "\n"
                                          + json.dumps({"step": 20, "success_rate_100": final}) + "\n")
    table = study.success_table(tmp_path)
    assert "| offrl-fql | 2 | 50.0 ± 14.1 | 40, 60 | 50.0 ± 14.1 |" in table
    assert "| fql-fql | 1 | 50.0 ± 0.0 | 50 | 50.0 ± 0.0 |" in table
    study.plot_curves(tmp_path, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_iql_early_record_keeps_finished_runs_and_refuses_other_data(tmp_path: Path, session_store: Path) -> None:
    from offrl.rundir import append_jsonl

    sys.path.insert(0, str(ROOT))
    from benchmarks import iql_early as mod

    out, record = tmp_path / "out", tmp_path / "record.json"
    for seed, scores in ((0, [10.0, 50.0]), (1, [20.0, 70.0])):
        run = out / "main" / f"seed{seed}"
        run.mkdir(parents=True)
        for step, x in zip((5, 10), scores):
            append_jsonl(run / "eval.jsonl", {"step": step, "normalized_score_100": x})
    (out / "main" / "seed0" / "summary.json").write_text("{}")  # seed 1 is unfinished: not recorded
    digest = mod.dataset_digest("offrl/bandit/multimodal-v0")
    assert digest == mod.dataset_digest("offrl/bandit/multimodal-v0") and len(digest) == 64
    rec = mod.read_record(record, "offrl/bandit/multimodal-v0", digest)
    mod.write_record(record, rec, out, updates=10)
    saved = json.loads(record.read_text())
    assert saved["dataset_sha256"] == digest and saved["runs"] == {"main": {"0": {"5": 10.0, "10": 50.0}}}
    assert mod.recorded(saved, "main", 0, 10) and not mod.recorded(saved, "main", 1, 10)
    # On a fresh machine (no --out) the record alone gives the table.
    table = mod.summarise(tmp_path / "gone", ["main"], [10], 30.0, 10, saved)
    assert "| main | 1 | 50.0 ± 0.0 | 1 of 2 |" in table
    with pytest.raises(SystemExit, match="sha256"):
        mod.read_record(record, "offrl/bandit/multimodal-v0", "0" * 64)


def test_iql_early_compares_early_means_per_seed() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks import iql_early as mod

    # x = (1, 2) against y = (3, 4): of the 6 splits of the pool, {1, 2} | {3, 4} and its mirror reach |−2|.
    assert mod.permutation_p(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == pytest.approx(2 / 6)
    assert mod.permutation_p(np.array([1.0, 2.0]), np.array([2.0, 1.0])) == 1.0
    runs = {0: {5: 10.0, 10: 30.0, 15: 99.0}, 1: {5: 20.0, 10: 40.0}}
    assert mod.early_means(runs, until=10).tolist() == [20.0, 30.0]
    rec = {"runs": {"old": {"0": {"5": 50.0, "10": 50.0}, "1": {"5": 60.0, "10": 60.0}},
                    "main": {"0": {"5": 10.0, "10": 30.0}, "1": {"5": 20.0, "10": 40.0}}}}
    table = mod.compare(Path("/nonexistent"), ["old", "main"], 10, rec)
    assert "| old | 50.0 / 60.0 | 55.0 |  |  |" in table
    assert "| main | 20.0 / 30.0 | 25.0 | -30.0 [" in table and table.endswith("| 0.33 |")
    against_main = mod.compare(Path("/nonexistent"), ["old", "main"], 10, rec, base="main").splitlines()
    assert against_main[2].startswith("| main |") and against_main[3].startswith("| old | 50.0 / 60.0 | 55.0 | +30.0 [")
    assert mod.compare(Path("/nonexistent"), ["old", "main"], 10, rec, base="main-separate") == ""


def test_finetune_table_reads_a_reports_runs_csv_and_its_record(tmp_path: Path, session_store: Path) -> None:
    """Offline end at online_from, means at offsets, the last offset per seed, the online dip; a seed that
    stopped early counts only where it has a value; the record redraws the same table."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import finetune_table as mod

    rows = ["pairing,seed,online_from,step,score"]
    for seed, curve in {0: [10.0, 20.0, 5.0, 40.0], 1: [30.0, 40.0, 15.0]}.items():
        rows += [f"td3+fql,{seed},200,{step},{v}" for step, v in zip((100, 200, 300, 400), curve)]
    (tmp_path / "runs.csv").write_text("\n".join(rows) + "\n")
    curves = mod.curves_of(tmp_path / "runs.csv")
    table = mod.table(curves, [100, 200], {"td3+fql": "FQL"}).splitlines()
    assert table[0] == "| pairing | seeds | offline end | +100 | +200 (per seed) | online mean: lowest / highest |"
    assert table[2] == "| FQL | 2 | 30.0 ± 10.0 (step 200) | 10.0 | 40.0 (n=1) (40.0) | 10.0 (+100) / 40.0 (+200) |"
    record = tmp_path / "rec.json"
    mod.main([str(tmp_path), "--at", "100", "200", "--record", str(record), "--sha256", "ab"])
    assert json.loads(record.read_text())["dataset_sha256"] == "ab"
    assert mod.table(json.loads(record.read_text())["pairings"], [100, 200]) == mod.table(curves, [100, 200])
    from benchmarks.common import dataset_digest

    mod.main([str(tmp_path), "--record", str(record), "--dataset", "offrl/bandit/multimodal-v0"])
    saved = json.loads(record.read_text())
    assert saved["dataset"] == "offrl/bandit/multimodal-v0"
    assert saved["dataset_sha256"] == dataset_digest("offrl/bandit/multimodal-v0") and len(saved["dataset_sha256"]) == 64
    (tmp_path / "runs.csv").write_text("pairing,seed,online_from,step,score\niql,0,,100,1.0\n")
    with pytest.raises(SystemExit, match="no online phase"):
        mod.curves_of(tmp_path / "runs.csv")
