"""Datasets laid out like Minari's remote ones work offline: info, env recovery, offrl's loader.

Minari's ``D4RL/pointmaze/umaze-v2`` (dict observations, a continuing data
environment with a 1M-step limit, a fixed-goal evaluation environment, D4RL's
reference scores) and ``mujoco/hopper/medium-v0`` (gymnasium v5 environment,
``mujoco==3.2.3`` in its requirements, no separate evaluation spec) cannot be
downloaded here, so small look-alikes are written with the same metadata
layout and ids.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from offrl.cli.main import main


def _episodes(env: Any, n: int, steps: int, seed: int, truncate_every: int | None = None) -> list[Any]:
    """Random-action episodes in Minari's EpisodeBuffer form (dict or array observations, infos)."""
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        obs, _ = env.reset(seed=seed + k)
        obs_list, acts, rews, terms, truncs = [obs], [], [], [], []
        for t in range(steps):
            a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            obs, r, te, tr, _ = env.step(a)
            tr = tr or t == steps - 1 or (truncate_every is not None and (t + 1) % truncate_every == 0)
            obs_list.append(obs)
            acts.append(a)
            rews.append(r)
            terms.append(te)
            truncs.append(tr and not te)
            if te or tr:
                break
        if isinstance(obs_list[0], dict):
            observations = {key: np.stack([o[key] for o in obs_list]) for key in sorted(obs_list[0])}
        else:
            observations = np.stack(obs_list)
        T = len(acts)
        out.append(EpisodeBuffer(
            observations=observations, actions=np.stack(acts), rewards=np.asarray(rews, np.float64),
            terminations=np.asarray(terms, bool), truncations=np.asarray(truncs, bool),
            infos={"success": np.zeros(T + 1, bool)},
        ))
    return out


def _patch_metadata(dataset_id: str, **fields: Any) -> None:
    from offrl.data.store import dataset_dir

    path = dataset_dir(dataset_id) / "data" / "metadata.json"
    meta = json.loads(path.read_text())
    meta.update(fields)
    path.write_text(json.dumps(meta))


@pytest.fixture
def d4rl_pointmaze(empty_store: Path) -> str:
    """A look-alike of Minari's D4RL/pointmaze/umaze-v2."""
    pytest.importorskip("gymnasium_robotics")
    from offrl.datagen.recipes.pointmaze import import_robotics
    from offrl.datagen.writer import write_minari_dataset

    import_robotics()
    dataset_id = "D4RL/pointmaze/umaze-v2"
    env = gym.make("PointMaze_UMaze-v3", continuing_task=True, reset_target=True, max_episode_steps=1_000_000)
    eval_map = [[1, 1, 1, 1, 1], [1, "g", 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]]
    eval_env = gym.make("PointMaze_UMaze-v3", maze_map=eval_map, continuing_task=True, reset_target=False)
    write_minari_dataset(
        dataset_id, _episodes(env, 4, 60, seed=0, truncate_every=25), env=env.spec, eval_env=eval_env.spec,
        ref_min_score=23.85, ref_max_score=161.86, algorithm_name="QIteration",
        author="Rodrigo Perez-Vicente", description="The data is collected from the PointMaze_UMaze-v3 environment",
        requirements=["gymnasium-robotics>=1.2.4"],
    )
    _patch_metadata(dataset_id, minari_version="0.4.3", code_permalink="https://github.com/rodrigodelazcano/d4rl-minari-dataset-generation")
    return dataset_id


@pytest.fixture
def mujoco_hopper(empty_store: Path) -> str:
    """A look-alike of Minari's mujoco/hopper/medium-v0 (its reference scores are its own)."""
    from offrl.datagen.writer import write_minari_dataset

    dataset_id = "mujoco/hopper/medium-v0"
    env = gym.make("Hopper-v5")
    write_minari_dataset(
        dataset_id, _episodes(env, 5, 1000, seed=1), env=env.spec, eval_env=None,
        ref_min_score=-19.5, ref_max_score=3100.0, algorithm_name="SB3/SAC",
        description="Medium-level policy", requirements=["mujoco==3.2.3"],
    )
    _patch_metadata(dataset_id, minari_version="0.5.1")
    return dataset_id


def _info(capsys: pytest.CaptureFixture[str], dataset_id: str) -> dict[str, Any]:
    assert main(["data", "info", dataset_id, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_d4rl_pointmaze_layout(d4rl_pointmaze: str, capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    info = _info(capsys, d4rl_pointmaze)
    assert info["env_id"] == info["eval_env_id"] == "PointMaze_UMaze-v3"
    assert info["eval_max_episode_steps"] == 300 and info["eval_env_kwargs"]["reset_target"] is False
    assert (info["ref_min_score"], info["ref_max_score"]) == (23.85, 161.86)
    assert info["recipe"] is None and info["minari_version"] == "0.4.3"
    assert info["truncations"] == info["episodes"] and info["terminations"] == 0
    assert main(["data", "info", d4rl_pointmaze]) == 0
    assert "not made by offrl" in capsys.readouterr().out

    ds = minari.load_dataset(d4rl_pointmaze)
    env = ds.recover_environment(eval_env=True)
    assert env.spec.max_episode_steps == 300
    obs, _ = env.reset(seed=0)
    assert sorted(obs) == ["achieved_goal", "desired_goal", "observation"]
    assert minari.get_normalized_score(ds, np.array([161.86])) == pytest.approx([1.0])
    assert main(["data", "list", "--json"]) == 0
    rows = {r["dataset_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[d4rl_pointmaze]["local"] and not rows[d4rl_pointmaze]["builtin"]


def test_mujoco_hopper_layout(mujoco_hopper: str, capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    info = _info(capsys, mujoco_hopper)
    assert info["env_id"] == info["eval_env_id"] == "Hopper-v5" and info["eval_max_episode_steps"] == 1000
    assert (info["ref_min_score"], info["ref_max_score"]) == (-19.5, 3100.0)
    assert info["requirements"] == ["mujoco==3.2.3"]
    assert info["episodes"] == 5 and info["terminations"] + info["truncations"] == 5

    ds = minari.load_dataset(mujoco_hopper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mujoco 4 is installed: Minari only warns about ==3.2.3
        env = ds.recover_environment(eval_env=True)
    assert env.spec.id == "Hopper-v5"
    assert env.observation_space.shape == ds.spec.observation_space.shape == (11,)


@pytest.mark.parametrize("fixture, obs_dim", [("d4rl_pointmaze", 8), ("mujoco_hopper", 11)])
def test_offrl_loader_reads_remote_layouts(fixture: str, obs_dim: int, request: pytest.FixtureRequest) -> None:
    """offrl's own loader: flattened observations (alphabetical keys) and the recovered eval env."""
    dataset_mod = pytest.importorskip("offrl.data.dataset")
    if not hasattr(dataset_mod, "load_offline_dataset"):
        pytest.skip("the core loader is not available")
    dataset_id = request.getfixturevalue(fixture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dataset_mod.load_offline_dataset(dataset_id)
        assert data.obs_dim == obs_dim
        assert data.make_env is not None
        env = data.make_env()
    env.reset(seed=0)
    env.close()
