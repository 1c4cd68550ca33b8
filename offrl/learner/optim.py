"""Adam(W) over stacked per-seed parameters, with the LR schedule and the step count on the device.

Why not ``torch.optim.Adam``: its ``step`` inserts a graph break under
``torch.compile`` and reads gradients from ``.grad`` fields, while the learner
computes gradients functionally (``torch.func.grad``) for several seeds at
once. The update is PyTorch's Adam/AdamW exactly:

    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
    θ ← θ (1 − lr·wd)   (AdamW only),
    θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).

Adam is elementwise, so one optimiser over parameters stacked on a leading seed
axis *is* an independent optimiser per seed. The LR is a device tensor
recomputed from the device step count at every step (cosine decay included),
so nothing is read back to the host and a captured CUDA graph keeps decaying
the LR when replayed. In eager mode the fused kernel (``torch._fused_adam_``,
the one ``torch.optim.Adam(fused=True)`` runs) does the update; under
``torch.compile`` the same formula is written with foreach ops, which the
compiler fuses into the step (measured fastest, docs/performance.md).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from offrl.component import ParamGroup


def lr_factor(schedule: str, done: Tensor, total: int) -> Tensor:
    """The LR multiplier after ``done`` updates: 1 (constant) or ½(1 + cos(π·min(done, T)/T)) (cosine).

    Equals ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T)``'s closed form at update ``done``.
    """
    if schedule == "cosine":
        return 0.5 * (1.0 + torch.cos(math.pi * torch.clamp(done, max=float(total)) / total))
    return torch.ones_like(done)


class GroupOptimizer:
    """Adam(W) for one parameter group of stacked tensors, updated in place."""

    def __init__(self, names: list[str], params: list[Tensor], group: ParamGroup, fused: bool) -> None:
        self.names = names  # state keys of the parameters, in order
        self.params = params
        self.group = group
        device = params[0].device
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.count = torch.zeros((), device=device)  # updates done (float32, shared by every seed)
        self.lr = torch.full((), group.lr, device=device)  # current LR, refreshed each step
        self.fused = fused and hasattr(torch, "_fused_adam_")

    @torch.no_grad()
    def step(self, grads: list[Tensor]) -> None:
        g = self.group
        self.lr.copy_(g.lr * lr_factor(g.schedule, self.count, g.total_updates))
        self.count.add_(1.0)
        beta1, beta2 = g.betas
        if self.fused and not torch.compiler.is_compiling():
            fn = torch._fused_adamw_ if g.weight_decay > 0 else torch._fused_adam_
            fn(self.params, grads, self.exp_avg, self.exp_avg_sq, [], [self.count] * len(self.params),
               lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=g.weight_decay, eps=g.eps,
               amsgrad=False, maximize=False)
            return
        if g.weight_decay > 0:  # AdamW: decoupled decay
            torch._foreach_mul_(self.params, 1.0 - self.lr * g.weight_decay)
        torch._foreach_lerp_(self.exp_avg, grads, 1.0 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1.0 - beta2)
        bias1 = 1.0 - torch.pow(beta1, self.count)
        bias2_sqrt = torch.sqrt(1.0 - torch.pow(beta2, self.count))
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, g.eps)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, -self.lr / bias1)
        torch._foreach_add_(self.params, update)

    # --- checkpoints: per seed ------------------------------------------------------------
    def member_state(self, e: int) -> dict[str, Any]:
        return {"exp_avg": [m[e].clone() for m in self.exp_avg], "exp_avg_sq": [v[e].clone() for v in self.exp_avg_sq],
                "count": self.count.clone()}

    @torch.no_grad()
    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
            m.copy_(torch.stack([s["exp_avg"][i] for s in states]))
            v.copy_(torch.stack([s["exp_avg_sq"][i] for s in states]))
        self.count.copy_(states[0]["count"])
        self.lr.copy_(self.group.lr * lr_factor(self.group.schedule, self.count, self.group.total_updates))


def clip_grad_norm(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """Scale ``grads`` so their global L2 norm is at most ``max_norm`` (``torch.nn.utils.clip_grad_norm_``'s
    rule, ε = 1e-6). Called per seed (inside ``vmap``), so each seed is clipped by its own norm.
    Returns the clipped gradients and the norm before clipping."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * scale for g in grads], norm
