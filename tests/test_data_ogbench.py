"""OGBench single-task datasets: relabelling vs. OGBench's own code, Minari round trip, seeding, resume, workers."""
from __future__ import annotations

import errno
import functools
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ogbench")

from offrl.data.dataset import load_offline_dataset  # noqa: E402
from offrl.datagen.parallel import run_tasks  # noqa: E402
from offrl.datagen.recipes import ogbench as recipe  # noqa: E402
from offrl.datagen.recipes.ogbench_oracle import OracleEpisodes  # noqa: E402
from offrl.datagen.recipes.ogbench_relabel import read_targets, relabel, task_targets  # noqa: E402
from offrl.envs.ogbench import MANIP_ENVS, make_task_env  # noqa: E402

SCENE = "offrl/ogbench/scene-play-singletask-task2-v0"
CUBE = "offrl/ogbench/cube-single-play-singletask-task2-v0"
TINY = {"episodes": 3, "episode_length": 40}


def _arrays(dataset_id: str) -> dict[str, np.ndarray]:
    import minari

    eps = list(minari.load_dataset(dataset_id).iterate_episodes())
    return {k: np.concatenate([getattr(e, k) for e in eps]) for k in
            ("observations", "actions", "rewards", "terminations", "truncations")}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a tiny scene task-2 dataset (3 episodes x 40 transitions), made once."""
    root = tmp_path_factory.mktemp("ogbench")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    try:
        recipe.make(SCENE, seed=0, **TINY)
    finally:
        mp.undo()
    return root


# --- relabelling ----------------------------------------------------------------------------------

def _probe_states(ep: Any, targets: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """qpos / button states to relabel: a real oracle episode plus states around the task's targets
    (every sub-goal exactly met, and each one perturbed inside and outside its tolerance)."""
    qpos = [ep.qpos]
    buttons = [ep.button_states]
    base_q = ep.qpos[:1].repeat(40, axis=0).astype(np.float64)
    base_b = ep.button_states[:1].repeat(40, axis=0)
    for i, xyz in enumerate(targets.cube_xyzs):
        base_q[:, 14 + 7 * i: 17 + 7 * i] = xyz
    if targets.button_states:
        base_b[:] = targets.button_states
    if targets.drawer_pos is not None:
        d = 14 + 7 * len(targets.cube_xyzs) + len(targets.button_states)
        base_q[:, d], base_q[:, d + 1] = targets.drawer_pos, targets.window_pos
    # rows 1..: random perturbations of a few coordinates / button flips, some within tolerance
    for r in range(1, 40):
        cols = rng.choice(np.arange(14, base_q.shape[1]), size=2, replace=False)
        base_q[r, cols] += rng.choice([0.01, 0.03, 0.05, 0.2]) * rng.choice([-1, 1])
        if base_b.shape[1] and rng.random() < 0.5:
            j = rng.integers(base_b.shape[1])
            base_b[r, j] = 1 - base_b[r, j]
    qpos.append(base_q.astype(np.float32))
    buttons.append(base_b)
    b = np.concatenate(buttons)
    return np.concatenate(qpos), (b if b.shape[1] else None)


@pytest.mark.parametrize("env_name", list(MANIP_ENVS))
def test_relabel_matches_ogbench_relabel_utils(env_name: str) -> None:
    """offrl's relabelling equals ogbench.relabel_utils.relabel_dataset (imported from the installed
    wheel) on the same qpos / button states, for all five tasks."""
    from ogbench.relabel_utils import relabel_dataset

    env = MANIP_ENVS[env_name]
    ep = OracleEpisodes(env, 60).play(seed=1, index=0)
    rng = np.random.default_rng(0)
    complete_seen = 0
    for task_id in range(1, 6):
        task_env = make_task_env(env, task_id)
        targets = read_targets(task_env, env, task_id)
        qpos, buttons = _probe_states(ep, targets, rng)
        ours_r, ours_term = relabel(targets, qpos, buttons)
        data: dict[str, Any] = {"qpos": qpos}
        if buttons is not None:
            data["button_states"] = buttons.astype(np.int64)
        relabel_dataset(f"{env_name}-singletask-task{task_id}-v0", task_env, data)
        np.testing.assert_array_equal(ours_r.astype(np.float32), data["rewards"])
        np.testing.assert_array_equal(1.0 - ours_term.astype(np.float32), data["masks"])
        assert ours_r.max() <= 0 and len(np.unique(ours_r)) > 1
        complete_seen += int(ours_term.sum())
    assert complete_seen > 0  # the probes do reach completed tasks


# --- the dataset ----------------------------------------------------------------------------------

def test_tiny_dataset_round_trips_through_minari(tiny_scene: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_scene))
    ds = load_offline_dataset(SCENE)
    n = TINY["episodes"] * TINY["episode_length"]
    assert ds.arrays.observations.shape == (n, 40) and ds.arrays.actions.shape == (n, 5)
    assert (ds.arrays.rewards <= 0).all() and ds.arrays.rewards.min() >= -5
    # what evaluation needs, declared by the dataset and exposed on OfflineDataset
    meta = ds.metadata
    assert meta["offrl_primary_metric"] == "success_rate" and meta["offrl_success_key"] == "success"
    assert meta["offrl_success_timing"] == "post" and meta["offrl_eval_episode_steps"] == 750
    assert meta["offrl_reward_mode"] == "none"
    assert (ds.primary_metric, ds.success_key, ds.success_timing, ds.eval_episode_steps) == ("success_rate", "success", "post", 750)
    assert ds.reward_mode == "none" and ds.reward_mode_source == "dataset metadata"
    assert ds.normalized_score_100(np.zeros(3)) is None and "success rate" in ds.score_unavailable
    assert meta["offrl_recipe"]["task"]["num_subgoals"] == 5 and meta["offrl_recipe"]["budget"] == TINY
    env = ds.make_env()
    assert env.spec.max_episode_steps == 750 and env.unwrapped._success_timing == "post"
    assert env.unwrapped._reward_task_id == 2
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(5, np.float32))
    assert info["success"] in (True, False)
    env.close()


def test_terminals_mark_the_states_that_complete_the_task(tiny_scene: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the scene in its task-2 goal state at two steps of a raw episode: the remade dataset has
    reward 0 and a termination exactly there, and the episode goes on (truncated only at its end)."""
    import shutil

    root = tmp_path / "store"
    shutil.copytree(tiny_scene, root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    targets = task_targets("scene", 2)
    store = recipe.raw_store(MANIP_ENVS["scene"], 0, TINY["episode_length"])
    arrays = store.read(1)
    d = 14 + 7 + 2
    for t in (5, 6):
        arrays["qpos"][t, 14:17] = targets.cube_xyzs[0]
        arrays["qpos"][t, d], arrays["qpos"][t, d + 1] = targets.drawer_pos, targets.window_pos
        arrays["button_states"][t] = targets.button_states
    store.write(1, arrays)
    recipe.make(SCENE, seed=0, replace=True, **TINY)
    ds = load_offline_dataset(SCENE)
    T = TINY["episode_length"]
    done = np.flatnonzero(ds.arrays.terminals)
    assert done.tolist() == [T + 5, T + 6]
    assert (ds.arrays.rewards[done] == 0).all() and (ds.arrays.rewards[np.setdiff1d(np.arange(3 * T), done)] < 0).all()
    assert np.flatnonzero(ds.arrays.timeouts).tolist() == [T - 1, 2 * T - 1, 3 * T - 1]
    assert ds.arrays.episode_starts.tolist() == [0, T, 2 * T]


def test_seeded_generation_is_reproducible(tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "again"))
    recipe.make(SCENE, seed=0, **TINY)
    again = _arrays(SCENE)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_scene))
    assert _same(again, _arrays(SCENE))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "other"))
    recipe.make(SCENE, seed=1, **TINY)
    assert not np.array_equal(_arrays(SCENE)["actions"], again["actions"])


