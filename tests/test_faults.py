"""Fault injection: nothing lost, nothing silent (docs/reliability.md lists what is promised).

Each case ends as one clear message — non-zero exit, no traceback — with nothing on disk corrupted or lost:
divergence, out-of-range settings, damaged or hostile config files, kills at every point of a checkpoint
write, concurrent writers, write errors mid-run.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import offrl
from offrl.errors import RunDirError
from offrl.trainer.api import load_run_config, start
from offrl.rundir import read_jsonl
from tests.helpers import run_cli

FAULTS = Path(__file__).parent / "faultinject"
BANDIT = ["--preset", "bandit", "--eval-episodes", "10"]


def _clean(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _tree(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(d)).encode() + p.read_bytes() + str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


# --- divergence -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("actor", ["ddpg-bc", "gaussian-awr", "diffusion-resample"])
def test_divergence_stops_the_run_names_step_and_quantity_and_keeps_the_last_good_checkpoint(
        actor: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", *BANDIT, "--actor", actor, "--steps", "400", "--eval-every", "10", "--save-every", "5",
                   "--set", "trainer.log_every=5", "--set", "critic.q_lr=1e6", "--set", "critic.v_lr=1e6",
                   "--out", str(out), "--quiet")
    _clean(proc, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps"] < 400
    assert f"step {summary['steps']}:" in summary["diverged"]
    assert f"seed 0 diverged at step {summary['steps']}" in proc.stderr
    assert "nan" in summary["diverged"].lower() or "non-finite" in summary["diverged"] or "inf" in summary["diverged"]
    # no score after the divergence, and every reported score is a number
    for row in read_jsonl(out / "eval.jsonl"):
        assert row["step"] < summary["steps"] and math.isfinite(row["normalized_score_100"])
    # the last checkpoint is a good one (finite), never overwritten by a diverged state
    if (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=False)
        assert state["step"] < summary["steps"] and state["step"] == summary["last_checkpoint_step"]
        tensors = state["learner"]["state"].values()
        assert all(torch.isfinite(t).all() for t in tensors)
    # a diverged run has ended: resuming it changes nothing
    before = _tree(out)
    _clean(run_cli("run", "--resume", str(out), "--quiet"), 3)
    assert _tree(out) == before


# --- settings out of range, hostile config files ---------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "trainer.seed must be in [0, 4294967295], got -1"),
    (["--threads", "100000"], "trainer.threads must be between 0"),
    (["--eval-episodes", "1e11"], "trainer.eval_episodes must be at most 100,000"),
    (["--steps", "1e400"], "trainer.steps='1e400' is not a valid integer"),
    (["--set", "critic.batch_size=1e10"], "critic.batch_size=10000000000"),
    (["--set", "critic.hidden_dims=[1e8,1e8]"], "critic.hidden_dims=[100000000, 100000000]"),
    (["--set", "critic.hidden_dims=[-5,64]"], "critic.hidden_dims must be positive, got [-5, 64]"),
    (["--set", "trainer.tensorboard=true"], "trainer.tensorboard=true needs tensorboard"),
])
def test_bad_settings_fail_before_anything_is_written(args: list[str], message: str, tmp_path: Path) -> None:
    env = None
    if "tensorboard" in message:  # tensorboard is installed with [test]: hide it, as on a machine without it
        hidden = tmp_path / "hide"
        (hidden / "tensorboard").mkdir(parents=True)
        (hidden / "tensorboard" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
        env = {"PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("run", *BANDIT, "--steps", "5", *args, "--out", str(tmp_path / "r"), "--quiet", env=env)
    _clean(proc)
    assert message in proc.stderr
    assert not (tmp_path / "r").exists()


def test_hostile_config_files(tmp_path: Path) -> None:
    cases = {
        "list.json": (b"[1, 2]", "must hold a table of sections"),
        "latin1.toml": ('[critic]\nname = "caf\u00e9"\n'.encode("latin-1"), "is not UTF-8 text"),
        "huge.toml": (b"[trainer]\nsteps = 1e400\n", "trainer.steps=inf is not a valid integer"),
        "conflict.toml": (b'preset = "bandit"\n', "names preset 'bandit' but --preset is 'iql-locomotion'"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        extra = ["--preset", "iql-locomotion"] if name == "conflict.toml" else []
        proc = run_cli("run", "--config", str(path), *extra, "--out", str(tmp_path / "out" / name))
        _clean(proc)
        assert message in proc.stderr, (name, proc.stderr)


def test_a_config_files_preset_is_applied_and_recorded(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "bandit"\n[actor]\nname = "ddpg-bc"\n')
    out = tmp_path / "r"
    _clean(run_cli("run", "--config", str(cfg), "--steps", "20", "--eval-every", "20", "--eval-episodes", "2",
                   "--out", str(out), "--quiet"), 0)
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "bandit" and saved["critic"]["hidden_dims"] == [64, 64]  # the preset's sizes


def test_config_json_is_strict_json_and_round_trips_infinity(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _clean(run_cli("run", *BANDIT, "--critic", "exponential", "--actor", "ddpg-bc", "--steps", "10",
                   "--eval-every", "10", "--set", "critic.clip=inf", "--out", str(out), "--quiet"), 0)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    for f in ("config.json", "summary.json"):
        json.loads((out / f).read_text(), parse_constant=no_constants)
    assert json.loads((out / "config.json").read_text())["critic"]["clip"] == "inf"
    assert load_run_config(out).critic_cfg.clip == math.inf


# --- damaged files ----------------------------------------------------------------------------------------------
def test_torn_summary_and_damaged_config(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _clean(run_cli("run", *BANDIT, "--actor", "ddpg-bc", "--steps", "40", "--eval-every", "20", "--save-every",
                   "20", "--out", str(out), "--quiet"), 0)
    (out / "summary.json").write_text('{"status": "fini')  # torn by a crash: the run is resumed, not trusted
    _clean(run_cli("run", "--resume", str(out), "--quiet"), 0)
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    (out / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    proc = run_cli("run", "--resume", str(out), "--quiet")
    _clean(proc)
    assert "config.json' is damaged" in proc.stderr


def test_resuming_an_ended_run_writes_nothing(tmp_path: Path) -> None:
    """(What a read-only run directory needs: tested by content and modification times, since tests run as root.)"""
    out = tmp_path / "r"
    _clean(run_cli("run", *BANDIT, "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "20", "--out", str(out),
                   "--quiet"), 0)
    before = _tree(out)
    _clean(run_cli("run", "--resume", str(out), "--device", "cpu", "--quiet"), 0)
    assert _tree(out) == before


# --- kills at every point of a checkpoint write ------------------------------------------------------------------
KILL_RUN = ["run", *BANDIT, "--actor", "gaussian-awr", "--steps", "60", "--eval-every", "30", "--save-every", "10",
            "--set", "trainer.log_every=10", "--set", "critic.hidden_dims=[16,16]", "--set", "actor.hidden_dims=[16,16]",
            "--seeds", "0,1", "--quiet"]


def _logs(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for f in ("train.jsonl", "eval.jsonl")
            for r in read_jsonl(run_dir / f)]


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    out = tmp_path_factory.mktemp("kill") / "ref"
    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    _clean(run_cli(*KILL_RUN, "--out", str(out)), 0)
    return out


@pytest.mark.parametrize("at", [1, 2, 3, 4, 5, 6, 8, 11])
def test_kill_inside_a_checkpoint_write_then_resume_equals_uninterrupted(at: int, kill_reference: Path,
                                                                         tmp_path: Path) -> None:
    """SIGKILL at the at-th link/rename of the group checkpoint protocol (two seeds: temporaries, hard link of the
    previous checkpoint, rename), then resume: every checkpoint readable, logs as if never interrupted."""
    out = tmp_path / "run"
    env = {"PYTHONPATH": os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]), "OFFRL_KILL_AT": str(at)}
    proc = run_cli(*KILL_RUN, "--out", str(out), env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    _clean(resumed, 0)
    for seed in ("seed0", "seed1"):
        assert _logs(out / seed) == _logs(kill_reference / seed)
        assert not list((out / seed).glob(".*.tmp")), "temporary files left behind"


# --- concurrent writers -----------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = [sys.executable, "-m", "offrl", "run", *BANDIT, "--actor", "ddpg-bc", "--steps", "3000", "--eval-every",
            "3000", "--out", str(out), "--quiet"]
    first = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / "config.json").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        second = run_cli("run", *BANDIT, "--actor", "ddpg-bc", "--steps", "3000", "--out", str(out), "--quiet")
        _clean(second)
        assert "already holds a run" in second.stderr or f"pid {first.pid}" in second.stderr
        resume = run_cli("run", "--resume", str(out), "--quiet")
        _clean(resume)
        assert f"in use by another offrl process (pid {first.pid})" in resume.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert [r["step"] for r in read_jsonl(out / "train.jsonl")] == sorted({r["step"] for r in
                                                                           read_jsonl(out / "train.jsonl")})


# --- write errors mid-run -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["log", "checkpoint"])
def test_a_write_error_mid_run_says_what_failed_and_that_the_checkpoint_is_intact(
        what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl import rundir
    from offrl.trainer import checkpoint

    cfg = offrl.make_config(preset="bandit", actor="ddpg-bc", steps=100,
                            overrides={"trainer.save_every": 20, "trainer.log_every": 10, "trainer.eval_every": 100})
    trainer = start(cfg, tmp_path / "r")
    calls = {"n": 0}
    if what == "log":
        original = rundir.append_jsonl

        def failing(path: Path, row: dict) -> None:
            if row["step"] >= 50:
                raise PermissionError(13, "Permission denied", str(path))
            original(path, row)

        monkeypatch.setattr(rundir, "append_jsonl", failing)
    else:
        original_save = torch.save

        def failing_save(obj: object, f: object) -> None:
            calls["n"] += 1
            if calls["n"] >= 3:
                raise OSError(28, "No space left on device")
            original_save(obj, f)

        monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(RunDirError) as err:
        trainer.run()
    text = str(err.value)
    assert ("Could not write" in text and "intact" in text), text
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 40  # the last good checkpoint, readable
    assert not list((tmp_path / "r").glob(".*.tmp"))
