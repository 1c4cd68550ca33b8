"""Exponential moving average of a module's weights; diffusion actors sample with it (IDQL).

θ̄ ← θ̄ + rate·(θ − θ̄) after every update (rate 0.001 in IDQL, i.e. Polyak
averaging with τ = 0.001). The shadow is a frozen deep copy of the module,
registered as a submodule so that it is part of the actor's checkpointed,
per-seed state; it belongs to no parameter group, so no optimiser touches it.
``update`` is one fused in-place foreach op with no host sync (graph-capturable);
the rate may be a device tensor (0 on steps where the EMA is not updated).

Cadence (:meth:`EMA.step`, Diffusion-QL's and EDP's ``update_ema_every`` and
``step_start_ema``): after update number n (1, 2, …) the shadow copies the live
weights while n ≤ ``start``, and after that moves by ``rate`` only when
``every`` divides n. Both are computed from the device step count with
``torch.where``, never by branching on a tensor.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from offrl.component import polyak_
from offrl.errors import ConfigError


class EMA(nn.Module):
    """A shadow copy θ̄ of ``module``'s parameters (``self.module``), updated in place."""

    def __init__(self, module: nn.Module, rate: float = 0.001, every: int = 1, start: int = 0) -> None:
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"EMA rate must lie in (0, 1], got {rate!r}.")
        if every < 1 or start < 0:
            raise ConfigError(f"EMA cadence needs every >= 1 and start >= 0, got every={every!r}, start={start!r}.")
        self.rate, self.every, self.start = float(rate), int(every), int(start)
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @staticmethod
    def _state(module: nn.Module) -> dict[str, Tensor]:
        """Parameters and persistent buffers (non-persistent buffers are constants, never averaged)."""
        return dict(module.state_dict(keep_vars=True))

    def _pairs(self, live: nn.Module) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        shadow, source = self._state(self.module), self._state(live)
        if shadow.keys() != source.keys():
            missing = sorted(shadow.keys() ^ source.keys())
            raise ConfigError(f"EMA: module does not match the shadow copy ({', '.join(missing)}).")
        floats = [n for n in shadow if shadow[n].is_floating_point()]
        others = [n for n in shadow if not shadow[n].is_floating_point()]
        return ([shadow[n] for n in floats], [source[n].detach() for n in floats],
                [shadow[n] for n in others], [source[n].detach() for n in others])

    @torch.no_grad()
    def update(self, live: nn.Module, rate: float | Tensor | None = None) -> None:
        """θ̄ ← θ̄ + rate·(θ − θ̄) for floating tensors; integer buffers are copied."""
        shadow_f, live_f, shadow_o, live_o = self._pairs(live)
        if shadow_f:
            polyak_(shadow_f, live_f, self.rate if rate is None else rate)
        for s, v in zip(shadow_o, live_o):
            s.copy_(v)

    def rate_at(self, step: Tensor) -> Tensor:
        """The rate after update number ``step``: ``rate`` when ``every`` divides it and it is past ``start``,
        else 0 (a device tensor)."""
        due = (torch.remainder(step, self.every) == 0) & (step > self.start)
        return torch.where(due, self.rate, 0.0)

    @torch.no_grad()
    def step(self, live: nn.Module, step: Tensor) -> None:
        """The cadenced update after update number ``step`` (a tensor, 1 for the first update)."""
        if self.every == 1 and self.start == 0:  # static (config, not data): a plain EMA every update
            self.update(live)
            return
        if self.start > 0:  # θ̄ ← (1 − c)·θ̄ + c·θ with c = 1(step ≤ start): an exact copy, or nothing
            shadow_f, live_f, _, _ = self._pairs(live)
            c = (step <= self.start).to(shadow_f[0].dtype)
            torch._foreach_mul_(shadow_f, 1.0 - c)
            torch._foreach_add_(shadow_f, torch._foreach_mul(live_f, c))
        self.update(live, self.rate_at(step))

    @torch.no_grad()
    def copy_to(self, live: nn.Module) -> None:
        """Write θ̄ into ``live`` (e.g. to evaluate or export the averaged weights)."""
        shadow_f, live_f, shadow_o, live_o = self._pairs(live)
        for s, v in zip(shadow_f + shadow_o, live_f + live_o):
            v.copy_(s)
