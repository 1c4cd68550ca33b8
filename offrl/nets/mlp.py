"""Plain MLPs (actors, value nets), with dropout driven by explicitly passed noise.

Dropout draws its mask from a uniform tensor the caller passes in (declared as
:class:`~offrl.component.Noise` by the component), not from the global RNG, so
a seed trained beside others drops exactly the units it would drop alone.
Without noise (acting) no unit is dropped, whatever the module's train/eval mode.

LayerNorm placement (``layer_norm_position``): ``before-activation`` is
Linear → LayerNorm → activation (offrl's default); ``after-activation`` is
Linear → activation → LayerNorm, what FQL's (``seohongpark/fql``
utils/networks.py ``MLP``) and ReBRAC's (``tinkoff-ai/ReBRAC`` src/networks.py)
code do. ``gelu-tanh`` is GELU's tanh approximation, flax's ``nn.gelu``
default and so FQL's activation; ``gelu`` is the exact one.
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import torch
from torch import nn

from offrl.component import Noise
from offrl.errors import ConfigError, unknown

ACTIVATIONS = {"relu": nn.ReLU, "mish": nn.Mish, "gelu": nn.GELU,
               "gelu-tanh": functools.partial(nn.GELU, approximate="tanh"), "tanh": nn.Tanh, "silu": nn.SiLU,
               "swish": nn.SiLU}
#: Where LayerNorm sits in a hidden layer (module docstring).
LN_POSITIONS = ("before-activation", "after-activation")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def check_ln_position(position: str, key: str) -> None:
    """A clear error for an unknown LayerNorm placement (``key``: the config key that holds it)."""
    if position not in LN_POSITIONS:
        raise unknown(f"LayerNorm position ({key})", position, LN_POSITIONS)


def hidden_layer(x: torch.Tensor, layer: nn.Module, norm: nn.Module | None, act: nn.Module,
                 position: str) -> torch.Tensor:
    """One hidden layer: Linear, then LayerNorm before or after the activation (``position``)."""
    x = layer(x)
    if norm is None:
        return act(x)
    return act(norm(x)) if position == "before-activation" else norm(act(x))


def dropout(x: torch.Tensor, u: torch.Tensor | None, p: float) -> torch.Tensor:
    """Inverted dropout with mask 1(u ≥ p)/(1 − p) from uniforms ``u`` (identity when ``u`` is None)."""
    if u is None or p <= 0:
        return x
    return x * (u >= p).to(x.dtype) / (1.0 - p)


class MLP(nn.Module):
    """in -> [Linear -> (LayerNorm) -> act -> (dropout)] x len(hidden) -> Linear(out) (the LayerNorm after
    the activation with ``layer_norm_position="after-activation"``)."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: str = "relu",
        layer_norm: bool = False,
        dropout: float = 0.0,
        input_layer_norm: bool = False,
        layer_norm_position: str = "before-activation",
    ) -> None:
        super().__init__()
        check_ln_position(layer_norm_position, "layer_norm_position")
        self.ln_position = layer_norm_position
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
            x = hidden_layer(x, layer, None if self.norms is None else self.norms[i], self.act, self.ln_position)
            if noise is not None and self.p > 0:
                x = dropout(x, noise[f"{prefix}{i}"], self.p)
        return self.out(x)
