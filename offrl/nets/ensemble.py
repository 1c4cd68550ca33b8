"""Batched ensembles: E independent MLPs whose weights carry a leading member axis.

The twin Q (E = 2) uses it now; training several seeds in one process stacks
members the same way, so no rewrite is needed for that. One batched matmul
(``torch.baddbmm``) evaluates every member; initialisation matches E separate
``nn.Linear`` layers (PyTorch's default Kaiming-uniform).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from einops import repeat
from torch import nn

from offrl.nets.mlp import make_activation


class EnsembleLinear(nn.Module):
    """x [E, B, in] -> [E, B, out] with weights [E, in, out]."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        with torch.no_grad():  # same distribution as nn.Linear's default init, per member
            for e in range(members):
                w = torch.empty(out_dim, in_dim)
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                self.weight[e].copy_(w.T)
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        w, b = (self.weight.detach(), self.bias.detach()) if detach_params else (self.weight, self.bias)
        return torch.baddbmm(b, x, w)


class EnsembleMLP(nn.Module):
    """E MLPs in parallel. Input [B, in] (shared) or [E, B, in]; output [E, B, out]."""

    def __init__(
        self,
        members: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.members = members
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(h) for h in hidden) if layer_norm else None
        self.out = EnsembleLinear(members, dims[-1], out_dim)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``detach_params=True`` evaluates without letting gradients reach the weights
        (actors differentiate Q in the action while the critic stays untouched)."""
        if x.dim() == 2:
            x = repeat(x, "b d -> e b d", e=self.members)
        for i, layer in enumerate(self.layers):
            x = layer(x, detach_params)
            if self.norms is not None:
                norm = self.norms[i]
                w, b = (norm.weight.detach(), norm.bias.detach()) if detach_params else (norm.weight, norm.bias)
                x = nn.functional.layer_norm(x, norm.normalized_shape, w, b, norm.eps)
            x = self.act(x)
        return self.out(x, detach_params)
