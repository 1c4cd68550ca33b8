"""A device-resident transition table and batch sampling without Python loops.

Everything the training step touches lives on the training device as float32,
and batches are drawn with a ``torch.Generator`` on that device, so the step
needs no host round-trip (a prerequisite for CUDA-graph capture).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A batch of transitions (all float32, leading dim B)."""

    observations: torch.Tensor  # [B, O]
    actions: torch.Tensor  # [B, A], in [-1, 1]
    rewards: torch.Tensor  # [B]
    next_observations: torch.Tensor  # [B, O]
    terminals: torch.Tensor  # [B], 1.0 only for true terminations (not truncations)


@dataclass
class TransitionArrays:
    """Flat numpy transition table as read from a dataset (before device transfer)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray  # truncations; kept for information, never used as terminal
    episode_starts: np.ndarray  # index of each episode's first transition
    episode_returns: np.ndarray  # undiscounted return of each episode

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def to_table(self, device: torch.device | str) -> "TransitionTable":
        t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)  # noqa: E731
        return TransitionTable(
            t(self.observations), t(self.actions), t(self.rewards), t(self.next_observations), t(self.terminals)
        )


@dataclass
class TransitionTable:
    """The dataset on the device; :meth:`sample` draws uniform batches with replacement."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def device(self) -> torch.device:
        return self.rewards.device

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(0, len(self), (batch_size,), device=self.device, generator=generator)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> Batch:
        """The transitions at ``idx`` (any shape, e.g. [E, B] for E seeds): fields [*idx.shape, ...]."""
        flat = idx.reshape(-1)
        return Batch(*(getattr(self, f.name).index_select(0, flat).reshape(*idx.shape, *getattr(self, f.name).shape[1:])
                       for f in fields(self)))
