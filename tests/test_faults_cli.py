"""The rest of the hostile pass: every verb with bad files and flags ends in one message (exit 2, no traceback),
names the value, loses nothing, and never hangs or allocates before refusing (docs/reliability.md)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from offrl.errors import DatasetError, OfflineRLError, RunDirError
from tests.helpers import run_cli
from tests.test_report import make_run

RUN = ["--preset", "bandit", "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "10", "--eval-episodes", "2",
       "--quiet"]


def _clean(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    out = tmp_path_factory.mktemp("cli") / "run"
    _clean(run_cli("run", *RUN, "--out", str(out)), 0)
    return out


# --- offrl eval --------------------------------------------------------------------------------------------------------
def test_eval_refuses_bad_seeds_devices_and_video_paths(trained: Path, tmp_path: Path) -> None:
    video = tmp_path / "video.mp4"
    video.write_text("not a folder")
    cases = [
        (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        (["--seed", str(10**30)], "--seed must be an integer in [0, 4294967295]"),
        (["--device", "tpu"], "Unknown device 'tpu'. Valid choices: auto, cpu, cuda, cuda:N."),
        (["--video", str(video)], "is a file; give a folder for the MP4s"),
        (["--episodes", "0"], "--episodes must be between 1 and 100,000"),
    ]
    import torch

    if not torch.cuda.is_available():
        cases.append((["--device", "cuda:3"], "no CUDA GPU is available"))
    for args, message in cases:
        proc = run_cli("eval", str(trained), "--episodes", "1", *args)
        _clean(proc)
        assert message in proc.stderr, (args, proc.stderr)
    assert video.read_text() == "not a folder"


# --- offrl report ------------------------------------------------------------------------------------------------------
def test_report_skips_non_finite_and_huge_steps_and_counts_a_run_given_twice_once(tmp_path: Path) -> None:
    from offrl.report.build import build_report

    root = tmp_path / "sweep"
    run = make_run(root, "expectile", "edp", "offrl/bandit/multimodal-v0", 0, [(10, 50.0), (20, 60.0)],
                   extra_lines=['{"step": Infinity, "normalized_score_100": 99}',
                                '{"step": 1e300, "normalized_score_100": 99}',
                                '{"step": -5, "normalized_score_100": 99}', '{"step": NaN}'])
    make_run(root, "expectile", "edp", "offrl/bandit/multimodal-v0", 1, [(10, 40.0), (20, 70.0)])
    report = build_report([root, run, root], reps=100)
    assert sorted(report.evals["step"].unique()) == [10, 20] and len(report.runs) == 2
    assert (str(run), "skipped 4 rows of eval.jsonl whose step is not a whole number in [0, 2^53] (inf, 1e+300, "
                      "-5.0)") in report.left_out
    assert sum("given twice; counted once" in why for _, why in report.left_out) == 3
    proc = run_cli("report", str(root), str(run), "--out", str(tmp_path / "report"), "--no-plots")
    _clean(proc, 0)
    assert "given twice; counted once" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--reps", "1000000000000"], "reps must be in [1, 100,000], got 1,000,000,000,000"),
    (["--reps", "0"], "reps must be in [1, 100,000]"),
    (["--seed", "-1"], "seed must be in [0, 4294967295], got -1"),
    (["--confidence", "nan"], "confidence must be in (0, 1), got nan"),
])
def test_report_refuses_absurd_bootstraps_at_once(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "sweep"
    for seed in range(3):
        make_run(root, "expectile", "edp", "offrl/bandit/multimodal-v0", seed, [(10, 50.0 + seed)])
    proc = run_cli("report", str(root), "--out", str(tmp_path / "report"), *args, timeout=60)
    _clean(proc)
    assert message in proc.stderr


# --- offrl data ---------------------------------------------------------------------------------------------------------
def test_data_make_refuses_absurd_budgets_and_seeds_before_allocating(empty_store: Path) -> None:
    for args, message in ((["--episodes", "100000000000"], "accepts at most 300,000"),
                          (["--episodes", "0"], "--episodes must be positive"),
                          (["--seed", "-5"], "--seed must be an integer in [0, 4294967295], got -5")):
        proc = run_cli("data", "make", "offrl/bandit/multimodal-v0", *args, timeout=60)
        _clean(proc)
        assert message in proc.stderr
    assert not any(empty_store.iterdir())


def test_a_store_path_that_is_a_file_is_one_message(tmp_path: Path, trained: Path) -> None:
    store = tmp_path / "store"
    store.write_text("a file")
    for argv in (["data", "list"], ["data", "make", "offrl/bandit/multimodal-v0", "--quick"],
                 ["run", *RUN, "--out", str(tmp_path / "r")], ["eval", str(trained), "--episodes", "1"]):
        proc = run_cli(*argv, env={"MINARI_DATASETS_PATH": str(store)})
        _clean(proc)
        assert f"MINARI_DATASETS_PATH={store} is a file, not a folder" in proc.stderr, argv
    assert store.read_text() == "a file" and not (tmp_path / "r").exists()


# --- datasets whose contents are not what they say ------------------------------------------------------------------
def _write(dataset_id: str, episodes: list[dict], act_space: gym.spaces.Box | None = None) -> None:
    from minari.data_collector import EpisodeBuffer

    from offrl.datagen.writer import write_minari_dataset

    buffers = [EpisodeBuffer(observations=e["obs"], actions=e["act"], rewards=e["rew"], terminations=e["term"],
                             truncations=e["trunc"], infos={}) for e in episodes]
    write_minari_dataset(dataset_id, buffers, observation_space=gym.spaces.Box(-10, 10, (3,), np.float32),
                         action_space=act_space or gym.spaces.Box(-1, 1, (2,), np.float32))


def _episode(T: int, rng: np.random.Generator, scale: float = 1.0, term: object = None, act_shape: tuple = (2,)) -> dict:
    return {"obs": rng.standard_normal((T + 1, 3)).astype(np.float32),
            "act": (rng.uniform(-1, 1, (T, *act_shape)) * scale).astype(np.float32),
            "rew": rng.standard_normal(T), "term": np.zeros(T, bool) if term is None else term,
            "trunc": np.array([False] * (T - 1) + [True]) if T else np.zeros(0, bool)}


def test_datasets_whose_contents_contradict_them_are_refused_or_warned(
        empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.data.dataset import load_offline_dataset

    rng = np.random.default_rng(0)
    _write("test/float-terms/x-v0", [_episode(5, rng, term=np.array([0, 0.5, 0, 0, 1.0])), _episode(5, rng)])
    with pytest.raises(DatasetError, match="episode 0 has terminations that are not booleans \\(0.5 at step 1\\)"):
        load_offline_dataset("test/float-terms/x-v0")
    _write("test/far-outside/x-v0", [_episode(5, rng, scale=100.0)])
    with pytest.raises(DatasetError, match="actions far outside its action space"):
        load_offline_dataset("test/far-outside/x-v0")
    _write("test/cube-actions/x-v0", [_episode(4, rng, act_shape=(2, 2, 2))],
           act_space=gym.spaces.Box(-1, 1, (2, 2, 2), np.float32))
    with pytest.raises(DatasetError, match="offrl needs one flat action vector per step"):
        load_offline_dataset("test/cube-actions/x-v0")
    capsys.readouterr()
    _write("test/slightly-outside/x-v0", [_episode(6, rng, scale=1.2), _episode(4, rng)])
    ds = load_offline_dataset("test/slightly-outside/x-v0")
    assert "actions lie outside the action space by up to" in capsys.readouterr().err
    assert len(ds.arrays.actions) == 10 and np.abs(ds.arrays.actions).max() < 1.0


def test_episodes_without_a_transition_are_skipped_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """(Minari cannot write such an episode; other writers can: the reader is given them directly.)"""
    from types import SimpleNamespace

    from offrl.data.dataset import flatten_episodes

    rng = np.random.default_rng(1)
    episodes = [_episode(3, rng), _episode(0, rng), _episode(2, rng)]
    fake = SimpleNamespace(spec=SimpleNamespace(dataset_id="test/empty-episode/x-v0"), iterate_episodes=lambda: [
        SimpleNamespace(observations=e["obs"][:len(e["rew"]) + 1], actions=e["act"], rewards=e["rew"],
                        terminations=e["term"], truncations=e["trunc"]) for e in episodes])
    arrays = flatten_episodes(fake)
    assert len(arrays.actions) == 5 and arrays.episode_starts.tolist() == [0, 3]
    assert "skipped 1 episode without a transition" in capsys.readouterr().err


# --- plugins ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, message", [
    ("import sys\nsys.exit(3)\n", "Plugin module 'bad_plugin' called sys.exit(3) while importing."),
    ("import offrl.critics\n\n@offrl.critics.register('expectile')\nclass Mine:\n    pass\n",
     "critic 'expectile' (bad_plugin.Mine) needs a Config attribute that is a dataclass"),
    ("import offrl.critics\nfrom offrl.critics.expectile import ExpectileCritic\n\n@offrl.critics.register('expectile')\n"
     "class Mine(ExpectileCritic):\n    pass\n",
     "a critic named 'expectile' is already registered (offrl.critics.expectile.ExpectileCritic); register "
     "bad_plugin.Mine under another name"),
    ("import offrl.actors\noffrl.actors.register('mine')(lambda: None)\n", "actor 'mine' must be a class"),
])
def test_a_plugin_that_exits_or_registers_a_malformed_component_is_one_message(
        tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad_plugin.py").write_text(source)
    proc = run_cli("run", "--plugin", "bad_plugin", *RUN, "--out", str(tmp_path / "r"),
                   env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[1]}"})
    _clean(proc)
    assert message in proc.stderr and not (tmp_path / "r").exists()


# --- commands that must not hang ---------------------------------------------------------------------------------------
def test_huge_seed_ranges_are_refused_at_once(tmp_path: Path) -> None:
    for argv in (["run", *RUN, "--seeds", "0-1000000000000", "--out", str(tmp_path / "r")],
                 ["sweep", "--seeds", "0-1000000000000", "--out", str(tmp_path / "s"), "--dry-run"],
                 ["sweep", "--num-seeds", "1000000000000", "--out", str(tmp_path / "s"), "--dry-run"]):
        proc = run_cli(*argv, timeout=30)
        _clean(proc)
        assert "seed" in proc.stderr.lower()
    assert not list(tmp_path.iterdir())


def test_a_sweep_json_that_is_damaged_is_named(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    for text in ('{"spec": {"critics": 5}}', "[1]", '{"spec": {}, "cells": [3]}'):
        (out / "sweep.json").write_text(text)
        proc = run_cli("sweep", "--steps", "5", "--out", str(out), "--no-live", timeout=60)
        _clean(proc)
        assert f"'{out / 'sweep.json'}' is damaged" in proc.stderr


def test_resume_of_something_that_is_not_a_run(tmp_path: Path, trained: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    for target, message in ((tmp_path / "missing", "holds no offrl run"), (file, "holds no offrl run")):
        proc = run_cli("run", "--resume", str(target))
        _clean(proc)
        assert message in proc.stderr
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "summary.json").unlink()
    config = json.loads((run / "config.json").read_text())
    config["trainer"]["steps"] = "many"
    (run / "config.json").write_text(json.dumps(config))
    proc = run_cli("run", "--resume", str(run))
    _clean(proc)
    assert "config.json' holds a configuration this offrl cannot use: trainer.steps='many'" in proc.stderr
    with pytest.raises(OfflineRLError):
        import offrl

        offrl.resume(run)
    with pytest.raises(RunDirError, match="does not exist"):
        import offrl

        offrl.load_policy(tmp_path / "missing")
