"""Exponential moving average of a module's weights; diffusion actors sample with it (IDQL).

θ̄ ← θ̄ + rate·(θ − θ̄) after every optimiser step (rate 0.001 in IDQL, i.e.
Polyak averaging with τ = 0.001). The shadow is a deep copy of the module,
kept in eval mode with ``requires_grad=False``, so it can be called directly
(``ema.module.sample_ddpm(obs)``) and captured in a CUDA graph: ``update`` is
one fused in-place ``_foreach_lerp_`` with no host sync.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from offrl.errors import ConfigError


class EMA:
    """A shadow copy θ̄ of ``module``'s parameters and floating buffers, updated in place.

    Not an ``nn.Module`` on purpose: registering the shadow as a submodule
    would put its parameters into ``parent.parameters()`` (and an optimiser)
    and let ``parent.train()`` switch its dropout back on.
    """

    def __init__(self, module: nn.Module, rate: float = 0.001) -> None:
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"EMA rate must lie in (0, 1], got {rate!r}.")
        self.rate = float(rate)
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def _pairs(
        self, module: nn.Module
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """(shadow floats, live floats, shadow others, live others), matched by name."""
        shadow = dict(self.module.named_parameters()) | dict(self.module.named_buffers())
        live = dict(module.named_parameters()) | dict(module.named_buffers())
        if shadow.keys() != live.keys():
            missing = sorted(shadow.keys() ^ live.keys())
            raise ConfigError(f"EMA: module does not match the shadow copy ({', '.join(missing)}).")
        floats = [n for n in shadow if shadow[n].is_floating_point()]
        others = [n for n in shadow if not shadow[n].is_floating_point()]
        return (
            [shadow[n] for n in floats],
            [live[n].detach() for n in floats],
            [shadow[n] for n in others],
            [live[n].detach() for n in others],
        )

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """θ̄ ← θ̄ + rate·(θ − θ̄) for floating tensors; integer buffers are copied."""
        shadow_f, live_f, shadow_o, live_o = self._pairs(module)
        if shadow_f:
            torch._foreach_lerp_(shadow_f, live_f, self.rate)
        for s, v in zip(shadow_o, live_o):
            s.copy_(v)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write θ̄ into ``module`` (e.g. to evaluate or export the averaged weights)."""
        shadow_f, live_f, shadow_o, live_o = self._pairs(module)
        for s, v in zip(shadow_f + shadow_o, live_f + live_o):
            v.copy_(s)

    def to(self, device: torch.device | str) -> EMA:
        """Move the shadow to ``device`` (it is not a submodule of anything)."""
        self.module.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "shadow": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rate = float(state["rate"])
        self.module.load_state_dict(state["shadow"])
