"""Recipes for ``offrl/ogbench/<env>-play-singletask-task<k>-v0``: OGBench's single-task manipulation data.

OGBench's play datasets (Park et al. 2024) for ``cube-single``,
``cube-double``, ``scene``, ``puzzle-3x3`` and ``puzzle-4x4``, regenerated
locally (their files live on a server this kind of machine cannot reach) and
written in Minari format, one dataset per single task with OGBench's names:

1. **Raw episodes, once per environment and seed** (:mod:`ogbench_oracle`):
   1,000 episodes of OGBench's plan oracles (noise 0.1, smoothing 0.5), each
   1,001 observations / 1,000 transitions (OGBench's 1,001-step episodes give
   1,000 transitions on loading). Episodes are saved one file each under
   ``<store>/offrl/ogbench/raw/<env>-play/seed<S>-len<T>-ogbench<version>-f<format>/``
   with what relabelling needs (qpos, button states), so an interrupted
   generation resumes without redoing finished episodes, ``--workers N``
   splits them over processes (same result for any N), and the other four
   tasks of the environment reuse them.
2. **Per task** (:mod:`ogbench_relabel`): rewards r_t = satisfied − all
   sub-goals of s_t (≤ 0), ``terminations[t]`` where s_t completes the task
   (the backup stops there; the episode goes on), the last step truncated.

Each dataset declares in its metadata what evaluation needs: primary metric
``success_rate`` from ``info['success']``, ``success_timing='post'``
(see :mod:`offrl.envs.ogbench`), the horizon, and reward mode ``none`` (the
rewards are already OGBench's; ``data.reward=auto`` leaves them alone). The
evaluation environment is OGBench's single-task environment for that task.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from offrl.data.metadata import EVAL_EPISODE_STEPS, PRIMARY_METRIC, REWARD_MODE, SUCCESS_KEY, SUCCESS_TIMING
from offrl.data.store import datasets_root
from offrl.datagen.parallel import run_tasks
from offrl.datagen.progress import recipe_progress
from offrl.datagen.recipes.ogbench_oracle import NOISE, NOISE_SMOOTHING, OracleEpisodes
from offrl.datagen.recipes.ogbench_relabel import TaskTargets, read_targets, relabel
from offrl.datagen.shards import ShardStore
from offrl.envs.ogbench import (
    EXTRA,
    MANIP_ENVS,
    NUM_TASKS,
    SUCCESS_INFO_KEY,
    ManipEnv,
    import_ogbench,
    make_collection_env,
    make_task_env,
    ogbench_version,
)
from offrl.errors import OfflineRLError, unknown

NAMESPACE = "offrl/ogbench"
EPISODE_LENGTH = 1000  # transitions per episode (OGBench: --max_episode_steps=1001)
DEFAULT_BUDGET: dict[str, Any] = {"episodes": 1000}  # OGBench: --num_episodes=1000
QUICK_BUDGET: dict[str, Any] = {"episodes": 25}
RAW_FORMAT = 1  # bump when the raw episode files change


def dataset_id(env: ManipEnv, task_id: int) -> str:
    return f"{NAMESPACE}/{env.dataset_name(task_id)}"


def all_dataset_ids() -> dict[str, tuple[ManipEnv, int]]:
    return {dataset_id(e, k): (e, k) for e in MANIP_ENVS.values() for k in range(1, NUM_TASKS + 1)}


def parse_id(dataset_id_: str) -> tuple[ManipEnv, int]:
    ids = all_dataset_ids()
    if dataset_id_ not in ids:
        raise unknown("OGBench dataset", dataset_id_, ids)
    return ids[dataset_id_]


def raw_store(env: ManipEnv, seed: int, length: int) -> ShardStore:
    """Where the raw episodes of (env, seed, episode length) live; shared by the env's five tasks."""
    key = f"seed{seed}-len{length}-ogbench{ogbench_version()}-f{RAW_FORMAT}"
    return ShardStore(datasets_root() / NAMESPACE / "raw" / f"{env.name}-play" / key)


# --- raw episodes (run in worker processes) -------------------------------------------------------

_PLAYERS: dict[tuple[str, int], OracleEpisodes] = {}  # per process: one environment per (env, length)


