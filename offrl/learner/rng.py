"""One random generator per seed, so each seed draws exactly what it would draw alone.

A solo run of seed ``s`` draws its batch indices and every noise tensor from
one device generator seeded with ``s``, in a fixed order. Training E seeds
together draws the same tensors, in the same order, from E such generators and
stacks them on a leading seed axis; member ``e`` therefore sees the batches and
the noise of the solo run of its seed, whatever else is trained beside it.

The draws are small (indices, noise) and cost one kernel per seed and tensor;
in ``graph`` mode they are captured with the step (the generators are
registered with the CUDA graph), so they cost nothing on the host.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from offrl.component import Noise


class MemberGenerators:
    """Device generators, one per seed, drawing stacked ``[E, ...]`` tensors."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.device = device
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def draw(self, plan: Sequence[Noise]) -> list[torch.Tensor]:
        """Every tensor of ``plan``, drawn per seed in plan order, stacked over seeds."""
        per_seed = [[spec.draw(g, self.device) for spec in plan] for g in self.generators]
        return [torch.stack([draws[i] for draws in per_seed]) for i in range(len(plan))]

    def member_state(self, e: int) -> torch.Tensor:
        return self.generators[e].get_state()

    def load_member_states(self, states: Sequence[torch.Tensor]) -> None:
        for g, s in zip(self.generators, states):
            g.set_state(s.cpu() if isinstance(s, torch.Tensor) else s)

    def state(self) -> list[Any]:
        return [g.get_state() for g in self.generators]
