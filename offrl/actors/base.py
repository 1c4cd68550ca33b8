"""What every actor (policy extractor) implements.

An actor learns from dataset batches and the critic's narrow
:class:`~offrl.critics.CriticView` (Q, V, advantage, implicit weight, Q
differentiable in the action) and acts on batches of observations. Actions
live in [−1, 1]; the trainer maps them to the environment's bounds.

Training follows :mod:`offrl.component`'s contract (param groups, losses as
stages, declared noise, after-step updates); acting adds
:meth:`Actor.act_noise` and :meth:`Actor.act`.

The one method a critic may call on its actor: :meth:`Actor.next_actions`
(with its randomness declared by :meth:`Actor.next_action_noise`). Critics
that back up through the policy (``td3``) use it for a' at s'; critics
without V (``td3``, ``sarsa``) use it to estimate V(s) = E_π Q(s, a). It is
the policy being trained, sampled cheaply (its target or EMA copy where it
has one), never through the critic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from offrl.component import Component, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView
from offrl.errors import ConfigError
from offrl.nets.init import check_init


@dataclass
class ActorConfig:
    """Hyperparameters every actor has."""

    batch_size: int = field(default=256, metadata={"help": "Batch size of each actor update"})
    updates_per_step: int = field(default=1, metadata={"help": "Actor updates per trainer iteration"})
    update_every: int = field(
        default=1, metadata={"help": "Update the actor on every k-th trainer iteration only (TD3's policy delay: 2)"}
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the actor's global gradient norm per seed; 0 = off"}
    )
    init: str = field(
        default="default",
        metadata={"help": "Weight initialisation: default (PyTorch's) | orthogonal (IQL's code: gain √2, "
                          "zero biases)"},
    )

    def __post_init__(self) -> None:
        check_init(self.init, "actor.init")
        for n in ("batch_size", "updates_per_step", "update_every"):
            if getattr(self, n) <= 0:
                raise ConfigError(f"actor.{n} must be positive, got {getattr(self, n)!r}")
        if not self.max_grad_norm >= 0:
            raise ConfigError(f"actor.max_grad_norm must be >= 0 (0 = off), got {self.max_grad_norm}")


class Actor(Component):
    """Base class: the training contract of :class:`~offrl.component.Component` plus acting."""

    Config = ActorConfig

    def __init__(self, cfg: ActorConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim, self.total_updates = obs_dim, act_dim, max(1, int(total_updates))

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        """Random tensors :meth:`next_actions` needs for ``batch_size`` states, each with the batch on dim 0
        (none by default: a deterministic policy)."""
        return {}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """The policy's actions [B, A] in [−1, 1] for states [B, O], for a critic's backup or V estimate.

        Cheap and critic-free: the target/EMA copy where the actor keeps one; no gradient.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement next_actions")

    def act_noise(self, batch_size: int) -> NoiseSpec:
        """Random tensors :meth:`act` needs for ``batch_size`` observations (none by default)."""
        return {}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        """Evaluation actions in [−1, 1] for observations [B, O] -> [B, A]."""
        raise NotImplementedError
