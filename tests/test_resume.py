"""Resume after crashes: multi-seed groups, compiled runs, damaged and old checkpoints."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import read_jsonl, run_cli

GROUP_RUN = ["run", "--preset", "bandit", "--actor", "gaussian-awr", "--seeds", "0,2", "--steps", "400",
             "--eval-every", "200", "--eval-episodes", "10", "--save-every", "50", "--set", "trainer.log_every=25",
             "--quiet"]


def _logs(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"}
            for f in ("train.jsonl", "eval.jsonl") for r in read_jsonl(run_dir / f)]


def _close(a: list[dict], b: list[dict]) -> None:
    """Equal up to float tolerance (a seed alone vs in a group: batched kernels sum in another order)."""
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for x, y in zip(a, b):
        for k, v in x.items():
            assert v == (pytest.approx(y[k], rel=1e-5, abs=1e-7) if isinstance(v, float) else y[k]), k


def _rolled_back(src: Path, dst: Path) -> Path:
    """A copy of a finished run as if killed after its next-to-last checkpoint."""
    import shutil

    shutil.copytree(src, dst)
    for name in ("summary.json", "checkpoint.pt", "run.lock"):
        (dst / name).unlink(missing_ok=True)
    os.replace(dst / "checkpoint.prev.pt", dst / "checkpoint.pt")
    return dst


@pytest.fixture(scope="module")
def group_reference(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    out = tmp_path_factory.mktemp("group") / "ref"
    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    proc = run_cli(*GROUP_RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_killed_multi_seed_run_resumes_exactly(group_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "offrl", *GROUP_RUN, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "seed2" / "train.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 6):  # past the step-100 checkpoint
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (out / "seed0" / "summary.json").exists(), "the run ended before it could be killed"
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    for seed in ("seed0", "seed2"):
        assert _logs(out / seed) == _logs(group_reference / seed)


def test_one_seed_of_a_group_continues_alone(group_reference: Path, tmp_path: Path) -> None:
    """A seed's directory is an ordinary run: its checkpoint (step 350 of 400) continues as a solo run."""
    seed_dir = _rolled_back(group_reference / "seed2", tmp_path / "seed2")
    proc = run_cli("run", "--resume", str(seed_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    _close(_logs(seed_dir), _logs(group_reference / "seed2"))


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(group_reference: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(group_reference / "seed0", run)
    (run / "summary.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"\0" * 100)  # zeroed by a crash or a full disk
    proc = run_cli("run", "--resume", str(run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    _close(_logs(run), _logs(group_reference / "seed0"))  # continued from checkpoint.prev.pt (step 350)
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "checkpoint.prev.pt").write_bytes(b"garbage")
    (run / "summary.json").unlink()
    proc = run_cli("run", "--resume", str(run), "--quiet")
    assert proc.returncode == 2 and "No usable checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert "checkpoint.prev.pt: unreadable (damaged" in proc.stderr


def test_checkpoint_from_before_the_learner_is_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "old"
    proc = run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "20",
                   "--eval-episodes", "2", "--out", str(run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    (run / "summary.json").unlink()
    (run / "checkpoint.prev.pt").unlink(missing_ok=True)
    torch.save({"step": 20, "critic": {}, "actor": {}}, run / "checkpoint.pt")  # the pre-learner layout
    proc = run_cli("run", "--resume", str(run), "--quiet")
    assert proc.returncode == 2 and "earlier offrl" in proc.stderr and "format 1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_options_apply_or_are_refused(group_reference: Path, tmp_path: Path) -> None:
    proc = run_cli("run", "--resume", str(group_reference), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "--out cannot be combined with --resume" in proc.stderr
    proc = run_cli("run", "--resume", str(group_reference), "--steps", "999")
    assert proc.returncode == 2 and "trainer.steps: run has 400, you asked 999" in proc.stderr
    proc = run_cli("run", "--resume", str(group_reference), "--threads", "1", "--compile", "off", "--quiet")
    assert proc.returncode == 0, proc.stderr  # how it runs may change (a finished run: nothing to do)


@pytest.mark.slow
def test_compiled_run_resumes_exactly(tmp_path: Path) -> None:
    """torch.compile on CPU is deterministic: a compiled run killed and resumed equals the uninterrupted one,
    and its metrics agree with eager mode to float tolerance."""
    args = ["run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "120", "--eval-every", "60",
            "--eval-episodes", "5", "--save-every", "30", "--set", "trainer.log_every=30", "--quiet"]
    ref = run_cli(*args, "--compile", "on", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    eager = run_cli(*args, "--compile", "off", "--out", str(tmp_path / "eager"))
    assert eager.returncode == 0, eager.stderr
    for a, b in zip(read_jsonl(tmp_path / "ref" / "train.jsonl"), read_jsonl(tmp_path / "eager" / "train.jsonl")):
        for k in a:
            if k not in ("step", "time_s"):
                assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-5), k
    run = _rolled_back(tmp_path / "ref", tmp_path / "killed")  # back to its step-90 checkpoint
    resumed = run_cli("run", "--resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert _logs(run) == _logs(tmp_path / "ref")
