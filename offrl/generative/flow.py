"""Flow matching over actions: a velocity field, its loss and the Euler sampler (FQL's BC flow).

Park, Li & Levine 2025 (FQL, ``seohongpark/fql``) model the behaviour policy
with the simplest flow: a straight path from noise to data,

    x₀ ~ N(0, I),  x₁ = a (a dataset action),  t ~ U[0, 1],
    x_t = (1 − t)·x₀ + t·x₁,           whose velocity is  dx_t/dt = x₁ − x₀,

and regress a velocity field v_θ(s, x_t, t) on it:

    L_flow = mean_{b, j} (v_θ(s, x_t, t) − (x₁ − x₀))²_j      (mean over batch and action dims).

Sampling integrates dx/dt = v_θ(s, x, t) from t = 0 (noise) to t = 1 (an
action) with ``steps`` Euler steps x ← x + v_θ(s, x, i/steps)/steps,
i = 0..steps−1, then clips to [−1, 1] (FQL: 10 steps). Time is continuous
in [0, 1] and enters the network as a raw scalar input, as in FQL's
``ActorVectorField``.

Everything is explicit: the caller passes x₀ and t (declared as
:class:`~offrl.component.Noise` by the actor), shapes are static, and the
Euler loop is a fixed Python loop over steps — no host sync.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from offrl.component import Noise, NoiseSpec
from offrl.nets import MLP


class VelocityField(nn.Module):
    """v_θ(s, x, t) = MLP(concat[s, x, t]) → [B, A]; t ∈ [0, 1] as [B] or [B, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int], activation: str = "gelu",
                 layer_norm: bool = False, layer_norm_position: str = "before-activation") -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = MLP(obs_dim + act_dim + 1, hidden_dims, act_dim, activation, layer_norm=layer_norm,
                       layer_norm_position=layer_norm_position)

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        t = t.reshape(x.shape[0], 1).to(x.dtype)
        return self.net(torch.cat([obs, x, t], dim=-1))


def interpolate(x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 − t)·x₀ + t·x₁ (t [B, 1] or broadcastable)."""
    return (1.0 - t) * x0 + t * x1


def flow_noise(batch_size: int, act_dim: int) -> NoiseSpec:
    """What one flow-matching loss draws: t ~ U[0, 1] [B, 1] and x₀ ~ N(0, I) [B, A]."""
    return {"t": Noise.uniform(batch_size, 1), "x0": Noise.normal(batch_size, act_dim)}


def flow_matching_loss(field: nn.Module, obs: Tensor, x1: Tensor, x0: Tensor, t: Tensor) -> Tensor:
    """L_flow = mean (v_θ(s, x_t, t) − (x₁ − x₀))², mean over batch and action dims (FQL)."""
    t = t.reshape(x1.shape[0], 1).to(x1.dtype)
    x_t = interpolate(x0, x1, t)
    return ((field(obs, x_t, t) - (x1 - x0)) ** 2).mean()


def euler_sample(field: nn.Module, obs: Tensor, x0: Tensor, steps: int, clip: float | None = 1.0) -> Tensor:
    """x₁ ≈ x₀ + Σ_i v_θ(s, x_{t_i}, t_i)/steps, t_i = i/steps, clipped to ±clip at the end (FQL).

    Differentiable in the field's parameters unless called under ``torch.no_grad``.
    """
    x = x0
    for i in range(steps):  # a static loop over the steps
        t = torch.full((x.shape[0], 1), i / steps, device=x.device, dtype=x.dtype)
        x = x + field(obs, x, t) / steps
    return x if clip is None else x.clamp(-clip, clip)


__all__ = ["VelocityField", "euler_sample", "flow_matching_loss", "flow_noise", "interpolate"]