def make_raw_episode(env_name: str, length: int, seed: int, root: str, index: int) -> dict[str, Any]:
    """Make episode ``index`` (if its file does not exist yet) and return its statistics."""
    store = ShardStore(Path(root))
    if store.path(index).is_file():
        return _stats(store.read(index))
    key = (env_name, length)
    if key not in _PLAYERS:
        _PLAYERS[key] = OracleEpisodes(MANIP_ENVS[env_name], length)
    start = time.perf_counter()
    ep = _PLAYERS[key].play(seed, index)
    arrays = {
        "observations": ep.observations,
        "actions": ep.actions,
        "qpos": ep.qpos,
        "button_states": ep.button_states,
        "stats": np.array([ep.subtasks_done, ep.subtasks_succeeded, ep.attempts], np.int64),
        "seconds": np.array(time.perf_counter() - start),
    }
    store.write(index, arrays)
    return _stats(arrays)


def _stats(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    done, succeeded, attempts = (int(x) for x in arrays["stats"])
    return {"subtasks": done, "succeeded": succeeded, "attempts": attempts, "seconds": float(arrays["seconds"]),
            "steps": int(len(arrays["actions"]))}


def ensure_raw_episodes(
    env: ManipEnv, seed: int, episodes: int, length: int, workers: int, progress: Any
) -> tuple[ShardStore, dict[str, Any]]:
    """Make the missing raw episodes 0..episodes-1 (resuming), with progress; return the store and totals."""
    store = raw_store(env, seed, length).prepare({
        "env": env.name, "seed": seed, "episode_length": length, "oracle": "plan",
        "noise": NOISE, "noise_smoothing": NOISE_SMOOTHING, "ogbench": ogbench_version(), "format": RAW_FORMAT,
    })
    missing = store.missing(episodes)
    task = progress.add_task(f"{env.name}: oracle episodes", total=episodes, completed=episodes - len(missing))
    made, started = 0, time.perf_counter()

    def on_result(index: int, stats: dict[str, Any]) -> None:
        nonlocal made
        made += 1
        progress.advance(task)
        if not progress.console.is_terminal and (made == len(missing) or made % max(1, len(missing) // 10) == 0):
            progress.console.log(f"{env.name}: {episodes - len(missing) + made}/{episodes} episodes "
                                 f"({time.perf_counter() - started:.0f} s)")

    job = functools.partial(make_raw_episode, env.name, length, seed, str(store.root))
    how = run_tasks(job, missing, workers, on_result, notice=lambda m: progress.console.log(m))
    return store, {"made": len(missing), "reused": episodes - len(missing), "ran": how,
                   "seconds": time.perf_counter() - started}


# --- one task's dataset ---------------------------------------------------------------------------

def task_episodes(store: ShardStore, episodes: int, targets: TaskTargets, make_again: Any) -> tuple[list[Any], dict[str, Any]]:
    """Minari episode buffers relabelled for ``targets``, plus oracle statistics over the episodes."""
    from offrl.datagen.writer import episode_buffer

    buffers, totals = [], {"subtasks": 0, "succeeded": 0, "attempts": 0, "seconds": 0.0, "steps": 0, "complete": 0}
    for i in range(episodes):
        try:
            arrays = store.read(i)
        except (OSError, ValueError, KeyError):  # a damaged episode file: make it again
            store.discard(i)
            make_again(i)
            arrays = store.read(i)
        T = len(arrays["actions"])
        buttons = arrays["button_states"][:-1] if arrays["button_states"].shape[1] else None
        rewards, complete = relabel(targets, arrays["qpos"][:-1], buttons)
        truncations = np.zeros(T, bool)
        truncations[-1] = True
        buffers.append(episode_buffer(arrays["observations"], arrays["actions"], rewards, complete, truncations))
        for k, v in _stats(arrays).items():
            totals[k] += v
        totals["complete"] += int(complete.sum())
    return buffers, totals


def make(
    dataset_id: str,
    seed: int = 0,
    episodes: int = DEFAULT_BUDGET["episodes"],
    workers: int = 1,
    replace: bool = False,
    episode_length: int = EPISODE_LENGTH,
) -> Path:
    """Write one OGBench single-task dataset (making the environment's raw episodes first if needed).

    Deterministic for ``seed`` whatever ``workers`` is. ``episode_length`` exists
    for tests (tiny datasets in seconds); the recipe's is OGBench's 1,000.
    """
    import offrl
    from offrl.datagen.writer import dataset_lock, write_minari_dataset

    env, task_id = parse_id(dataset_id)
    import_ogbench()
    for name, value in (("episodes", episodes), ("workers", workers), ("episode_length", episode_length)):
        if value < 1:
            raise OfflineRLError(f"{name} must be positive (got {value}).")
    started = time.perf_counter()
    with recipe_progress() as progress:
        # one maker per environment and seed at a time: concurrent makes of its tasks wait, then reuse
        with dataset_lock(f"{NAMESPACE}/raw/{env.name}-seed{seed}-len{episode_length}"):
            try:
                store, raw = ensure_raw_episodes(env, seed, episodes, episode_length, workers, progress)
            finally:
                _PLAYERS.clear()  # in-process runs: free the collection environment (~0.5 GB)
        step = progress.add_task(f"{dataset_id}: relabelling and writing", total=None)
        task_env = make_task_env(env, task_id)
        targets = read_targets(task_env, env, task_id)
        buffers, totals = task_episodes(
            store, episodes, targets, lambda i: make_raw_episode(env.name, episode_length, seed, str(store.root), i)
        )
        collection_spec = make_collection_env(env, episode_length + 1).spec
        recipe = {
            "recipe": "offrl.datagen.recipes.ogbench",
            "source": "OGBench data_gen_scripts/generate_manipspace.py --dataset_type=play (commands.sh: "
            "--num_episodes=1000 --max_episode_steps=1001), relabelled as ogbench/relabel_utils.py",
            "behaviour_policy": f"OGBench plan oracles (noise {NOISE}, smoothing {NOISE_SMOOTHING}); "
            "a random new sub-task after each finished plan",
            "seed": seed,
            "budget": {"episodes": episodes, "episode_length": episode_length},
            "offrl_version": offrl.__version__,
            "ogbench_version": ogbench_version(),
            "mujoco_version": _version("mujoco"),
            "task": targets.to_dict(),
            "reward": "r_t = (sub-goals satisfied in s_t) - (all sub-goals); terminations[t] = task complete in s_t "
            "(the episode continues); every episode ends in a truncation",
            "task_complete_fraction": totals["complete"] / max(totals["steps"], 1),
            "oracle_subtask_success_rate": totals["succeeded"] / max(totals["subtasks"], 1),
            "oracle_subtasks": totals["subtasks"],
            "discarded_episodes": totals["attempts"] - episodes,
            "raw_episodes": store.root.relative_to(datasets_root()).as_posix(),
            "raw_episodes_made": raw["made"],
            "raw_episodes_reused": raw["reused"],
            "workers": raw["ran"],
            "oracle_ms_per_step": round(1000 * totals["seconds"] / max(totals["steps"], 1), 3),
        }
        path = write_minari_dataset(
            dataset_id,
            buffers,
            env=collection_spec,
            eval_env=task_env.spec,
            algorithm_name="OGBench plan oracle (play), single-task relabelling",
            description=f"OGBench {env.dataset_name(task_id)}: {episodes} play episodes of {episode_length} "
            "transitions, regenerated by offrl",
            extra_metadata={
                "offrl_recipe": recipe | {"generation_seconds": round(time.perf_counter() - started, 1)},
                REWARD_MODE: "none",
                PRIMARY_METRIC: "success_rate",
                SUCCESS_KEY: SUCCESS_INFO_KEY,
                SUCCESS_TIMING: task_env.unwrapped._success_timing,
                EVAL_EPISODE_STEPS: int(task_env.spec.max_episode_steps),
            },
            requirements=[f"ogbench>={ogbench_version()}"],
            replace=replace,
        )
        task_env.close()
        progress.update(step, total=1, completed=1)
    return path


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


__all__ = ["EXTRA", "DEFAULT_BUDGET", "QUICK_BUDGET", "all_dataset_ids", "make", "parse_id", "raw_store"]
