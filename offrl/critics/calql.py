"""Critic ``calql``: calibrated CQL (Cal-QL, Nakamoto et al. 2023), made for offline-to-online fine-tuning.

CQL pushes Q down on the policy's actions without limit, so an offline Q can sit far below the true
values; when fine-tuning starts, the first online data look better than the critic's pessimism and the
policy unlearns (the paper's "initial dip"). Cal-QL keeps the penalty from pushing the policy's values
below a reference value — the Monte-Carlo return of the behaviour policy from the same state, G(s) —
by lower-bounding the policy terms inside the penalty's logsumexp (the paper's eq. (5.1); CORL's
algorithms/finetune/cal_ql.py):

    Q_i(s, a_k) ← max(Q_i(s, a_k), G(s))   for a_k ~ π(s) and a_k ~ π(s'),

the uniform samples and the data term left as in ``cql`` (:mod:`offrl.critics.cql`). Where Q_i(s, a_k) is
already above G(s) the penalty is CQL's; where it is below, the policy term stops pulling it down (its
gradient is 0), which is the calibration. The metric ``critic/bound_rate`` is the share of policy terms
that were below the bound (CORL's ``bound_rate_*``).

G(s) is each transition's discounted return-to-go in its episode, computed once from the dataset's
episodes with the critic's discount (``Batch.mc_returns``, :mod:`offrl.data.returns`): exact for episodes
that end in a terminal, the discounted sum to the end of the data for truncated ones (CORL's choice),
r_fail/(1 − γ) for failed episodes of a sparse task with ``sparse_reward`` (CORL's ``is_sparse_reward``).
In the online phase a collected transition gets its G when its episode ends (until then: no bound).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from einops import rearrange

from offrl.critics.cql import CQLConfig, CQLCritic
from offrl.critics.registry import CRITICS
from offrl.data.transitions import Batch


@dataclass
class CalQLConfig(CQLConfig):
    sparse_reward: bool = field(
        default=False,
        metadata={"help": "Sparse task (CORL's is_sparse_reward): an episode ending on the data's lowest reward "
                          "(a failure) gets G = r_min / (1 − γ) at every step; else the discounted sum to its end"},
    )


@CRITICS.register("calql", "Calibrated CQL: CQL's penalty with the policy's Q lower-bounded by Monte-Carlo returns "
                           "(Cal-QL, for fine-tuning)")
class CalQLCritic(CQLCritic):
    Config = CalQLConfig
    cfg: CalQLConfig
    NAME: ClassVar[str] = "calql"

    def bound_policy_q(self, q_pi: torch.Tensor, batch: Batch) -> torch.Tensor:
        """max(Q_i(s, a_k), G(s)) for the policy samples [K, B, n]."""
        bound = rearrange(batch.mc_returns, "b -> 1 b 1")
        return torch.maximum(q_pi, bound)

    def gaps(self, batch: Batch, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gap, metrics = super().gaps(batch, q)
        bound = rearrange(batch.mc_returns, "b -> 1 b 1")
        below = torch.cat([q["pi"] < bound, q["next_pi"] < bound], dim=-1).float().mean()
        return gap, {**metrics, "critic/bound_rate": below}


__all__ = ["CalQLConfig", "CalQLCritic"]
