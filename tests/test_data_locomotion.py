"""Locomotion recipe (D4RL with SB3 SAC) at tiny budgets: structure, determinism, learning, reuse."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from offrl.data.store import minari_root
from offrl.datagen.recipes import locomotion  # noqa: E402
from offrl.datagen.recipes.locomotion_rollout import transitions_to_episodes  # noqa: E402

# A tiny but complete run: 600 SAC steps (150 random), checkpoints every 150 steps.
TINY: dict[str, Any] = {"steps": 400, "sac_steps": 600, "eval_every": 150, "learning_starts": 150, "ref_episodes": 2}
PREFIX = "offrl/hopper"


def _make_in(root: Path, **budget: Any) -> None:
    with minari_root(root):
        locomotion.make_family("Hopper-v5", PREFIX, seed=0, **budget)


@pytest.fixture(scope="module")
def hopper_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("hopper-store")
    _make_in(root, **TINY)
    yield root


@pytest.fixture
def family(hopper_store: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(hopper_store))
    return {kind: minari.load_dataset(f"{PREFIX}/{kind}-v0") for kind in locomotion.KINDS}


def _episodes(ds: Any) -> list[Any]:
    return list(ds.iterate_episodes())


def _same_episodes(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.observations, y.observations)
        and np.array_equal(x.actions, y.actions)
        and np.array_equal(x.rewards, y.rewards)
        and np.array_equal(x.terminations, y.terminations)
        and np.array_equal(x.truncations, y.truncations)
        for x, y in zip(a, b)
    )


def test_all_five_datasets_with_right_structure(family: dict[str, Any]) -> None:
    import gymnasium as gym

    for kind, ds in family.items():
        assert ds.spec.observation_space == gym.spaces.Box(-np.inf, np.inf, (11,), np.float64), kind
        assert ds.spec.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32), kind
        for ep in _episodes(ds):
            T = len(ep.rewards)
            assert ep.observations.shape == (T + 1, 11)
            ends = ep.terminations | ep.truncations
            assert ends[-1] and not ends[:-1].any(), f"{kind}: exactly one end flag, at the last step"
            assert not (ep.terminations[-1] and ep.truncations[-1])
            last = ep.observations[-1]
            if ep.terminations[-1]:  # Hopper terminates only when unhealthy (fallen, tilted, diverged)
                assert last[0] <= 0.7 or abs(last[1]) >= 0.2 or np.abs(last[1:]).max() >= 100, kind
            else:  # truncated: the 1000-step limit, or the collection budget ran out mid-episode
                assert not (last[0] <= 0.7 or abs(last[1]) >= 0.2), kind
    for kind in ("random", "medium", "expert"):
        assert family[kind].total_steps == TINY["steps"], kind
    assert any(e.terminations[-1] for e in _episodes(family["random"])), "Hopper falls: true terminations"


def test_medium_replay_is_the_buffer_up_to_the_medium_checkpoint(family: dict[str, Any]) -> None:
    recipe = family["medium-replay"].storage.metadata["offrl_recipe"]
    step = recipe["checkpoint_steps"]["medium"]
    assert 0 < step < TINY["sac_steps"] and step % TINY["eval_every"] == 0
    assert family["medium-replay"].total_steps == step
    episodes = _episodes(family["medium-replay"])
    assert episodes[0].actions.shape[0] > 0
    random_phase = np.concatenate([e.actions for e in episodes])[: TINY["learning_starts"]]
    assert np.abs(random_phase).max() <= 1.0 and random_phase.std() > 0.4, "SAC's uniform warm-up steps"
    # the medium checkpoint is the intermediate one closest to a third of the expert's return
    record = json.loads((Path(os.environ["MINARI_DATASETS_PATH"]) / recipe["training_record"]).read_text())
    target = record["ref_max_score"] / 3
    inside = [(s, r) for s, r in record["learning_curve"] if 0 < s < TINY["sac_steps"]]
    best = min(inside, key=lambda sr: (abs(sr[1] - target), sr[0]))
    assert best[0] == step


def test_medium_expert_is_the_union(family: dict[str, Any]) -> None:
    me, m, e = (_episodes(family[k]) for k in ("medium-expert", "medium", "expert"))
    assert family["medium-expert"].total_steps == family["medium"].total_steps + family["expert"].total_steps
    assert _same_episodes(me, m + e)


def test_reference_scores_and_recipe_metadata(
    family: dict[str, Any], hopper_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minari
    from stable_baselines3.sac.policies import SACPolicy

    import offrl

    refs = {(ds.storage.metadata["ref_min_score"], ds.storage.metadata["ref_max_score"]) for ds in family.values()}
    assert len(refs) == 1, "one family, one pair of reference scores"
    lo, hi = refs.pop()
    assert np.isfinite(lo) and np.isfinite(hi) and lo != hi
    assert minari.get_normalized_score(family["expert"], np.array([hi])) == pytest.approx([1.0])
    for kind, ds in family.items():
        r = ds.storage.metadata["offrl_recipe"]
        assert r["recipe"] == "offrl.datagen.recipes.locomotion" and r["kind"] == kind
        assert r["seed"] == 0 and r["offrl_version"] == offrl.__version__
        assert r["budget"]["steps"] == TINY["steps"] and r["budget"]["sac_steps"] == TINY["sac_steps"]
        assert r["behaviour_policy"]
        for rel in r["policy_files"]:
            policy = SACPolicy.load(str(hopper_store / rel), device="cpu")
            obs = family[kind].recover_environment().reset(seed=0)[0]
            assert policy.predict(obs, deterministic=True)[0].shape == (3,)
        assert (hopper_store / r["training_record"]).is_file()
    env = family["expert"].recover_environment(eval_env=True)
    assert env.spec.id == "Hopper-v5" and env.spec.max_episode_steps == 1000
    # Minari's own listing is not confused by the policies directory
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(hopper_store))
    assert set(minari.list_local_datasets()) == {f"{PREFIX}/{k}-v0" for k in locomotion.KINDS}


def test_same_seed_same_family(family: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import minari

    root = tmp_path / "again"
    _make_in(root, **TINY)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    for kind in locomotion.KINDS:
        again = minari.load_dataset(f"{PREFIX}/{kind}-v0")
        assert _same_episodes(_episodes(again), _episodes(family[kind])), kind
        assert again.storage.metadata["ref_max_score"] == family[kind].storage.metadata["ref_max_score"]


def test_saved_policies_regenerate_without_training(hopper_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import minari

    root = tmp_path / "copy"
    shutil.copytree(hopper_store, root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    original = _episodes(minari.load_dataset(f"{PREFIX}/expert-v0"))
    shutil.rmtree(root / PREFIX / "expert-v0")

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("expert must be regenerated from the saved policy")

    monkeypatch.setattr(locomotion, "train_sac", no_training)
    locomotion.make_family("Hopper-v5", PREFIX, seed=0, **TINY)
    assert _same_episodes(_episodes(minari.load_dataset(f"{PREFIX}/expert-v0")), original)


def test_transitions_to_episodes_cuts_at_flags_and_at_the_end() -> None:
    n = 7
    obs = np.arange(n, dtype=np.float64)[:, None]
    nxt = obs + 1
    term = np.array([0, 0, 1, 0, 0, 0, 0], bool)
    trunc = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    eps = transitions_to_episodes(obs, nxt, np.zeros((n, 1), np.float32), np.ones(n), term, trunc)
    assert [len(e.rewards) for e in eps] == [3, 2, 2]
    assert eps[0].terminations[-1] and eps[1].truncations[-1] and eps[2].truncations[-1]
    np.testing.assert_array_equal(eps[1].observations[:, 0], [3, 4, 5])


def test_expert_beats_random_on_inverted_pendulum(empty_store: Path) -> None:
    """Learning check where it is fast and reliable: a few thousand SAC steps."""
    import minari

    locomotion.make_family(
        "InvertedPendulum-v5", "offrltest/invertedpendulum", seed=0, steps=300, sac_steps=3000,
        eval_every=500, learning_starts=500, net_arch=(64, 64), ref_episodes=5,
    )
    ds = minari.load_dataset("offrltest/invertedpendulum/expert-v0")
    lo, hi = ds.storage.metadata["ref_min_score"], ds.storage.metadata["ref_max_score"]
    assert hi >= 50 and hi >= 5 * lo, (lo, hi)
    medium = ds.storage.metadata["offrl_recipe"]["checkpoint_eval_returns"]["medium"]
    expert = ds.storage.metadata["offrl_recipe"]["checkpoint_eval_returns"]["expert"]
    assert medium < expert


def test_registered_without_sb3_and_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.datagen.builtins import BUILTIN_DATASETS
    from offrl.errors import OfflineRLError

    ids = [f"offrl/{e}/{k}-v0" for e in ("hopper", "halfcheetah", "walker2d") for k in locomotion.KINDS]
    for dataset_id in ids:
        spec = BUILTIN_DATASETS.get(dataset_id)
        assert spec.requires == ("stable_baselines3",) and spec.extra == "datagen"
        assert spec.default_budget == {"steps": 1_000_000, "sac_steps": 300_000}
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(OfflineRLError, match=r"offrl\[datagen\]"):
        locomotion.make("offrl/hopper/medium-v0", steps=10, sac_steps=10)
