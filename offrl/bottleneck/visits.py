"""What an evaluation visited: every counted episode's transitions, per seed, and their Monte-Carlo returns.

:class:`VisitRecorder` is the :class:`~offrl.trainer.evaluation.Evaluator`'s
observer: it sees each environment step of every round (observations already
flattened and normalised as the policy saw them, the unit actions it took,
rewards, next observations, terminations) and keeps the steps of the episodes
the evaluation counts. The visited states feed the action-MSE diagnostic, the
(state, action, return) triples the value error, and the transitions
test-time training (:mod:`offrl.bottleneck.testtime`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offrl.data.transitions import TransitionArrays

#: A state's Monte-Carlo return counts as a value target when the episode terminated, or when the return's
#: unseen tail weighs at most this much (γ^(T−t) ≤ MC_TAIL): truncated returns are biased low near the end.
MC_TAIL = 0.05


@dataclass
class Episode:
    """One evaluation episode's transitions (rewards as the environment gave them)."""

    observations: np.ndarray  # [T, O]
    actions: np.ndarray  # [T, A]
    rewards: np.ndarray  # [T]
    next_observations: np.ndarray  # [T, O]
    terminated: bool

    def __len__(self) -> int:
        return len(self.rewards)


class VisitRecorder:
    """Records the counted episodes of an evaluation for ``members`` seeds × ``num_envs`` environments."""

    def __init__(self, members: int, num_envs: int) -> None:
        self.members, self.num_envs = members, num_envs
        self.episodes: list[list[Episode]] = [[] for _ in range(members)]
        self._steps: list[tuple[np.ndarray, ...]] = []
        self._counted = 0

    # --- the observer protocol of Evaluator ---------------------------------------------------------
    def round(self, counted: int) -> None:
        """A new round begins; it counts the first ``counted`` environments of each seed."""
        self._close()
        self._counted = counted

    def step(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
             terminated: np.ndarray, live: np.ndarray) -> None:
        """One environment step of every environment ([E·n, ...]); ``live``: its episode had not ended."""
        self._steps.append((np.array(obs, np.float32), np.array(actions, np.float32), np.array(rewards, np.float64),
                            np.array(next_obs, np.float32), np.array(terminated, bool), np.array(live, bool)))

    def finish(self) -> "VisitRecorder":
        self._close()
        return self

    def _close(self) -> None:
        if not self._steps:
            return
        obs, act, rew, nxt, term, live = (np.stack(x) for x in zip(*self._steps))  # [T, E·n, ...]
        self._steps = []
        for e in range(self.members):
            for i in range(self._counted):
                j = e * self.num_envs + i
                rows = live[:, j]
                if rows.any():
                    self.episodes[e].append(Episode(obs[rows, j], act[rows, j], rew[rows, j], nxt[rows, j],
                                                    bool(term[rows, j][-1])))

    # --- what was visited -------------------------------------------------------------------------
    def states(self, e: int) -> np.ndarray:
        """Every visited state of seed ``e`` [N, O]."""
        return np.concatenate([ep.observations for ep in self.episodes[e]])

    def actions(self, e: int) -> np.ndarray:
        """The actions seed ``e``'s policy took there [N, A]."""
        return np.concatenate([ep.actions for ep in self.episodes[e]])

    def value_targets(self, e: int, discount: float, scale: float = 1.0, shift: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(states, actions, discounted returns G_t = Σ_k γ^k r'_{t+k}) where G_t is a fair target (see
        :data:`MC_TAIL`); r' = scale · r + shift is the reward as the critic was trained on it."""
        tail = math.inf if discount >= 1.0 else (math.log(MC_TAIL) / math.log(discount) if discount > 0 else 0.0)
        obs, act, ret = [], [], []
        for ep in self.episodes[e]:
            g = np.zeros(len(ep))
            running = 0.0
            r = scale * ep.rewards + shift
            for t in range(len(ep) - 1, -1, -1):
                running = r[t] + discount * running
                g[t] = running
            keep = np.ones(len(ep), bool) if ep.terminated else (len(ep) - np.arange(len(ep))) >= tail
            obs.append(ep.observations[keep])
            act.append(ep.actions[keep])
            ret.append(g[keep])
        return np.concatenate(obs), np.concatenate(act), np.concatenate(ret)

    def transitions(self, e: int, scale: float = 1.0, shift: float = 0.0) -> TransitionArrays:
        """Seed ``e``'s visited transitions as a dataset (rewards as the critic was trained on them)."""
        eps = self.episodes[e]
        lengths = np.array([len(ep) for ep in eps], np.int64)
        terminals = np.concatenate([np.eye(1, len(ep), len(ep) - 1)[0] * ep.terminated for ep in eps])
        return TransitionArrays(
            observations=np.concatenate([ep.observations for ep in eps]),
            actions=np.concatenate([ep.actions for ep in eps]),
            rewards=np.concatenate([scale * ep.rewards + shift for ep in eps]).astype(np.float32),
            next_observations=np.concatenate([ep.next_observations for ep in eps]),
            terminals=terminals.astype(np.float32),
            timeouts=np.concatenate([np.eye(1, len(ep), len(ep) - 1)[0] * (not ep.terminated) for ep in eps]) > 0,
            episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            episode_returns=np.array([float(ep.rewards.sum()) for ep in eps]),
        )


def reward_affine(mode: str, episode_returns: np.ndarray) -> tuple[float, float]:
    """(scale, shift) with r' = scale · r + shift: the reward preprocessing of ``data.reward`` (its
    modes are affine; :func:`offrl.data.preprocess.preprocess_rewards`), for rewards seen at test time."""
    if mode == "antmaze":
        return 1.0, -1.0
    if mode == "locomotion":
        spread = float(np.max(episode_returns) - np.min(episode_returns)) if len(episode_returns) else 0.0
        return (1000.0 / spread if spread > 0 else 1.0), 0.0
    return 1.0, 0.0
