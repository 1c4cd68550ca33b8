"""The shared trainer end to end: determinism, resume after a kill, Ctrl-C, bad input, learning."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import offrl
from tests.helpers import TINY, read_jsonl, run_cli

RUN = ["run", "--steps", "600", "--eval-every", "200", "--eval-episodes", "20", "--save-every", "100",
       "--set", "trainer.log_every=50", "--quiet", *TINY]


def _strip_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _logs(run_dir: Path) -> tuple[list[dict], list[dict]]:
    return _strip_time(read_jsonl(run_dir / "train.jsonl")), _strip_time(read_jsonl(run_dir / "eval.jsonl"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    proc = run_cli(*RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_cli_run_end_to_end(reference_run: Path) -> None:
    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 600
    train, evals = _logs(reference_run)
    assert [r["step"] for r in train] == list(range(50, 601, 50))
    assert [r["step"] for r in evals] == [200, 400, 600]
    assert all(r["episodes"] == 20 and r["normalized_score_100"] is not None for r in evals)
    cfg = json.loads((reference_run / "config.json").read_text())
    assert cfg["critic"]["name"] == "expectile" and cfg["critic"]["hidden_dims"] == [32, 32]
    assert summary["final_score_100"] == pytest.approx(evals[-1]["normalized_score_100"])


def test_same_seed_same_metrics(reference_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert run_cli(*RUN, "--out", str(out)).returncode == 0
    assert _logs(out) == _logs(reference_run)
    other = tmp_path / "seed1"
    assert run_cli(*RUN, "--seed", "1", "--out", str(other)).returncode == 0
    assert _logs(other)[0] != _logs(reference_run)[0]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "offrl", *RUN, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("run made no progress")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_and_resumed_equals_uninterrupted(how: str, reference_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_rows(out / "train.jsonl", 5, proc)  # past step 250, so past the step-200 checkpoint
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=60)
    assert not (out / "summary.json").exists(), "the run finished before it could be interrupted"
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: checkpoint at the current iteration, a clear message, exit 130
        assert proc.returncode == 130, stderr
        assert "checkpoint saved" in stderr and "Traceback" not in stderr
    assert (out / "checkpoint.pt").exists()
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert _logs(out) == _logs(reference_run)


def test_resume_of_finished_run_is_a_no_op(reference_run: Path) -> None:
    before = (reference_run / "train.jsonl").read_text()
    proc = run_cli("run", "--resume", str(reference_run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (reference_run / "train.jsonl").read_text() == before


def _tree_hash(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--critic", "expectle"], "Unknown critic 'expectle'. Did you mean 'expectile'?"),
        (["--actor", "gaussian"], "Unknown actor 'gaussian'"),
        (["--dataset", "offrl/nope/missing-v0"], "Dataset 'offrl/nope/missing-v0' is not in the local Minari store"),
        (["--set", "critic.tua=0.9"], "Did you mean 'tau'?"),
        (["--set", "critic.tau=1.5"], "critic.tau must be in (0, 1), got 1.5"),
        (["--set", "data.reward=scaled"], "Unknown reward preprocessing (data.reward) 'scaled'"),
        (["--steps", "ten"], "trainer.steps='ten' is not a valid integer"),
        (["--preset", "iql-locomotio"], "Did you mean 'iql-locomotion'?"),
    ],
)
def test_bad_input_gives_one_clear_message(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_cli("run", "--steps", "10", "--quiet", *args, "--out", str(tmp_path / "r")) if "--steps" not in args \
        else run_cli("run", "--quiet", *args, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--steps", "10", "--quiet", "--out", str(blocker / "run"))
    assert proc.returncode == 2 and "Cannot write to run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_errors_leave_the_run_untouched(reference_run: Path, tmp_path: Path) -> None:
    proc = run_cli("run", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "holds no offrl run" in proc.stderr
    before = _tree_hash(reference_run)
    proc = run_cli("run", "--resume", str(reference_run), "--set", "critic.tau=0.9")
    assert proc.returncode == 2
    assert "critic.tau: run has 0.7, you asked 0.9" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", "--steps", "10", "--out", str(reference_run))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    assert _tree_hash(reference_run) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu(tmp_path: Path) -> None:
    proc = run_cli("run", "--steps", "10", "--device", "cuda", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--device cuda was requested but no CUDA GPU is available" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_bad_data_via_cli(copy_store: Path, tmp_path: Path) -> None:
    import gymnasium as gym
    import numpy as np

    from tests.helpers import episode, write_episodes

    ep = episode(3, 2, 2, np.random.default_rng(0), True)
    ep["observations"][1, 0] = np.nan
    write_episodes("test/bad/nan-v0", [ep], gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                   gym.spaces.Box(-1, 1, (2,), np.float32))
    proc = run_cli("run", "--steps", "10", "--dataset", "test/bad/nan-v0", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "contains NaN/inf" in proc.stderr and "Traceback" not in proc.stderr


def test_iql_learns_on_the_bandit_beyond_random(tmp_path: Path) -> None:
    """IQL with the bandit preset: the AWR Gaussian lands on the midpoint mode, far above random (0)."""
    cfg = offrl.make_config(preset="bandit", actor="gaussian-awr", steps=2000)
    result = offrl.train(cfg, tmp_path / "iql")
    assert result.finished
    assert result.summary["final_score_100"] > 10.0
