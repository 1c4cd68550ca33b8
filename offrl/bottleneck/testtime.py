"""Test-time policy improvement, for every actor: OPEX and TTT (Park et al. 2024, §6; docs/bottleneck.md).

**OPEX** (on-the-fly policy extraction): at every evaluation step the actor's
action is moved uphill on the critic,

    a ← clip(a + η · ∇ₐ Q(s, a), −1, 1),   ``eval.opex_steps`` times, η = ``eval.opex_lr``,

with Q the critic's online ensemble under its minimum (``CriticView.q_for_actor``,
differentiable in the action). It costs ``opex_steps`` critic forward and
backward passes per action, and a second evaluation pass.

**TTT** (test-time training): the actor continues its own training loss on the
transitions the plain evaluation visited (state, the action the policy took,
reward as the critic was trained on it, next state), the critic frozen, for
``eval.ttt_steps`` updates with a fresh Adam at a constant learning rate
(``eval.ttt_lr``, else the actor's own); then the adapted policy is evaluated
on the same episode seeds, with the same acting noise, as the plain one. The
adapted weights are thrown away: training continues from the unadapted ones.
It costs ``ttt_steps`` actor updates and a second evaluation pass. (Park et
al. update the policy online during evaluation with the frozen value function;
their code is not public. Here adaptation happens once, between two passes, so
a result is reproducible and paired with the plain evaluation.)

Both run through the shared learner's own machinery (the learner for TTT, the
stacked agents for OPEX), for all seeds at once, outside the training step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from offrl.component import Noise
from offrl.data.transitions import TransitionArrays, TransitionTable
from offrl.learner.members import StackedAgents

#: (stack, observations [E, n, O], generators) -> unit actions [E, n, A]
ActFn = Callable[[StackedAgents, Tensor, list[torch.Generator]], Tensor]


def opex_actions(stack: StackedAgents, obs: Tensor, actions: Tensor, steps: int, lr: float) -> Tensor:
    """``steps`` steps of a ← clip(a + lr · ∇ₐ Q(s, a), −1, 1) for every seed ([E, n, A])."""
    critic = stack.template.critic
    a = actions.detach().float()
    for _ in range(steps):
        with torch.enable_grad():
            a = a.detach().requires_grad_(True)
            q = stack.map(lambda o, x: critic.q_for_actor(o, x), obs, a)  # [E, n]; Q_i are constants
            (grad,) = torch.autograd.grad(q.sum(), a)
        a = (a.detach() + lr * grad).clamp(-1.0, 1.0)
    return a.detach()


def opex_act(act: ActFn, steps: int, lr: float) -> ActFn:
    """``act`` followed by OPEX's steps up the critic."""
    def run(stack: StackedAgents, obs: Tensor, gens: list[torch.Generator]) -> Tensor:
        return opex_actions(stack, obs, act(stack, obs, gens), steps, lr)

    return run


class SeedTables(TransitionTable):
    """Each seed's own transitions in one table: seed e's batch indices fall in its own rows only.

    The learner draws uniforms for the indices (:meth:`index_noise`) and this table maps them to rows
    of the right seed (:meth:`indices`), as a table of changing size would."""

    def __init__(self, parts: Sequence[TransitionArrays], device: torch.device) -> None:
        tables = [p.to_table("cpu") for p in parts]
        counts = [len(t) for t in tables]
        data = torch.cat([t.data for t in tables]).to(device)
        first = tables[0]
        fields = [data[:, a:b].reshape(len(data), *shape)
                  for a, b, shape in zip(first.offsets[:-1], first.offsets[1:], first.shapes)]
        super().__init__(*fields)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.starts = torch.as_tensor(starts, dtype=torch.float64, device=device).reshape(-1, 1)
        self.counts = torch.as_tensor(counts, dtype=torch.float64, device=device).reshape(-1, 1)

    def index_noise(self, batch_size: int) -> Noise:
        return Noise.uniform(batch_size)

    def indices(self, draw: Tensor) -> Tensor:
        """[E, B] uniforms -> rows start_e + ⌊u · n_e⌋ of seed e's part."""
        rows = torch.minimum(torch.floor(draw.double() * self.counts), self.counts - 1)
        return (self.starts + rows).long()


@contextlib.contextmanager
def kept_random_state() -> Iterator[None]:
    """Building agents seeds the global RNGs; the trainer's process must not notice."""
    py, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def ttt_config(cfg: Any, steps: int, lr: float, batch: int) -> Any:
    """The run's config as TTT trains the actor: one update per iteration of ``batch``, constant LR."""
    a = cfg.actor_cfg
    changes: dict[str, Any] = {"updates_per_step": 1, "update_every": 1, "batch_size": batch or a.batch_size}
    if hasattr(a, "cosine_decay"):
        changes["cosine_decay"] = False
    if lr and hasattr(a, "lr"):
        changes["lr"] = lr
    trainer = dataclasses.replace(cfg.trainer, phases="joint", critic_steps=0, shared_batch=False, steps=steps)
    return dataclasses.replace(cfg, actor_cfg=dataclasses.replace(a, **changes), trainer=trainer)


def ttt_adapt(cfg: Any, stack: StackedAgents, parts: Sequence[TransitionArrays], seeds: Sequence[int],
              stream_seeds: Sequence[int], obs_dim: int, act_dim: int, steps: int, lr: float, batch: int,
              device: torch.device) -> StackedAgents:
    """A copy of ``stack`` whose actors took ``steps`` updates of their own loss on ``parts`` (seed e's
    visited transitions), the critics frozen; ``stream_seeds`` seed the batch and noise draws."""
    from offrl.learner import Learner, UpdateSchedule
    from offrl.trainer.agents import build_agent

    tcfg = ttt_config(cfg, steps, lr, batch)
    b = tcfg.actor_cfg.batch_size
    with kept_random_state():
        agents = [build_agent(tcfg, obs_dim, act_dim, s, steps) for s in seeds]
    table = SeedTables(parts, device)
    # the critic phase ends at iteration 1 and the learner starts there: only the actor is ever updated
    schedule = UpdateSchedule(critic_batch=b, actor_batch=b, critic_until=1, actor_from=1)
    learner = Learner(agents, list(stream_seeds), {"critic": table, "actor": table}, schedule, device, "off")
    learner.stack.load_member_states([{n: t[e] for n, t in stack.state.items()} for e in range(len(seeds))])
    learner.iterations = 1
    learner.train(steps)
    return learner.stack
