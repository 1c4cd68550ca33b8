"""Critic ``expectile`` (IQL): V is the τ-expectile of Q over dataset actions.

f(u) = |τ − 1(u < 0)| · u²  ;  implicit weight w ∝ |f'(u)| / |u| = 2 |τ − 1(u < 0)|
(the constant 2 cancels once normalised over candidates, so w = |τ − 1(Q < V)|).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.critics.base import CriticConfig, IQLCritic
from offrl.critics.registry import CRITICS
from offrl.validation import OPEN_UNIT, Range


@dataclass
class ExpectileConfig(CriticConfig):
    tau: float = field(default=0.7, metadata={"help": "Expectile τ ∈ (0, 1): 0.7 locomotion, 0.9 AntMaze"})

    RANGES: ClassVar[dict[str, Range]] = {**CriticConfig.RANGES, "tau": OPEN_UNIT}


def expectile_weight(u: torch.Tensor, tau: float) -> torch.Tensor:
    """|τ − 1(u < 0)|: τ above V, 1 − τ below."""
    return torch.where(u < 0, 1.0 - tau, tau)


@CRITICS.register("expectile", "IQL: V is the τ-expectile of Q (asymmetric squared loss)")
class ExpectileCritic(IQLCritic):
    Config = ExpectileConfig
    cfg: ExpectileConfig

    def value_loss(self, u: torch.Tensor) -> torch.Tensor:
        return expectile_weight(u, self.cfg.tau) * u**2

    def implicit_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        return expectile_weight(u, self.cfg.tau)