def test_interrupted_generation_resumes_without_redoing_episodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "whole"))
    budget = {"episodes": 5, "episode_length": 30}
    recipe.make(CUBE, seed=3, **budget)
    whole = _arrays(CUBE)

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "resumed"))
    played: list[int] = []
    real_play = OracleEpisodes.play

    def play(self: OracleEpisodes, seed: int, index: int) -> Any:
        if len(played) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the 4th episode
        played.append(index)
        return real_play(self, seed, index)

    monkeypatch.setattr(OracleEpisodes, "play", play)
    with pytest.raises(KeyboardInterrupt):
        recipe.make(CUBE, seed=3, **budget)
    store = recipe.raw_store(MANIP_ENVS["cube-single"], 3, 30)
    assert store.done() == {0, 1, 2}
    mtimes = {i: store.path(i).stat().st_mtime_ns for i in range(3)}
    played.clear()
    monkeypatch.setattr(OracleEpisodes, "play", lambda self, seed, index: (played.append(index), real_play(self, seed, index))[1])
    recipe.make(CUBE, seed=3, **budget)
    assert played == [3, 4]  # only the missing episodes were made
    assert {i: store.path(i).stat().st_mtime_ns for i in range(3)} == mtimes
    assert _same(_arrays(CUBE), whole)
    assert not list(store.root.glob(".offrl-*"))


def test_two_workers_equal_one(tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "two"))
    recipe.make(SCENE, seed=0, workers=2, **TINY)
    meta = json.loads((tmp_path / "two" / SCENE / "data/metadata.json").read_text())
    assert meta["offrl_recipe"]["workers"] == "2 worker processes"
    two = _arrays(SCENE)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_scene))
    assert _same(two, _arrays(SCENE))


# --- worker pools that cannot start ---------------------------------------------------------------

