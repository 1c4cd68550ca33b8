"""Monte-Carlo returns-to-go of a dataset's episodes: Cal-QL's lower bound on Q (Nakamoto et al. 2023).

For every transition t of an episode, with the rewards the critic learns from (after ``data.reward``'s
preprocessing) and the critic's discount γ:

    G_t = r_t + γ (1 − terminal_t) G_{t+1},    G after the episode's last step = 0.

- **Terminal** episodes: G_t is the exact discounted return of what followed (nothing follows a terminal).
- **Truncated** episodes (a time limit, or the data simply stop): G_t is the discounted sum *to the end of the
  data* — no bootstrap, as CORL's ``get_return_to_go`` (algorithms/finetune/cal_ql.py). With non-negative
  rewards it underestimates the infinite-horizon return near the end of the episode, which is the safe side
  for a lower bound; with negative rewards it overestimates it there. ``sparse_reward`` is CORL's fix for
  sparse tasks (its ``is_sparse_reward``, AntMaze): an episode whose last reward is the failure reward gets
  G_t = r_fail / (1 − γ) at every step — the value of failing forever. offrl takes the data's lowest reward as
  r_fail (AntMaze's −1 under ``data.reward=antmaze``; CORL computes it from D4RL's reference minimum).

Computed once, on the host, when a table is built (:meth:`offrl.data.transitions.TransitionArrays.to_table`),
and stored as the table's ``mc_returns`` column. A row whose return is unknown — a table built without a
discount, or a transition collected online whose episode has not ended yet — holds −inf: no lower bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

#: The mc_returns value of a row whose return is not known: max(Q, −inf) = Q, no bound.
UNKNOWN = float("-inf")


@dataclass(frozen=True)
class ReturnsToGo:
    """How the table's Monte-Carlo returns are computed: the discount and the sparse-failure rule."""

    discount: float
    sparse_reward: bool = False

    @staticmethod
    def of(critic_cfg: Any) -> "ReturnsToGo":
        """The returns a critic's config asks for: its ``discount``, and ``sparse_reward`` where it has one
        (``calql``); every critic's table carries them, only Cal-QL reads them."""
        return ReturnsToGo(float(critic_cfg.discount), bool(getattr(critic_cfg, "sparse_reward", False)))

    def episode(self, rewards: np.ndarray, terminals: np.ndarray, failure_reward: float | None = None) -> np.ndarray:
        """G_t of one episode (rewards and terminals [T]); see the module docstring."""
        r = np.asarray(rewards, np.float64)
        if len(r) == 0:
            return np.zeros(0, np.float32)
        if self.sparse_reward and failure_reward is not None and r[-1] == failure_reward:
            return np.full(len(r), failure_reward / (1.0 - self.discount), np.float32)
        d = np.asarray(terminals, np.float64)
        out = np.empty_like(r)
        # a terminal cuts the sum: G restarts at every terminal, so split there and sum each piece backwards
        cuts = np.flatnonzero(d[:-1] > 0) + 1
        for piece in np.split(np.arange(len(r)), cuts):
            seg = r[piece][::-1]
            out[piece] = lfilter([1.0], [1.0, -self.discount], seg)[::-1]  # G_t = r_t + γ G_{t+1}
        return out.astype(np.float32)

    def table(self, rewards: np.ndarray, terminals: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """G_t [N] of every transition of a flat table whose episodes start at ``episode_starts`` (sorted)."""
        rewards = np.asarray(rewards)
        n = len(rewards)
        out = np.empty(n, np.float32)
        if n == 0:
            return out
        failure = float(np.min(rewards)) if self.sparse_reward else None
        starts = np.asarray(episode_starts, np.int64)
        ends = np.append(starts[1:], n)
        for a, b in zip(starts, ends):
            out[a:b] = self.episode(rewards[a:b], np.asarray(terminals)[a:b], failure)
        return out


__all__ = ["ReturnsToGo", "UNKNOWN"]
