"""A multimodal continuous bandit: the smallest task where policy extraction matters.

One-step episodes, 2-D actions in [-1, 1]^2, an irrelevant 2-D context as the
observation. The reward is a sum-free "max of bumps": each mode k pays
``payoff_k * exp(-|a - c_k|^2 / (2 sigma^2))``. Two distant modes pay 1.0, the
mode at their midpoint pays 0.3, two more pay 0.1. A unimodal Gaussian fitted
to the (even advantage-weighted) behaviour data averages the two good modes
and lands on the midpoint mode; a policy that commits to one good mode scores
near the maximum. That is the IDQL paper's argument in two dimensions.
"""
from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "offrl/MultimodalBandit-v0"

#: Mode centres, payoffs: two good distant modes, their (poor) midpoint, two weak modes.
MODE_CENTERS = np.array([[-0.7, 0.0], [0.7, 0.0], [0.0, 0.0], [0.0, 0.7], [0.0, -0.7]])
MODE_PAYOFFS = np.array([1.0, 1.0, 0.3, 0.1, 0.1])
REWARD_WIDTH = 0.2  # sigma of each reward bump


def bandit_reward(actions: np.ndarray) -> np.ndarray:
    """Reward of actions with shape [..., 2] (vectorised; deterministic)."""
    a = np.asarray(actions, dtype=np.float64)[..., None, :]
    sq = ((a - MODE_CENTERS) ** 2).sum(-1)
    return (MODE_PAYOFFS * np.exp(-sq / (2 * REWARD_WIDTH**2))).max(-1)


def random_policy_score(grid: int = 801) -> float:
    """Expected reward of uniform actions, by a fine grid (exact to ~1e-5, no randomness)."""
    xs = np.linspace(-1.0, 1.0, grid)
    a = np.stack(np.meshgrid(xs, xs, indexing="ij"), -1)
    return float(bandit_reward(a).mean())


def best_score() -> float:
    return float(bandit_reward(MODE_CENTERS).max())


class MultimodalBanditEnv(gym.Env):
    """One-step continuous bandit with a multimodal reward (see module docstring)."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not supported; choose one of "
                             f"{self.metadata['render_modes']} or None")
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._obs = np.zeros(2, np.float32)
        self._last_action: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._obs = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        self._last_action = None
        return self._obs.copy(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        reward = float(bandit_reward(a))
        self._last_action = a
        obs = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return obs, reward, True, False, {}

    def offrl_state(self) -> dict[str, Any]:
        """What this environment holds besides ``np_random`` (offrl.online.envstate saves both)."""
        last = None if self._last_action is None else self._last_action.tolist()
        return {"obs": self._obs.tolist(), "last_action": last}

    def load_offrl_state(self, state: dict[str, Any]) -> None:
        self._obs = np.asarray(state["obs"], np.float32)
        self._last_action = None if state["last_action"] is None else np.asarray(state["last_action"])

    def render(self) -> np.ndarray | None:
        """The reward landscape over the action square (brighter = higher reward), the last action in red:
        a video shows at a glance which mode the policy picked (``offrl eval --video``)."""
        if self.render_mode != "rgb_array":
            return None
        frame = _landscape().copy()
        if self._last_action is not None:
            size = frame.shape[0]
            col, row = ((self._last_action + 1.0) / 2.0 * (size - 1)).round().astype(int)
            row = size - 1 - row  # the second action coordinate points up
            frame[max(row - 3, 0):row + 4, max(col - 3, 0):col + 4] = (230, 30, 30)
        return frame


@functools.cache
def _landscape(size: int = 128) -> np.ndarray:
    """The bandit's reward on a size × size grid of actions as an RGB image (computed once)."""
    xs = np.linspace(-1.0, 1.0, size)
    grid = np.stack(np.meshgrid(xs, xs[::-1], indexing="xy"), -1)
    grey = (40 + 200 * bandit_reward(grid) / best_score()).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="offrl.envs.bandit:MultimodalBanditEnv", max_episode_steps=1)
