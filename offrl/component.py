"""The contract every critic and actor follows: parameter groups, losses, explicit noise, after-step updates.

A component *declares* what to learn; the shared :class:`~offrl.learner.Learner`
does the learning (optimisers, LR schedules, gradient clipping, update ratios,
compilation, several seeds at once). A component never calls ``backward``,
``step`` or ``zero_grad``:

- :meth:`Component.param_groups` names the parameters optimised together and
  their optimiser settings (:class:`ParamGroup`);
- :meth:`Component.stages` lists the losses of one update, in order, each with
  the group its gradient updates (:class:`Stage`). A loss is a plain function
  ``loss(batch, noise, other) -> (scalar, metrics)`` of the batch, the other
  component (the critic for an actor, the actor for a critic) and the random
  tensors it declared; later stages see the parameters earlier stages updated;
- :meth:`Component.update_noise` declares the random tensors one update needs
  (:class:`Noise`); the learner draws them from the member's own generator,
  which is what makes a seed's results independent of the other seeds trained
  beside it;
- :meth:`Component.after_update` runs in-place foreach updates after each
  update (Polyak targets, EMA).

Gradients only reach the stage's group: everything else a loss reads (target
networks, the other component) is a constant of that stage, so actor losses
never move the critic and a critic's Q loss never moves V.

Persistent tensors (parameters and persistent buffers) are per-seed training
state; non-persistent buffers are constants shared by every seed (schedules,
fixed embeddings).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import torch
from torch import nn

from offrl.errors import ConfigError

#: LR schedules the learner knows (:mod:`offrl.learner.optim`).
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ParamGroup:
    """Parameters optimised together by one Adam (AdamW when ``weight_decay`` > 0).

    ``schedule`` ``cosine`` decays the LR to 0 over ``total_updates`` updates
    of this group; ``max_grad_norm`` > 0 clips the group's global gradient norm
    (per seed).
    """

    params: Iterable[nn.Parameter]
    lr: float
    weight_decay: float = 0.0
    schedule: str = "constant"
    total_updates: int = 1
    max_grad_norm: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self.params = tuple(self.params)
        if not self.params:
            raise ConfigError("A parameter group needs at least one parameter.")
        if self.schedule not in LR_SCHEDULES:
            raise ConfigError(f"Unknown LR schedule '{self.schedule}'. Valid choices: {', '.join(LR_SCHEDULES)}.")
        if not self.lr > 0:
            raise ConfigError(f"A learning rate must be positive, got {self.lr!r}.")
        if not self.max_grad_norm >= 0:
            raise ConfigError(f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm!r}.")
        self.total_updates = max(1, int(self.total_updates))


@dataclass(frozen=True)
class Stage:
    """One loss of an update and the parameter group its gradient updates."""

    group: str
    loss: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class Noise:
    """A random tensor a component needs, drawn by the learner from the seed's own generator."""

    kind: str  # normal | uniform | randint
    shape: tuple[int, ...]
    high: int = 0  # randint: values in [0, high)

    @staticmethod
    def normal(*shape: int) -> "Noise":
        return Noise("normal", tuple(shape))

    @staticmethod
    def uniform(*shape: int) -> "Noise":
        return Noise("uniform", tuple(shape))

    @staticmethod
    def randint(high: int, *shape: int) -> "Noise":
        return Noise("randint", tuple(shape), int(high))

    def draw(self, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        if self.kind == "normal":
            return torch.randn(self.shape, generator=generator, device=device)
        if self.kind == "uniform":
            return torch.rand(self.shape, generator=generator, device=device)
        return torch.randint(0, self.high, self.shape, generator=generator, device=device)


NoiseSpec = dict[str, Noise]
NoiseTensors = dict[str, torch.Tensor]


def draw_noise(spec: NoiseSpec, generator: torch.Generator | None, device: torch.device | str) -> NoiseTensors:
    """Draw every tensor of ``spec`` (in its order) from ``generator`` — for calling components directly."""
    return {name: n.draw(generator, torch.device(device)) for name, n in spec.items()}


class Component(nn.Module):
    """Base of critics and actors (see the module docstring for the contract)."""

    Config: ClassVar[type]
    #: Critics: the stage after which the actor updates when critic and actor share a batch
    #: (``trainer.shared_batch``); ``None`` = after the last one.
    actor_after: ClassVar[str | None] = None
    #: Critics: True when the critic's own loss reads the actor (a backup through the policy's actions, a
    #: penalty on them), so it cannot be trained before or without it (``trainer.phases=two-phase`` refuses it).
    trains_on_actor: ClassVar[bool] = False

    def param_groups(self) -> dict[str, ParamGroup]:
        """Group name -> :class:`ParamGroup`. Every trainable parameter belongs to exactly one group."""
        raise NotImplementedError

    def stages(self) -> list[Stage]:
        """The losses of one update, in order."""
        raise NotImplementedError

    def update_noise(self, batch_size: int, other: "Component") -> NoiseSpec:
        """Random tensors one update needs (name -> :class:`Noise`); none by default."""
        return {}

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """In-place updates after each update of this component (``step``: its update count, a tensor)."""


def polyak_(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], rate: float | torch.Tensor) -> None:
    """θ̄ ← θ̄ + ρ (θ − θ̄) in place, one fused kernel per tensor list (``rate`` may be a device tensor)."""
    target, online = list(target), list(online)
    if isinstance(rate, torch.Tensor):
        delta = torch._foreach_sub(online, target)
        torch._foreach_mul_(delta, rate)
        torch._foreach_add_(target, delta)
    else:
        torch._foreach_lerp_(target, online, rate)


__all__ = ["Component", "LR_SCHEDULES", "Noise", "draw_noise", "NoiseSpec", "NoiseTensors", "ParamGroup", "Stage", "polyak_"]
