"""Plain MLPs (actors, value nets), with dropout driven by explicitly passed noise.

Dropout draws its mask from a uniform tensor the caller passes in (declared as
:class:`~offrl.component.Noise` by the component), not from the global RNG, so
a seed trained beside others drops exactly the units it would drop alone.
Without noise (acting) no unit is dropped, whatever the module's train/eval mode.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from offrl.component import Noise
from offrl.errors import ConfigError, unknown

ACTIVATIONS = {"relu": nn.ReLU, "mish": nn.Mish, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU,
               "swish": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def dropout(x: torch.Tensor, u: torch.Tensor | None, p: float) -> torch.Tensor:
    """Inverted dropout with mask 1(u ≥ p)/(1 − p) from uniforms ``u`` (identity when ``u`` is None)."""
    if u is None or p <= 0:
        return x
    return x * (u >= p).to(x.dtype) / (1.0 - p)


class MLP(nn.Module):
    """in -> [Linear -> (LayerNorm) -> act -> (dropout)] x len(hidden) -> Linear(out)."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str = "relu",
        layer_norm: bool = False,
        dropout: float = 0.0,
        input_layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden layer widths must be positive integers, got {list(hidden)}")
        self.hidden = [int(h) for h in hidden]
        self.p = float(dropout)
        self.input_norm = nn.LayerNorm(in_dim) if input_layer_norm else None
        dims = [in_dim, *self.hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(h) for h in self.hidden) if layer_norm else None
        self.act = make_activation(activation)
        self.out = nn.Linear(dims[-1], out_dim)

    def noise(self, batch_size: int, prefix: str = "dropout") -> dict[str, Noise]:
        """The uniforms one training forward pass of ``batch_size`` rows needs (none without dropout)."""
        if self.p <= 0:
            return {}
        return {f"{prefix}{i}": Noise.uniform(batch_size, h) for i, h in enumerate(self.hidden)}

    def forward(self, x: torch.Tensor, noise: Mapping[str, torch.Tensor] | None = None,
                prefix: str = "dropout") -> torch.Tensor:
        if self.input_norm is not None:
            x = self.input_norm(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = self.act(x)
            if noise is not None and self.p > 0:
                x = dropout(x, noise[f"{prefix}{i}"], self.p)
        return self.out(x)
