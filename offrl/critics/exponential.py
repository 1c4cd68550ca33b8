"""Critic ``exponential`` (IDQL §4.1): V is a soft maximum of Q over dataset actions.

f(u) = exp(αu) − αu,  u = min Q̄(s, a) − V(s),  f'(u) = α (e^{αu} − 1).

The loss. Like IDQL's code we minimise a surrogate whose gradient in V is f's
with e^{αu} clipped at c (``clip``, 6 in IDQL)::

    L(u) = α · (sg(min(e^{αu}, c)) − 1) · u
    ∂L/∂V = −α (min(e^{αu}, c) − 1)          (= −f'(u) for e^{αu} ≤ c)

IDQL's code omits the leading α; that only rescales V's gradient by a
constant (same fixed point; at the default α = 1 the two are identical).
Fixed point: without the clip (c = inf) V = (1/α) log E[exp(αQ)]; with it, V is
the root of E[min(exp(α(Q − V)), c)] = 1, which sits lower (for Q ~ N(0, 2²),
α = 1, c = 6: ≈1.33 instead of the unclipped ασ²/2 = 2.0). The exponent is in any case capped at
``MAX_LOSS_EXPONENT`` so that c = inf cannot produce inf/NaN.

α is reward-scale dependent: u is in Q units, so α = 1 assumes advantages of
order 1 or below (the bandit, rewards in [0, 1]). After locomotion reward
scaling (r ← 1000 r / (R_max − R_min): per-step rewards ~1, Q ~ 100)
advantages of several units are common, and every sample with
u > log(c)/α ≈ 1.8 sits in the clipped regime; when most do, the V gradient is
a constant α(c − 1) above V and ≈ α well below it, i.e. close to a quantile
loss with τ ≈ (c − 1)/c. Lower α (or raise c) to keep it exponential.

Implicit policy: w = |f'(u)| / |u| = α |e^{αu} − 1| / |u|. With x = αu and
z = |x| / 2 it factors as w = α² · e^{x/2} · sinh(z)/z, so

    log w = 2 log α + x/2 + h(z),   h(z) = log(sinh z / z) ≥ 0 (even, increasing),

with h from its series z²/6 − z⁴/180 + z⁶/2835 for z < 0.1 and from
log(−expm1(−2z) / 2z) + z above. This is exact and finite for every finite u:
w increases monotonically in u, → α² as u → 0, ≈ α/|u| for u ≪ 0 and
≈ α e^{αu}/u for u ≫ 0 (exponential tilting, like AWR with β = α). The
``implicit`` selection rule normalises softmax(log w) over a state's
candidates, so relative weights stay exact even where e^{αu} would overflow;
:meth:`implicit_weight_u` returns w = exp(min(log w, ``MAX_LOG_WEIGHT``)),
finite and monotone, with candidates beyond e^{60} tied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.critics.base import CriticConfig, IQLCritic
from offrl.critics.registry import CRITICS
from offrl.validation import POSITIVE, Range

#: Cap on αu inside the loss's exp (e^80 ≈ 5.5e34 < float32 max): only bites when clip = inf.
MAX_LOSS_EXPONENT = 80.0
#: Below this z = α|u|/2, h(z) = log(sinh z / z) is taken from its series (error < z⁸/37800).
SERIES_Z = 0.1
#: Cap on log w in :meth:`ExponentialCritic.implicit_weight_u` (e^60 ≈ 1.1e26, room to sum many).
MAX_LOG_WEIGHT = 60.0


@dataclass
class ExponentialConfig(CriticConfig):
    alpha: float = field(
        default=1.0,
        metadata={"help": "α > 0 of f(u) = exp(αu) − αu; reward-scale dependent (1.0 assumes advantages ~1)"},
    )
    clip: float = field(
        default=6.0,
        metadata={"help": "Clip c > 1 of e^{αu} in V's gradient (IDQL: 6); inf disables it"},
    )

    # c ≤ 1 makes the V gradient non-positive everywhere (V → −∞); inf disables the clip
    RANGES: ClassVar[dict[str, Range]] = {**CriticConfig.RANGES, "alpha": POSITIVE,
                                          "clip": Range(1.0, lo_open=True, inf=True)}


def exponential_surrogate(u: torch.Tensor, alpha: float, clip: float) -> torch.Tensor:
    """α · (sg(min(e^{αu}, c)) − 1) · u: its gradient in V is −f'(u) with e^{αu} clipped at c."""
    max_exponent = min(math.log(clip), MAX_LOSS_EXPONENT)
    e = torch.exp(torch.clamp(alpha * u.detach(), max=max_exponent))  # sg(min(e^{αu}, c))
    return alpha * (e - 1.0) * u


def exponential_log_weight(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """log w, w = α |e^{αu} − 1| / |u|, exact and finite for every finite u (see module doc)."""
    x = alpha * u
    z = 0.5 * x.abs()
    # h(z) = log(sinh z / z): series near 0, closed form (z floored so the unused branch stays finite) above
    z2 = z * z
    h_near = z2 / 6.0 - z2 * z2 / 180.0 + z2 * z2 * z2 / 2835.0
    zf = z.clamp_min(SERIES_Z)
    h_far = torch.log(-torch.expm1(-2.0 * zf) / (2.0 * zf)) + zf
    h = torch.where(z < SERIES_Z, h_near, h_far)
    return 2.0 * math.log(alpha) + 0.5 * x + h  # log w = 2 log α + x/2 + h(|x|/2)


@CRITICS.register("exponential", "IDQL: V is a soft maximum of Q (exponential loss, clipped gradient)")
class ExponentialCritic(IQLCritic):
    Config = ExponentialConfig
    cfg: ExponentialConfig

    def value_loss(self, u: torch.Tensor) -> torch.Tensor:
        # surrogate of f(u) = e^{αu} − αu:  α (sg(min(e^{αu}, c)) − 1) u
        return exponential_surrogate(u, self.cfg.alpha, self.cfg.clip)

    def implicit_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        # w = α |e^{αu} − 1| / |u|, capped at e^{MAX_LOG_WEIGHT}
        return torch.exp(torch.clamp(self.implicit_log_weight_u(u), max=MAX_LOG_WEIGHT))

    def implicit_log_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        """log w(u), used by the ``implicit`` selection rule (see :mod:`offrl.critics.selection`)."""
        return exponential_log_weight(u, self.cfg.alpha)
