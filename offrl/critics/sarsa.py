"""Critic ``sarsa``: in-sample SARSA, Q of the behaviour policy (Park et al. 2024).

Park, Frans, Levine & Kumar ("Is Value Learning Really the Main Bottleneck in
Offline RL?", NeurIPS 2024) use SARSA as the simplest in-sample value learner:
Q is backed up through the action the dataset took next,

    y = r + γ (1 − terminal) · agg_i Q̄_i(s', a'_data),
    L_Q = Σ_i mean_b m_b (Q_i(s, a) − y)² / max(Σ_b m_b, 1),

so Q → Q^μ, the behaviour policy's value; it never queries an action outside
the data. ``agg`` is ``q_agg`` (min: clipped double Q; mean).

Missing next actions. The last transition of an episode that was truncated
(a timeout, or the dataset's end) has no a'_data: the data stops at s'. Its
target would need an action nobody took, so offrl does not invent one: the
mask m = max(terminal, has_next_action) drops those transitions from the Q
loss (m = 0), and every other transition counts once. Terminal transitions
need no next action (their bootstrap term is 0) and stay in. On locomotion
data this drops one transition per truncated episode (≈0.1%); the metric
``critic/valid_fraction`` reports the kept share of each batch.

V(s), when an actor asks for it, comes from the actor (offrl.critics.q_only).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from offrl.component import NoiseTensors
from offrl.critics.base import aggregate_q, check_q_agg
from offrl.critics.q_only import QOnlyConfig, QOnlyCritic
from offrl.critics.registry import CRITICS
from offrl.data.transitions import Batch

TARGET_AGGS = ("min", "mean")


@dataclass
class SarsaConfig(QOnlyConfig):
    q_agg: str = field(default="min", metadata={"help": "Target aggregation over Q̄_i(s', a'): min | mean"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_q_agg(self.q_agg, "critic.q_agg", TARGET_AGGS)


@CRITICS.register("sarsa", "In-sample SARSA: Q of the behaviour policy, backed up through the dataset's next action")
class SarsaCritic(QOnlyCritic):
    Config = SarsaConfig
    cfg: SarsaConfig

    @torch.no_grad()
    def td_target(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, m): y = r + γ (1 − terminal) agg Q̄(s', a'_data); m = 1 where y is defined."""
        q_next = aggregate_q(self._q_all(self.q_target, batch.next_observations, batch.next_actions), self.cfg.q_agg)
        y = batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * q_next
        valid = torch.maximum(batch.terminals, batch.has_next_action)  # m: terminal, or a'_data exists
        return y, valid

    def q_loss(self, batch: Batch, noise: NoiseTensors, actor: object) -> tuple[torch.Tensor, dict]:
        """L_Q = Σ_i Σ_b m_b (Q_i(s, a) − y)² / max(Σ_b m_b, 1)."""
        y, m = self.td_target(batch)
        q_all = self._q_all(self.q_net, batch.observations, batch.actions)  # [K, B]
        loss = ((q_all - y) ** 2 * m).sum() / m.sum().clamp_min(1.0)
        return loss, {"critic/q_loss": loss, "critic/q_mean": q_all.mean(), "critic/target_mean": y.mean(),
                      "critic/valid_fraction": m.mean()}
