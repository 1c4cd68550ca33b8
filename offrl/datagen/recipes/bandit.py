"""Recipe for ``offrl/bandit/multimodal-v0``, the default dataset (no download needed).

Behaviour data: equal shares of the five reward modes (Gaussian, std 0.08,
clipped to the square) plus 10% uniform actions so the critic sees the whole
action square.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from offrl.data.metadata import REWARD_MODE
from offrl.datagen.writer import episode_buffer, write_minari_dataset
from offrl.envs import bandit

DATASET_ID = "offrl/bandit/multimodal-v0"
MODE_STD = 0.08
UNIFORM_FRACTION = 0.1


def behaviour_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """n behaviour actions: the mode mixture plus ``UNIFORM_FRACTION`` uniform background."""
    n_uniform = int(round(UNIFORM_FRACTION * n))
    modes = rng.integers(0, len(bandit.MODE_CENTERS), n - n_uniform)
    mixed = bandit.MODE_CENTERS[modes] + MODE_STD * rng.standard_normal((n - n_uniform, 2))
    uniform = rng.uniform(-1.0, 1.0, (n_uniform, 2))
    actions = np.concatenate([mixed, uniform])[rng.permutation(n)]
    return np.clip(actions, -1.0, 1.0).astype(np.float32)


def make(dataset_id: str = DATASET_ID, seed: int = 0, episodes: int = 3000, replace: bool = False) -> Any:
    """Write the bandit dataset: ``episodes`` one-step episodes, deterministic for ``seed``."""
    import offrl

    rng = np.random.default_rng(seed)
    actions = behaviour_actions(rng, episodes)
    contexts = rng.uniform(-1.0, 1.0, (episodes, 2, 2)).astype(np.float32)  # obs, next obs
    rewards = bandit.bandit_reward(actions)
    buffers = [
        episode_buffer(contexts[i], actions[i : i + 1], rewards[i : i + 1], [True], [False])
        for i in range(episodes)
    ]
    env = gym.make(bandit.ENV_ID)
    recipe = {
        "recipe": "offrl.datagen.recipes.bandit",
        "behaviour_policy": f"mixture of {len(bandit.MODE_CENTERS)} modes (std {MODE_STD}) "
        f"+ {UNIFORM_FRACTION:.0%} uniform",
        "seed": seed,
        "budget": {"episodes": episodes},
        "offrl_version": offrl.__version__,
    }
    return write_minari_dataset(
        dataset_id,
        buffers,
        env=env.spec,
        eval_env=env.spec,
        ref_min_score=bandit.random_policy_score(),
        ref_max_score=bandit.best_score(),
        algorithm_name="offrl multimodal behaviour mixture",
        description=__doc__.strip().splitlines()[0],
        extra_metadata={"offrl_recipe": recipe, REWARD_MODE: "none"},
        replace=replace,
    )

