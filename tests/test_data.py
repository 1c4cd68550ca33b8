"""The data layer: flattening, terminals, rescaling, checks, the built-in bandit and its lock."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from offrl.data.dataset import load_offline_dataset
from offrl.data.flatten import flatten_obs, key_order
from offrl.data.preprocess import preprocess_rewards, resolve_reward_mode
from offrl.data.store import local_dataset_ids
from offrl.envs import bandit
from offrl.errors import DatasetError
from tests.helpers import episode, write_episodes

BOX3 = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_terminals_from_terminations_only(empty_store: Path) -> None:
    rng = np.random.default_rng(0)
    eps = [episode(4, 3, 2, rng, terminated=False), episode(3, 3, 2, rng, terminated=True)]
    write_episodes("test/trunc/a-v0", eps, BOX3, gym.spaces.Box(-1, 1, (2,), np.float32))
    ds = load_offline_dataset("test/trunc/a-v0")
    a = ds.arrays
    assert a.terminals.tolist() == [0, 0, 0, 0, 0, 0, 1]  # the truncated episode ends non-terminal
    assert a.timeouts.tolist() == [False, False, False, True, False, False, False]
    assert a.episode_starts.tolist() == [0, 4]
    np.testing.assert_allclose(a.next_observations[:4], eps[0]["observations"][1:], rtol=1e-6)
    np.testing.assert_allclose(a.observations[4:], eps[1]["observations"][:-1], rtol=1e-6)
    assert ds.make_env is None  # no env recorded: training works, evaluation is skipped


def test_actions_rescaled_from_bounds_and_clipped(empty_store: Path) -> None:
    rng = np.random.default_rng(1)
    ep = episode(5, 3, 2, rng, terminated=True, act_scale=0.4)
    ep["actions"][0] = [0.4, -0.4]  # exactly at the bounds
    write_episodes("test/bounds/a-v0", [ep], BOX3, gym.spaces.Box(-0.4, 0.4, (2,), np.float32))
    ds = load_offline_dataset("test/bounds/a-v0")
    np.testing.assert_allclose(ds.arrays.actions[1:], ep["actions"][1:] / 0.4, rtol=1e-5)
    np.testing.assert_allclose(ds.arrays.actions[0], [1 - 1e-5, -(1 - 1e-5)], rtol=1e-6)
    np.testing.assert_allclose(ds.action_scaler.to_env(np.array([1.0, -1.0])), [0.4, -0.4], rtol=1e-6)


def test_dict_observations_flatten_in_alphabetical_order() -> None:
    obs = {"observation": np.arange(4.0)[None], "desired_goal": np.array([[10.0, 11.0]]),
           "achieved_goal": np.array([[20.0, 21.0]])}
    np.testing.assert_array_equal(flatten_obs(obs)[0], [20, 21, 10, 11, 0, 1, 2, 3])
    space = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (4,)), "desired_goal": gym.spaces.Box(-1, 1, (2,)),
                             "achieved_goal": gym.spaces.Box(-1, 1, (2,))})
    assert key_order(space) == ["achieved_goal", "desired_goal", "observation"]


def test_nan_is_reported_with_count_and_location(empty_store: Path) -> None:
    rng = np.random.default_rng(2)
    eps = [episode(5, 3, 2, rng, True), episode(5, 3, 2, rng, True)]
    eps[1]["rewards"][2] = np.nan
    eps[1]["rewards"][3] = np.inf
    write_episodes("test/nan/a-v0", eps, BOX3, gym.spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(DatasetError, match=r"rewards: 2 non-finite values in 2 transitions \(first at transition 7, episode 1, step 2\)"):
        load_offline_dataset("test/nan/a-v0")


def test_shape_mismatch_with_environment(empty_store: Path) -> None:
    rng = np.random.default_rng(3)
    env = gym.make(bandit.ENV_ID)  # 2-D observations, but we store 3-D ones
    write_episodes("test/shape/a-v0", [episode(1, 3, 2, rng, True)], None, None, env=env.spec,
                   observation_space=BOX3)
    with pytest.raises(DatasetError, match=r"observations of size 3 but its environment's observation space"):
        load_offline_dataset("test/shape/a-v0")


def test_missing_dataset_error_says_how_to_get_it(empty_store: Path) -> None:
    with pytest.raises(DatasetError, match=r"offrl data download mujoco/hopper/medium-v0"):
        load_offline_dataset("mujoco/hopper/medium-v0")
    with pytest.raises(DatasetError, match=r"not a Minari dataset id"):
        load_offline_dataset("hopper")


def test_reward_modes() -> None:
    assert resolve_reward_mode("auto", "mujoco/hopper/medium-v0") == "locomotion"
    assert resolve_reward_mode("auto", "D4RL/antmaze/umaze-v1") == "antmaze"
    assert resolve_reward_mode("auto", "offrl/bandit/multimodal-v0") == "none"
    assert resolve_reward_mode("auto", "D4RL/pointmaze/umaze-v2") == "none"
    r = np.array([1.0, 2.0])
    np.testing.assert_allclose(preprocess_rewards(r, np.array([10.0, 510.0]), "locomotion"), r * 2.0)
    np.testing.assert_allclose(preprocess_rewards(r, np.array([0.0]), "antmaze"), r - 1)
    # a dataset's own declaration wins over the id
    assert resolve_reward_mode("auto", "offrl/ogbench/antmaze-like-v0", declared="none") == "none"
    assert resolve_reward_mode("locomotion", "x/y/z-v0", declared="none") == "locomotion"  # explicit choice wins


def test_auto_reward_reads_the_dataset_declaration(empty_store: Path) -> None:
    """An id containing 'antmaze' would get r − 1 by its name; a declared mode keeps the stored rewards."""
    import json

    rng = np.random.default_rng(5)
    ep = episode(4, 3, 2, rng, True)
    ep["rewards"] = -np.ones(4)
    write_episodes("test/antmaze/declared-v0", [ep], BOX3, gym.spaces.Box(-1, 1, (2,), np.float32))
    write_episodes("test/antmaze/guessed-v0", [ep], BOX3, gym.spaces.Box(-1, 1, (2,), np.float32))
    meta_path = empty_store / "test/antmaze/declared-v0/data/metadata.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "offrl_reward_mode": "none"}))
    declared = load_offline_dataset("test/antmaze/declared-v0")
    guessed = load_offline_dataset("test/antmaze/guessed-v0")
    assert (declared.reward_mode, declared.reward_mode_source) == ("none", "dataset metadata")
    assert (guessed.reward_mode, guessed.reward_mode_source) == ("antmaze", "dataset id")
    np.testing.assert_array_equal(declared.arrays.rewards, -np.ones(4))
    np.testing.assert_array_equal(guessed.arrays.rewards, -2 * np.ones(4))
    assert load_offline_dataset("test/antmaze/declared-v0", reward="antmaze").reward_mode_source == "data.reward"


def test_bandit_dataset_and_reference_scores() -> None:
    ds = load_offline_dataset("offrl/bandit/multimodal-v0")
    assert ds.arrays.observations.shape == (3000, 2) and ds.arrays.actions.shape == (3000, 2)
    assert (ds.arrays.terminals == 1).all()
    assert ds.ref_max_score == pytest.approx(1.0)
    # the random-policy reference equals a Monte-Carlo estimate of uniform actions' reward
    mc = bandit.bandit_reward(np.random.default_rng(0).uniform(-1, 1, (200_000, 2))).mean()
    assert ds.ref_min_score == pytest.approx(mc, abs=3e-3)
    # ~10% of actions are uniform background: the share of actions far (> 0.4, i.e. 5 mode stds)
    # from every mode equals 10% x the share of the square that far from every mode
    def far(a: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - bandit.MODE_CENTERS[None], axis=-1).min(1) > 0.4

    expected = 0.1 * far(np.random.default_rng(1).uniform(-1, 1, (100_000, 2))).mean()
    assert far(ds.arrays.actions).mean() == pytest.approx(expected, abs=0.015)
    # a policy that always picks a good mode scores ~100, the midpoint mode ~19
    assert ds.normalized_score_100(np.array([1.0]))[0] == pytest.approx(100.0)
    mid = ds.normalized_score_100(bandit.bandit_reward(np.zeros(2))[None])[0]
    assert 10 < mid < 25


def test_sampling_is_on_device_and_deterministic() -> None:
    table = load_offline_dataset("offrl/bandit/multimodal-v0").arrays.to_table("cpu")
    a = table.sample(64, torch.Generator().manual_seed(5))
    b = table.sample(64, torch.Generator().manual_seed(5))
    assert a.observations.shape == (64, 2) and a.rewards.dtype == torch.float32
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def _make_bandit(root: str) -> float:
    os.environ["MINARI_DATASETS_PATH"] = root
    from offrl.datagen.builtins import ensure_dataset

    ensure_dataset("offrl/bandit/multimodal-v0", episodes=200)
    return os.path.getmtime(Path(root) / "offrl/bandit/multimodal-v0/data/main_data.hdf5")


def test_concurrent_builtin_creation_builds_once(empty_store: Path) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        mtimes = pool.map(_make_bandit, [str(empty_store)] * 3)
    assert len(set(mtimes)) == 1  # built once, the others waited and reused it
    assert local_dataset_ids() == ["offrl/bandit/multimodal-v0"]
    assert not list(empty_store.glob(".offrl-write-*"))  # no temp directories left behind


def test_flattened_tables_are_cached_and_invalidated(empty_store: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.data import cache

    monkeypatch.setenv("OFFRL_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    write_episodes("test/cache/a-v0", [episode(5, 3, 2, rng, True)], BOX3, gym.spaces.Box(-1, 1, (2,), np.float32))
    first = load_offline_dataset("test/cache/a-v0")
    entries = list((tmp_path / "cache").glob("*.npz"))
    assert len(entries) == 1
    calls = []
    monkeypatch.setattr("offrl.data.dataset.flatten_episodes", lambda ds: calls.append(1))
    second = load_offline_dataset("test/cache/a-v0")  # served from the cache: flatten_episodes not called
    assert calls == []
    for name in ("observations", "actions", "rewards", "next_observations", "terminals", "episode_returns"):
        np.testing.assert_array_equal(getattr(first.arrays, name), getattr(second.arrays, name))
    # touching the dataset's files changes the key
    data = empty_store / "test/cache/a-v0/data/main_data.hdf5"
    old_key = cache.cache_key(data.parent)
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    assert cache.cache_key(data.parent) != old_key
    monkeypatch.setenv("OFFRL_DATASET_CACHE", "0")
    assert not cache.enabled()
