"""Critic ``quantile`` (IDQL §4.1): V is the τ-quantile of Q over dataset actions.

f(u) = |τ − 1(u < 0)| · |u|,  u = min Q̄(s, a) − V(s).
Gradient in V: ∂f/∂V = −f'(u) = −τ above V, +(1 − τ) below, so the fixed
point has a fraction τ of the Q mass below V: the τ-quantile.

Implicit policy: π_imp ∝ μ · w with w = |f'(u)| / |u| = |τ − 1(u < 0)| / |u|.
w diverges at u = 0 (the quantile's implicit actor concentrates on actions
whose Q equals V), so |u| is floored at ε = ``adv_floor``:

    w(u) = |τ − 1(u < 0)| / max(|u|, ε).

ε is in Q units. Differences below ε are below what any critic resolves
(and, at Q ~ 1e2–1e3 after locomotion reward scaling, close to float32
resolution), so ranking candidates by them only amplifies noise; ε also bounds
the largest-to-smallest weight ratio over candidates at
(τ / (1 − τ)) · max|u| / ε. The default 0.01 suits rewards of order 1
(the bandit; roughly 1–10% of a typical |Q − V|); scale it with the rewards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.critics.base import CriticConfig, IQLCritic
from offrl.critics.registry import CRITICS
from offrl.validation import OPEN_UNIT, POSITIVE, Range


@dataclass
class QuantileConfig(CriticConfig):
    tau: float = field(default=0.6, metadata={"help": "Quantile τ ∈ (0, 1) (IDQL: 0.6)"})
    adv_floor: float = field(
        default=0.01,
        metadata={"help": "Floor ε on |Q − V| in the implicit weight |τ − 1(u<0)| / max(|u|, ε) (Q units)"},
    )

    RANGES: ClassVar[dict[str, Range]] = {**CriticConfig.RANGES, "tau": OPEN_UNIT, "adv_floor": POSITIVE}


def quantile_tau_weight(u: torch.Tensor, tau: float) -> torch.Tensor:
    """|τ − 1(u < 0)|: τ above V, 1 − τ below."""
    return torch.where(u < 0, 1.0 - tau, tau)


def quantile_loss(u: torch.Tensor, tau: float) -> torch.Tensor:
    """f(u) = |τ − 1(u < 0)| · |u| (elementwise)."""
    return quantile_tau_weight(u, tau) * u.abs()


def quantile_log_weight(u: torch.Tensor, tau: float, floor: float) -> torch.Tensor:
    """log w = log|τ − 1(u < 0)| − log max(|u|, ε) (finite for every finite u)."""
    return torch.log(quantile_tau_weight(u, tau)) - torch.log(u.abs().clamp_min(floor))


@CRITICS.register("quantile", "IDQL: V is the τ-quantile of Q (asymmetric absolute loss)")
class QuantileCritic(IQLCritic):
    Config = QuantileConfig
    cfg: QuantileConfig

    def value_loss(self, u: torch.Tensor) -> torch.Tensor:
        # f(u) = |τ − 1(u<0)| · |u|
        return quantile_loss(u, self.cfg.tau)

    def implicit_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        # w = |τ − 1(u<0)| / max(|u|, ε)  ∈ (0, max(τ, 1−τ)/ε]
        return quantile_tau_weight(u, self.cfg.tau) / u.abs().clamp_min(self.cfg.adv_floor)

    def implicit_log_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        """log w(u), used by the ``implicit`` selection rule (see :mod:`offrl.critics.selection`)."""
        return quantile_log_weight(u, self.cfg.tau, self.cfg.adv_floor)
