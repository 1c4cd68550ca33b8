"""Discrete noise schedules β_1..β_T for the DDPM forward process (IDQL's VP, EDP's scaled linear, cosine).

Index convention: the tensors hold step t = 1..T at index t − 1, so index 0 is
the least noisy step. ``ᾱ_t = ∏_{s≤t} (1 − β_s)`` and a noised action is
``a_t = √ᾱ_t · a + √(1 − ᾱ_t) · ε``. Betas are computed in float64 and stored
as float32 so that ᾱ's cumulative product does not drift.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from offrl.errors import ConfigError, suggest

MAX_BETA = 0.999
"""Upper clip for β: β = 1 would make ᾱ = 0 and √(1/ᾱ − 1) infinite."""


@dataclass(frozen=True)
class NoiseSchedule:
    """β_t, α_t = 1 − β_t and ᾱ_t for t = 1..T (float32 tensors of length T)."""

    name: str
    betas: Tensor  # β_t
    alphas: Tensor  # α_t = 1 − β_t
    alpha_bars: Tensor  # ᾱ_t = ∏_{s≤t} α_s

    @property
    def T(self) -> int:  # noqa: N802 - the paper's symbol
        return int(self.betas.shape[0])

    @classmethod
    def from_betas(cls, name: str, betas: Tensor) -> NoiseSchedule:
        """Build the schedule from β (any float dtype; products taken in float64)."""
        b64 = betas.detach().to(torch.float64)
        if b64.ndim != 1 or b64.numel() < 1:
            raise ConfigError(
                f"A noise schedule needs a 1-D tensor of β, got shape {tuple(b64.shape)}."
            )
        if not bool(((b64 > 0) & (b64 < 1)).all()):
            raise ConfigError(f"Noise schedule '{name}': every β_t must lie in (0, 1).")
        alphas = 1.0 - b64
        return cls(
            name=name,
            betas=b64.to(torch.float32),
            alphas=alphas.to(torch.float32),
            alpha_bars=torch.cumprod(alphas, 0).to(torch.float32),
        )

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """The same schedule with its tensors on ``device``."""
        return NoiseSchedule(
            self.name, self.betas.to(device), self.alphas.to(device), self.alpha_bars.to(device)
        )


def _steps(T: int) -> Tensor:
    """t = 1..T in float64."""
    return torch.arange(1, T + 1, dtype=torch.float64)


def vp_schedule(T: int, beta_min: float = 0.1, beta_max: float = 10.0) -> NoiseSchedule:
    """IDQL's variance-preserving schedule, a discretisation of the continuous VP SDE.

    β_t = 1 − exp(−β_min/T − ½(β_max − β_min)(2t − 1)/T²); with T = 5 this gives
    ᾱ ≈ [0.804, 0.435, 0.159, 0.039, 0.0064], so even 5 steps end near N(0, I).
    """
    _check_T(T)
    t = _steps(T)
    betas = 1.0 - torch.exp(-beta_min / T - 0.5 * (beta_max - beta_min) * (2 * t - 1) / T**2)
    return NoiseSchedule.from_betas("vp", betas.clamp(max=MAX_BETA))


def linear_schedule(
    T: int, beta_start: float = 1e-4, beta_end: float = 0.02, scale_with_T: bool = True
) -> NoiseSchedule:
    """DDPM's linear β, scaled by 1000/T as EDP does so that short chains still reach noise.

    Unscaled (IDQL's ``linear``, β 1e-4 → 2e-2) gives ᾱ_T ≈ 0.95 at T = 5: the
    chain would start sampling from something that is mostly data. β is
    clipped at ``MAX_BETA`` (it exceeds 1 for T < 50 once scaled, so short
    chains spend their last steps at β = 0.999, e.g. ᾱ_T ≈ 1e-12 at T = 5). With T = 1
    the single β is ``beta_end`` (linspace would give ``beta_start``, leaving
    ᾱ_1 close to 1).
    """
    _check_T(T)
    scale = 1000.0 / T if scale_with_T else 1.0
    start, end = scale * beta_start, scale * beta_end
    betas = torch.linspace(start, end, T, dtype=torch.float64) if T > 1 else torch.tensor(
        [end], dtype=torch.float64
    )
    return NoiseSchedule.from_betas("linear", betas.clamp(max=MAX_BETA))


def cosine_schedule(T: int, s: float = 0.008) -> NoiseSchedule:
    """Nichol & Dhariwal's cosine schedule: ᾱ(τ) = cos²(((τ + s)/(1 + s))·π/2)/ᾱ(0), τ = t/T.

    β_t = 1 − ᾱ(t/T)/ᾱ((t − 1)/T), clipped at ``MAX_BETA`` (the last β would be 1).
    """
    _check_T(T)
    tau = torch.arange(0, T + 1, dtype=torch.float64) / T
    f = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return NoiseSchedule.from_betas("cosine", betas.clamp(max=MAX_BETA))


SCHEDULES: dict[str, Callable[[int], NoiseSchedule]] = {
    "vp": vp_schedule,
    "linear": linear_schedule,
    "cosine": cosine_schedule,
}


def make_schedule(name: str, T: int) -> NoiseSchedule:
    """The schedule called ``name`` ('vp', 'linear' or 'cosine') with T steps."""
    if name not in SCHEDULES:
        choices = sorted(SCHEDULES)
        raise ConfigError(
            f"Unknown noise schedule '{name}'.{suggest(str(name), choices)} "
            f"Valid choices: {', '.join(choices)}."
        )
    _check_T(T)
    return SCHEDULES[name](int(T))


def _check_T(T: int) -> None:  # noqa: N802
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ConfigError(
            f"Invalid number of diffusion steps T={T!r}: must be an integer >= 1."
        )
