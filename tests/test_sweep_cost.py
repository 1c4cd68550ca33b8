"""`offrl sweep --dry-run`'s cost estimate (offrl.sweep.cost): hand-computed from rates, monotone in steps."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from offrl.sweep import rates_table
from offrl.sweep.backend import make_backend
from offrl.sweep.cells import expand_cells
from offrl.sweep.cost import duration, estimate, hours, makespan
from offrl.sweep.driver import validate_spec
from offrl.sweep.layout import SweepLayout
from offrl.sweep.spec import BackendOptions, RunOptions, SweepSpec

BANDIT = "offrl/bandit/multimodal-v0"


def dry_run(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    from offrl.cli.main import main

    assert main(["sweep", *flags, "--dry-run"]) == 0
    return capsys.readouterr().out


def cpu_hours(text: str) -> float:
    return float(re.search(r"([0-9.,e-]+) CPU-hours", text).group(1).replace(",", ""))  # type: ignore[union-attr]


def test_dry_run_prints_cells_and_a_cost_that_grows_with_steps(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--critics", "expectile,quantile", "--actors", "gaussian-awr,edp", "--seeds", "0-2", "--preset", "bandit",
             "--out", str(tmp_path / "sweep"), "--workers", "2", "--cpus-per-cell", "1"]
    texts = [dry_run(capsys, *flags, "--steps", str(steps)) for steps in (100, 1000, 10_000)]
    for text in texts:
        assert "12 cells ->" in text
        line = next(line for line in text.splitlines() if line.startswith("estimated cost: "))
        assert "12 cells to run in 12 processes" in line and "wall time ≈" in line and "on 2 workers" in line
        assert "rates: 12 cells from offrl's built-in table (measured by benchmarks/sweep_rates.py on" in text
    hours = [cpu_hours(t) for t in texts]
    assert hours[0] < hours[1] < hours[2]
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing


def test_an_online_phase_is_costed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """online.steps × online.updates_per_step more iterations: 1,000 offline + 9,000 online ≈ 10,000 offline; the
    estimate says the environment steps are not in it."""
    flags = ["--critics", "expectile", "--actors", "gaussian-awr", "--seeds", "0", "--preset", "bandit",
             "--out", str(tmp_path / "sweep"), "--workers", "1", "--cpus-per-cell", "1",
             "--set", "trainer.eval_every=1000", "--set", "online.eval_every=1000"]
    offline = dry_run(capsys, *flags, "--steps", "10000")
    online = dry_run(capsys, *flags, "--steps", "1000", "--set", "online.steps=3000",
                     "--set", "online.updates_per_step=3")
    assert cpu_hours(online) == pytest.approx(cpu_hours(offline), rel=0.02)
    assert "with an online phase: its updates are costed at the training rate" in online
    assert "online phase" not in offline


def finished_run(run_dir: Path, critic: str, actor: str, seed: int, *, steps: int, wall: float, setup: float,
                 eval_s: float, evaluations: int, episodes: int, envs: int) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"trainer": {"eval_episodes": episodes, "eval_envs": envs}}))
    (run_dir / "summary.json").write_text(json.dumps({
        "status": "finished", "critic": critic, "actor": actor, "dataset": BANDIT, "seed": seed, "steps": steps,
        "wall_time_s": wall, "setup_s": setup, "eval_s": eval_s, "evaluations": evaluations, "seeds_in_process": 1}))


def test_rates_of_the_sweeps_own_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished seed trained 1000 iterations in 10 s (12 s wall, 1 s setup, 1 s evaluating 2 × 2 rounds): the
    pending seed of 2000 iterations, evaluated every 500 over 20 episodes on 10 envs, costs
    1 + 2000 / 100 + 4 × 2 × 0.25 = 23 s plus the process's start-up; a partial one only its steps left."""
    monkeypatch.setattr(rates_table, "STARTUP_S", 2.0)
    run = RunOptions(preset="bandit", steps=2000, eval_every=500, eval_episodes=20)
    spec = SweepSpec(critics=("expectile",), actors=("gaussian-awr",), seeds=(0, 1, 2), run=run,
                     backend=BackendOptions(workers=2, cpus_per_cell=1, seeds_per_process=1))
    layout = SweepLayout(tmp_path / "sweep")
    cells = expand_cells(spec)
    finished_run(layout.run_dir(cells[0].key), "expectile", "gaussian-awr", 0, steps=1000, wall=12.0, setup=1.0,
                 eval_s=1.0, evaluations=2, episodes=20, envs=10)
    partial = layout.run_dir(cells[2].key)
    partial.mkdir(parents=True)
    (partial / "checkpoint.pt").write_bytes(b"")
    (partial / "train.jsonl").write_text(json.dumps({"step": 1500}) + "\n")  # 500 left, 1 evaluation left
    est = estimate(spec, cells, layout, validate_spec(spec, cells), make_backend(spec.backend, layout.root))
    assert set(est.cells) == {cells[1].key, cells[2].key}  # the finished cell costs nothing
    assert est.cells[cells[1].key].seconds == pytest.approx(20 + 4 * 2 * 0.25)
    assert est.cells[cells[2].key].seconds == pytest.approx(5 + 1 * 2 * 0.25)
    assert sorted(est.process_s) == pytest.approx([2 + 1 + 5.5, 2 + 1 + 22])
    assert est.cpu_hours == pytest.approx((8.5 + 25) / 3600) and est.wall_s == pytest.approx(25)
    assert est.cell_text(cells[1].key) == "23 s" and est.cell_text(cells[0].key) == ""
    assert "rates: 2 cells from finished runs in this sweep directory" in "\n".join(est.lines())


