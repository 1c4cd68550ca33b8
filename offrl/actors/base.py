"""What every actor (policy extractor) implements.

An actor learns from dataset batches and the critic's narrow
:class:`~offrl.critics.CriticView` (Q, V, advantage, implicit weight, Q
differentiable in the action) and acts on batches of observations. Actions
live in [−1, 1]; the trainer maps them to the environment's bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from offrl.component import Component
from offrl.critics.base import CriticView
from offrl.data.transitions import Batch
from offrl.errors import ConfigError


@dataclass
class ActorConfig:
    """Hyperparameters every actor has."""

    batch_size: int = field(default=256, metadata={"help": "Batch size of each actor update"})
    updates_per_step: int = field(default=1, metadata={"help": "Actor updates per trainer iteration"})

    def __post_init__(self) -> None:
        for n in ("batch_size", "updates_per_step"):
            if getattr(self, n) <= 0:
                raise ConfigError(f"actor.{n} must be positive, got {getattr(self, n)!r}")


class Actor(Component):
    """Base class: ``update`` (one gradient step) and ``act`` (evaluation actions)."""

    Config = ActorConfig

    def __init__(self, cfg: ActorConfig, obs_dim: int, act_dim: int, total_updates: int, device: torch.device) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim, self.total_updates = obs_dim, act_dim, total_updates

    def update(self, batch: Batch, critic: CriticView) -> dict[str, torch.Tensor]:
        """One actor update; returns detached scalar metrics (no host sync)."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, generator: torch.Generator) -> torch.Tensor:
        """Evaluation actions in [−1, 1] for observations [B, O] -> [B, A]."""
        raise NotImplementedError
