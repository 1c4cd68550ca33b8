"""Acting for every seed at once: the one function the trainer, its evaluation workers and benchmarks call.

Seed ``e``'s acting noise comes from ``generators[e]`` (evaluation derives them
from (seed, step, round)), so a seed acts the same in a group as alone, and the
same in the trainer's process as in an evaluation worker's.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import Tensor

from offrl.learner.members import StackedAgents


def act(stack: StackedAgents, obs: Tensor, generators: list[torch.Generator], device: torch.device,
        precision: Callable[[], ContextManager[None]] = contextlib.nullcontext,
        core: Callable[[Tensor, dict[str, Tensor]], Tensor] | None = None) -> Tensor:
    """Actions [E, n, A] in [−1, 1] for observations [E, n, O].

    ``core`` replaces the batched call of the actors (e.g. a compiled :func:`act_core`); ``precision``
    wraps it (bf16 autocast when the run asks for it).
    """
    actor = stack.template.actor
    spec = actor.act_noise(obs.shape[1])
    noise = {name: torch.stack([s.draw(g, device) for g in generators]) for name, s in spec.items()}
    with precision():
        out = (core or act_core(stack))(obs, noise)
    return out.float()


def act_core(stack: StackedAgents) -> Callable[[Tensor, dict[str, Tensor]], Tensor]:
    """The batched actor call on drawn noise: static shapes, no draws — what can be compiled."""
    actor, critic = stack.template.actor, stack.template.critic

    def run(obs: Tensor, noise: dict[str, Tensor]) -> Tensor:
        return stack.map(lambda o, z: actor.act(o, critic, z), obs, noise)

    return run