def test_the_table_and_its_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By preset; a preset the table lacks uses the default networks' rate; a pairing it lacks has no rate. On
    SLURM with a GPU per cell: GPU-hours, every job at once, and the requeues a too-short time limit needs."""
    monkeypatch.setattr(rates_table, "STARTUP_S", 0.0)
    monkeypatch.setattr(rates_table, "RATES", {("bandit", "expectile", "gaussian-awr"): (100.0, 0.0, 0.001),
                                               ("", "expectile", "gaussian-awr"): (10.0, 0.0, 0.001)})
    layout = SweepLayout(tmp_path / "sweep")
    for preset, per_cell in (("bandit", 3000 / 100), ("iql-locomotion", 3000 / 10)):
        run = RunOptions(preset=preset, steps=3000, eval_every=3000, eval_episodes=10)
        spec = SweepSpec(critics=("expectile", "td3"), actors=("gaussian-awr",), seeds=(0, 1), run=run,
                         backend=BackendOptions(name="slurm", gpus_per_cell=1, slurm_time=4, seeds_per_process=1))
        cells = expand_cells(spec)
        est = estimate(spec, cells, layout, validate_spec(spec, cells), make_backend(spec.backend, layout.root))
        known = [c for c in est.cells.values() if c.seconds is not None]
        assert len(known) == 2 and all(c.seconds == pytest.approx(per_cell + 0.001) for c in known)  # 1 round-step
        text = "\n".join(est.lines())
        assert est.gpu_hours == pytest.approx(est.cpu_hours) and est.wall_s == pytest.approx(per_cell + 0.001)
        assert "no rate for 2 cells (not counted): td3__gaussian-awr" in text and "GPU-hours" in text
        assert "if all run at once (slurm" in text and "a GPU is usually much faster" in text
        source = "default networks" if preset != "bandit" else "offrl's built-in table (measured"
        assert source in text
        assert ("will outlast the 4 min time limit" in text) == (per_cell > 240)


def test_makespan_and_durations() -> None:
    assert makespan([5, 4, 3, 3], 2) == 8  # longest first: 5+3 and 4+3
    assert makespan([5, 4, 3, 3], None) == 5 and makespan([], 3) == 0
    assert [duration(s) for s in (45, 720, 3.4 * 3600, 2.1 * 86400)] == ["45 s", "12 min", "3.4 h", "2.1 days"]
    assert [hours(h) for h in (0.003712, 12.54, 9132.4)] == ["0.00371", "12.5", "9,132"]
