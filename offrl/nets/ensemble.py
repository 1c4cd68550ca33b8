"""Batched ensembles: K independent MLPs whose weights carry a leading member axis.

The twin Q (K = 2) is one ``EnsembleMLP``: one batched matmul
(``torch.baddbmm``) evaluates every member. Initialisation matches K separate
``nn.Linear`` layers (PyTorch's default Kaiming-uniform). (Seeds trained
together are stacked by the learner, not here: see :mod:`offrl.learner.members`.)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from einops import repeat
from torch import nn

from offrl.errors import ConfigError
from offrl.nets.mlp import check_ln_position, hidden_layer, make_activation


class EnsembleLinear(nn.Module):
    """x [K, B, in] -> [K, B, out] with weights [K, in, out]."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """K MLPs in parallel. Input [B, in] (shared) or [K, B, in]; output [K, B, out]."""

    def __init__(
        self,
        members: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str = "relu",
        layer_norm: bool = False,
        layer_norm_position: str = "before-activation",
    ) -> None:
        super().__init__()
        check_ln_position(layer_norm_position, "layer_norm_position")
        self.ln_position = layer_norm_position
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden layer widths must be positive integers, got {list(hidden)}")
        self.members = members
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(h) for h in hidden) if layer_norm else None
        self.out = EnsembleLinear(members, dims[-1], out_dim)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = repeat(x, "b d -> k b d", k=self.members)
        for i, layer in enumerate(self.layers):
            x = hidden_layer(x, layer, None if self.norms is None else self.norms[i], self.act, self.ln_position)
        return self.out(x)