def _square(i: int) -> int:
    return i * i


def _square_or_die(i: int) -> int:
    if i == 2 and multiprocessing.parent_process() is not None:
        os._exit(3)  # a worker killed while working (out of memory, SIGKILL)
    return i * i


def test_pool_that_cannot_spawn_falls_back_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    results: dict[int, int] = {}
    notices: list[str] = []
    how = run_tasks(_square, range(5), 2, results.__setitem__, notices.append)
    assert results == {i: i * i for i in range(5)} and how.endswith("in this process")
    assert len(notices) == 1 and "Resource temporarily unavailable" in notices[0]


def test_pool_that_loses_a_worker_finishes_in_this_process() -> None:
    results: dict[int, int] = {}
    notices: list[str] = []
    run_tasks(functools.partial(_square_or_die), range(6), 2, results.__setitem__, notices.append)
    assert results == {i: i * i for i in range(6)}
    assert len(notices) == 1 and "BrokenProcessPool" in notices[0]


def test_cli_make_with_refused_processes_still_makes_the_dataset(tmp_path: Path) -> None:
    """`offrl data make --workers 2` where the OS refuses new processes: a notice, then the dataset."""
    code = (
        "import errno, multiprocessing.process, sys\n"
        "def refuse(self): raise OSError(errno.EAGAIN, 'Resource temporarily unavailable')\n"
        "multiprocessing.process.BaseProcess.start = refuse\n"
        "from offrl.cli.main import main\n"
        f"sys.exit(main(['data', 'make', {CUBE!r}, '--episodes', '2', '--workers', '2']))\n"
    )
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path), "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Worker processes are unavailable" in proc.stderr and "Resource temporarily unavailable" in proc.stderr
    meta = json.loads((tmp_path / CUBE / "data/metadata.json").read_text())
    assert meta["total_steps"] == 2000 and meta["offrl_recipe"]["workers"].endswith("in this process")


# --- registration, costs, evaluation env ----------------------------------------------------------

def test_registered_ids_horizons_and_costs() -> None:
    import gymnasium as gym

    from offrl.datagen.builtins import BUILTIN_DATASETS

    ids = [f"offrl/ogbench/{e}-play-singletask-task{k}-v0" for e in MANIP_ENVS for k in range(1, 6)]
    for dataset_id in ids:
        spec = BUILTIN_DATASETS.get(dataset_id)
        assert spec.requires == ("ogbench",) and spec.extra == "ogbench" and not spec.made_on_first_use
        assert spec.default_budget == {"episodes": 1000} and "CPU-minutes" in spec.cost
    for env in MANIP_ENVS.values():  # the table offrl keeps equals ogbench's registration
        assert gym.spec(env.task_env_id(1)).max_episode_steps == env.eval_steps
    assert [MANIP_ENVS[e].eval_steps for e in ("cube-single", "scene", "puzzle-3x3")] == [200, 750, 500]


def test_missing_ogbench_dataset_names_the_command(empty_store: Path) -> None:
    from offrl.errors import DatasetError

    with pytest.raises(DatasetError, match=rf"`offrl data make {CUBE}` first"):
        load_offline_dataset(CUBE)


def test_evaluation_env_is_built_quietly(tiny_scene: Path, tmp_path: Path) -> None:
    """Loading and stepping the evaluation env as the trainer does (a vector env) prints nothing:
    GLFW's no-DISPLAY warning and gymnasium's float32 notes are silenced."""
    code = (
        "import gymnasium as gym, numpy as np\n"
        "from offrl.data.dataset import load_offline_dataset\n"
        f"ds = load_offline_dataset({SCENE!r})\n"
        "envs = gym.vector.SyncVectorEnv([ds.make_env, ds.make_env])\n"
        "envs.reset(seed=[0, 1]); envs.step(np.zeros((2, 5), np.float32)); envs.close()\n"
    )
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tiny_scene), "OFFRL_CACHE_DIR": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout + proc.stderr)[-2000:]


def test_a_short_run_logs_a_success_rate(tiny_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training on an OGBench dataset evaluates by success rate (0-100) and scores the run by it."""
    import json

    from tests.helpers import read_jsonl, run_cli

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_scene))
    out = tmp_path / "run"
    proc = run_cli("run", "--dataset", SCENE, "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "20",
                   "--eval-episodes", "2", "--set", "trainer.eval_envs=2", "--set", "critic.hidden_dims=[16]",
                   "--set", "actor.hidden_dims=[16]", "--set", "critic.batch_size=16", "--set", "actor.batch_size=16",
                   "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    [row] = read_jsonl(out / "eval.jsonl")
    assert row["success_rate_100"] in (0.0, 50.0, 100.0) and row["length_mean"] <= 750
    assert row["normalized_score_100"] is None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["score_key"] == "success_rate_100" and summary["final_success_rate_100"] == row["success_rate_100"]
    assert "success" in proc.stdout
