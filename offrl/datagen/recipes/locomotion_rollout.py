"""Rolling a policy out in a gymnasium environment: datasets and returns.

Collection runs several environment copies side by side and asks the policy
for a whole batch of actions at once: the per-call overhead of a policy
(stable-baselines3's ``predict``, torch) is then paid once per batch instead
of once per step, which is what makes D4RL's 1M-transition datasets cheap.
Episodes end with a *termination* only when the environment says the state
is terminal (Hopper falling); time limits and the end of the collection budget
are *truncations*. Actions are stored as the environment receives them (raw,
in the action space's units).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

#: A batched policy: observations [n, obs_dim] -> actions [n, act_dim] (environment units).
BatchPolicy = Callable[[np.ndarray], np.ndarray]


def sb3_policy(policy: Any, deterministic: bool) -> BatchPolicy:
    """Wrap a stable-baselines3 policy (its ``predict`` unscales and clips to the action space)."""

    def act(obs: np.ndarray) -> np.ndarray:
        actions, _ = policy.predict(obs, deterministic=deterministic)
        return np.asarray(actions)

    return act


def uniform_policy(action_space: Any, seed: int) -> BatchPolicy:
    """Uniformly random actions in the (bounded) action space, from a seeded generator."""
    rng = np.random.default_rng(seed)
    low, high = np.asarray(action_space.low), np.asarray(action_space.high)

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs),) + low.shape).astype(action_space.dtype)

    return act


class _Trajectory:
    def __init__(self, first_obs: np.ndarray) -> None:
        self.obs = [np.asarray(first_obs, dtype=np.float64)]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []

    def add(self, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        self.actions.append(np.asarray(action))
        self.rewards.append(float(reward))
        self.obs.append(np.asarray(next_obs, dtype=np.float64))

    def buffer(self, terminated: bool) -> Any:
        from offrl.datagen.writer import episode_buffer

        T = len(self.rewards)
        terms, truncs = np.zeros(T, bool), np.zeros(T, bool)
        (terms if terminated else truncs)[-1] = True
        return episode_buffer(np.stack(self.obs), np.stack(self.actions), np.asarray(self.rewards), terms, truncs)


def collect_episodes(
    make_env: Callable[[], Any],
    act: BatchPolicy,
    steps: int,
    seed: int,
    n_envs: int = 8,
    on_steps: Callable[[int], None] | None = None,
) -> list[Any]:
    """Exactly ``steps`` transitions of ``act`` as Minari episode buffers (deterministic for ``seed``).

    Environment ``i`` is reset with seed ``seed + i`` first and then continues its own
    random stream. Episodes still running when the budget is spent end in a truncation.
    """
    envs = [make_env() for _ in range(n_envs)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    running = [_Trajectory(o) for o in obs]
    episodes: list[Any] = []
    total = 0
    while total < steps:
        active = min(n_envs, steps - total)
        actions = act(np.stack(obs[:active]))
        for i in range(active):
            next_obs, reward, terminated, truncated, _ = envs[i].step(actions[i])
            running[i].add(actions[i], reward, next_obs)
            if terminated or truncated:
                episodes.append(running[i].buffer(terminated=bool(terminated)))
                next_obs, _ = envs[i].reset()
                running[i] = _Trajectory(next_obs)
            obs[i] = next_obs
        total += active
        if on_steps is not None:
            on_steps(active)
    episodes.extend(t.buffer(terminated=False) for t in running if t.rewards)  # budget spent: truncated
    for env in envs:
        env.close()
    return episodes


def evaluate_returns(
    make_env: Callable[[], Any], act: BatchPolicy, episodes: int, seed: int, n_envs: int = 10
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes; episode ``k`` is reset with seed ``seed + k``."""
    envs = [make_env() for _ in range(min(n_envs, episodes))]
    returns = np.zeros(episodes)
    for first in range(0, episodes, len(envs)):
        batch = list(range(first, min(first + len(envs), episodes)))
        obs = [envs[j].reset(seed=seed + k)[0] for j, k in enumerate(batch)]
        alive = list(range(len(batch)))
        while alive:
            actions = act(np.stack([obs[j] for j in alive]))
            still = []
            for a, j in zip(actions, alive):
                obs[j], reward, terminated, truncated, _ = envs[j].step(a)
                returns[batch[j]] += reward
                if not (terminated or truncated):
                    still.append(j)
            alive = still
    for env in envs:
        env.close()
    return returns


def transitions_to_episodes(
    observations: np.ndarray,
    next_observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
) -> list[Any]:
    """Cut a transition stream (a replay buffer in time order) into Minari episodes.

    An episode ends at a termination or a truncation; a final unfinished episode
    (the stream stops mid-episode) ends in a truncation.
    """
    from offrl.datagen.writer import episode_buffer

    n = len(rewards)
    ends = np.flatnonzero(np.asarray(terminations, bool) | np.asarray(truncations, bool))
    if n and (len(ends) == 0 or ends[-1] != n - 1):
        ends = np.append(ends, n - 1)
    episodes, start = [], 0
    for end in ends:
        sl = slice(start, end + 1)
        obs = np.concatenate([observations[sl], next_observations[end : end + 1]]).astype(np.float64)
        terms = np.asarray(terminations[sl], bool).copy()
        truncs = np.asarray(truncations[sl], bool).copy()
        if not (terms[-1] or truncs[-1]):
            truncs[-1] = True
        episodes.append(episode_buffer(obs, actions[sl], rewards[sl], terms, truncs))
        start = end + 1
    return episodes
