"""The shared learner: one training step for every (critic, actor) pairing and every seed at once.

The trainer keeps the loop, the cadence, evaluation, logs and checkpoints; the
learner owns what happens inside an iteration:

- the stacked state of E seeds (:class:`~offrl.learner.members.StackedAgents`)
  and their generators (:class:`~offrl.learner.rng.MemberGenerators`);
- one Adam(W) per parameter group, LR schedules on the device, per-seed global
  gradient-norm clipping (:mod:`offrl.learner.optim`);
- the update schedule: ``critic.updates_per_step`` critic updates, then
  ``actor.updates_per_step`` actor updates on iterations where the iteration
  index is a multiple of ``actor.update_every`` (TD3's policy delay), each
  update on its own batch drawn on the device — or, with ``trainer.shared_batch``,
  one batch for both, the actor's stages placed after the critic stage the
  critic names in ``actor_after`` (IQL's code: V → actor → Q → targets);
- the update order (``trainer.update_order``): ``sequential`` (the above) or
  ``joint`` (FQL's code, :meth:`Learner._joint_iteration`): one batch, every
  stage's gradient from the parameters before the step, then every group
  steps, as one optimiser on the sum of the losses would;
- the speed mode: ``off`` (eager), ``on`` (``torch.compile`` of the whole
  iteration) or ``graph`` (CUDA only: ``steps_per_call`` iterations captured in
  one CUDA graph, data and noise drawn inside it, replayed).

An iteration reads nothing back to the host: batches and noise are drawn on
the device, losses and metrics stay tensors (summed in place), LRs are device
tensors, and the only Python branches depend on the iteration index, never on
data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from offrl.component import Component, Noise, Stage
from offrl.data.transitions import TransitionTable
from offrl.errors import ConfigError
from offrl.learner.members import Agent, StackedAgents, functional_call, member, unsqueeze_tree
from offrl.learner.optim import GroupOptimizer, clip_grad_norm
from offrl.learner.rng import MemberGenerators

#: Values of ``trainer.compile``: ``auto`` picks per device (docs/performance.md).
SPEED_MODES = ("auto", "off", "on", "graph")
#: Values of ``trainer.update_order`` (docs/algorithms.md).
UPDATE_ORDERS = ("sequential", "joint")
#: On CPU, ``auto`` compiles only runs at least this long: compiling costs ~15–40 s here and
#: saves ~3 ms per iteration (docs/performance.md), so shorter runs are faster eager.
AUTO_COMPILE_MIN_STEPS = 20_000


@dataclass(frozen=True)
class UpdateSchedule:
    """Updates per trainer iteration, batch sizes and the policy delay."""

    critic_updates: int = 1
    critic_batch: int = 256
    actor_updates: int = 1
    actor_batch: int = 256
    actor_every: int = 1
    shared_batch: bool = False
    order: str = "sequential"

    def __post_init__(self) -> None:
        if self.order not in UPDATE_ORDERS:
            from offrl.errors import unknown

            raise unknown("update order (trainer.update_order)", self.order, UPDATE_ORDERS)
        if self.order == "joint" and (self.critic_updates != 1 or self.actor_updates != 1
                                      or self.critic_batch != self.actor_batch):
            raise ConfigError(
                "trainer.update_order=joint takes one step on one batch for critic and actor: it needs "
                f"critic.updates_per_step=1 and actor.updates_per_step=1 (got {self.critic_updates} and "
                f"{self.actor_updates}) and equal batch sizes (critic.batch_size={self.critic_batch}, "
                f"actor.batch_size={self.actor_batch})."
            )
        if self.shared_batch and (self.critic_updates != 1 or self.actor_updates != 1
                                  or self.critic_batch != self.actor_batch):
            raise ConfigError(
                "trainer.shared_batch=true needs one critic and one actor update per iteration on equal batches "
                f"(critic.updates_per_step={self.critic_updates}, actor.updates_per_step={self.actor_updates}, "
                f"critic.batch_size={self.critic_batch}, actor.batch_size={self.actor_batch})."
            )

    def actor_due(self, iteration: int) -> bool:
        return iteration % self.actor_every == 0

    def actor_updates_in(self, iterations: int) -> int:
        """Actor optimiser steps over the first ``iterations`` iterations (for cosine schedules); with the
        joint order the actor's groups step on every iteration (zero gradients where it is not due)."""
        if self.order == "joint":
            return iterations
        return -(-iterations // self.actor_every) * self.actor_updates


def resolve_speed_mode(mode: str, device: torch.device, steps: int) -> str:
    """``auto`` → ``graph`` on CUDA; on CPU ``on`` for runs of at least AUTO_COMPILE_MIN_STEPS, else ``off``.

    ``graph`` without CUDA is a clear error.
    """
    if mode not in SPEED_MODES:
        from offrl.errors import unknown

        raise unknown("speed mode (trainer.compile)", mode, SPEED_MODES)
    if mode == "graph" and device.type != "cuda":
        raise ConfigError(
            f"trainer.compile=graph captures CUDA graphs and needs a CUDA device; this run is on {device.type}. "
            "Use trainer.compile=on (torch.compile, CPU and CUDA) or off."
        )
    if mode == "auto":
        if device.type == "cuda":
            return "graph"
        return "on" if steps >= AUTO_COMPILE_MIN_STEPS else "off"
    return mode


class _Update:
    """One component's update: its batch size, noise, stages (as gradient functions) and after-step."""

    def __init__(self, name: str, component: Component, other: Component, batch_size: int) -> None:
        self.name = name
        self.component = component
        self.other = other
        self.batch_size = batch_size
        self.noise = component.update_noise(batch_size, other)
        self.stages: list[tuple[str, Stage, Callable[..., Any]]] = []


class Learner:
    """Trains E seeds of one (critic, actor) pairing in lockstep (see the module docstring)."""

    def __init__(self, agents: list[Agent], seeds: list[int], table: TransitionTable, schedule: UpdateSchedule,
                 device: torch.device, mode: str = "off", steps_per_call: int = 1) -> None:
        if len(agents) != len(seeds) or not agents:
            raise ValueError("one agent per seed is required")
        if mode not in ("off", "on", "graph"):
            raise ValueError(f"unresolved speed mode {mode!r} (see resolve_speed_mode)")
        if mode == "graph" and steps_per_call % schedule.actor_every:
            raise ConfigError(
                f"trainer.steps_per_call={steps_per_call} must be a multiple of actor.update_every="
                f"{schedule.actor_every}, so every captured graph holds the same updates."
            )
        self.device = device
        self.seeds = list(seeds)
        self.members = len(agents)
        self.table = table
        self.schedule = schedule
        self.mode = mode
        self.steps_per_call = steps_per_call
        self.stack = StackedAgents(agents, device)
        critic, actor = self.stack.template.critic, self.stack.template.actor
        self.updates = {
            "critic": _Update("critic", critic, actor, schedule.critic_batch),
            "actor": _Update("actor", actor, critic, schedule.actor_batch),
        }
        self.optims: dict[str, GroupOptimizer] = {}
        self._build_groups(fused=device.type in ("cpu", "cuda"))
        self.stage_gradients: dict[tuple[str, int], Callable[..., Any]] = {}  # (group key, stage index) -> grads
        for update in self.updates.values():
            for i, stage in enumerate(update.component.stages()):
                key = f"{update.name}/{stage.group}"
                if key not in self.optims:
                    raise ConfigError(f"{update.name} stage names group '{stage.group}', which its param_groups() "
                                      f"does not declare ({', '.join(self.optims)}).")
                gradients = self._stage_gradients(key, stage, update.other)
                self.stage_gradients[(key, i)] = gradients
                update.stages.append((key, stage, self._applied(key, gradients)))
        self.stack.seal()
        self.rng = MemberGenerators(seeds, device)
        self.update_counts = {name: torch.zeros((), device=device) for name in self.updates}
        self.iterations = 0
        self.sums: dict[str, Tensor] = {}  # metric -> [E] sums since the last read
        self.metric_owner: dict[str, str] = {}  # metric -> the component whose updates it averages over
        self._counts = {name: 0 for name in self.updates}  # updates since the last read, per component
        self._compiled: Callable[..., None] | None = None
        self._compiled_variants: set[bool] = set()
        self._graph: Any = None
        self.compile_seconds = 0.0  # time spent compiling / capturing (shown by the trainer)

    # --- setup -----------------------------------------------------------------------------
    def _build_groups(self, fused: bool) -> None:
        owner: dict[str, str] = {}
        for update in self.updates.values():
            for gname, group in update.component.param_groups().items():
                key = f"{update.name}/{gname}"
                try:
                    names = [self.stack.name_of(p) for p in group.params]
                except KeyError:
                    raise ConfigError(f"Group {key}: a parameter that is not part of the agent.") from None
                for n in names:
                    if not n.startswith(f"{update.name}."):
                        raise ConfigError(f"Group {key} holds '{n}', a parameter of another component.")
                    if n in owner:
                        raise ConfigError(f"Parameter '{n}' is in two groups: {owner[n]} and {key}.")
                    owner[n] = key
                self.optims[key] = GroupOptimizer(names, [self.stack.state[n] for n in names], group, fused)
        loose = sorted(self.stack.trainable - set(owner))
        if loose:
            raise ConfigError(
                f"Trainable parameters in no parameter group: {', '.join(loose)}. Add them to a group in "
                "param_groups(), or freeze them with requires_grad_(False) (targets, EMA copies)."
            )

    def _applied(self, key: str, gradients: Callable[..., Any]) -> Callable[..., Any]:
        """(batch, noise) -> metrics: the stage's per-seed gradients, clipped, applied by its optimiser."""
        optim = self.optims[key]

        def run(batch: Any, noise: dict[str, Tensor]) -> dict[str, Tensor]:
            grads, metrics = gradients(batch, noise)
            optim.step(grads)
            return metrics

        return run

    def _stage_gradients(self, key: str, stage: Stage, other: Component) -> Callable[..., Any]:
        """(batch, noise) -> (grads, metrics): the stage's per-seed gradients (stacked [E, ...], clipped per
        seed) at the current parameters, not applied."""
        optim = self.optims[key]
        train_names = optim.names
        rest_names = [n for n in self.stack.state if n not in set(train_names)]
        max_norm = optim.group.max_grad_norm
        template, consts, state = self.stack.template, self.stack.consts, self.stack.state

        def per_seed(train: dict[str, Tensor], rest: dict[str, Tensor], batch: Any, noise: Any) -> Any:
            def loss_of(params: dict[str, Tensor]) -> Any:
                return functional_call(template, {**rest, **consts, **params}, (stage.loss, batch, noise, other))

            grads, (_, metrics) = grad_and_value(loss_of, has_aux=True)(train)
            grads = [grads[n] for n in train_names]
            if max_norm > 0:
                grads, norm = clip_grad_norm(grads, max_norm)
                metrics = {**metrics, f"{key}/grad_norm": norm}
            return grads, metrics

        def per_seed_autograd(train: dict[str, Tensor], rest: dict[str, Tensor], batch: Any, noise: Any) -> Any:
            """The same gradients with plain autograd: one seed in eager mode, where functorch's per-op
            transform overhead would cost ~20% of the iteration (docs/performance.md)."""
            leaves = {n: t.detach().requires_grad_(True) for n, t in train.items()}
            with torch.enable_grad():
                loss, metrics = functional_call(template, {**rest, **consts, **leaves},
                                                (stage.loss, batch, noise, other))
                found = torch.autograd.grad(loss, [leaves[n] for n in train_names], allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(leaves[n]) for g, n in zip(found, train_names)]
            if max_norm > 0:
                grads, norm = clip_grad_norm(grads, max_norm)
                metrics = {**metrics, f"{key}/grad_norm": norm}
            return grads, {k: v.detach() for k, v in metrics.items()}

        batched = vmap(per_seed)

        def gradients(batch: Any, noise: dict[str, Tensor]) -> tuple[list[Tensor], dict[str, Tensor]]:
            train = {n: state[n] for n in train_names}
            rest = {n: state[n] for n in rest_names}
            if self.members == 1:
                one = per_seed if torch.compiler.is_compiling() or self.mode != "off" else per_seed_autograd
                return unsqueeze_tree(one(member(train, 0), member(rest, 0), member(batch, 0), member(noise, 0)))
            return batched(train, rest, batch, noise)

        return gradients

    # --- one iteration ------------------------------------------------------------------------
    def _shared(self, with_actor: bool) -> bool:
        return self.schedule.shared_batch and with_actor

    def _plan(self, with_actor: bool) -> list[Noise]:
        """Every random tensor of one iteration, in draw order: per update, batch indices then noise."""
        if self.schedule.order == "joint":  # one batch, then the noise of every due update
            return [Noise.randint(len(self.table), self.schedule.critic_batch),
                    *(n for u in self._due(with_actor) for n in u.noise.values())]
        if self._shared(with_actor):
            critic, actor = self.updates["critic"], self.updates["actor"]
            return [Noise.randint(len(self.table), critic.batch_size), *critic.noise.values(), *actor.noise.values()]
        plan: list[Noise] = []
        for update in self._due(with_actor):
            for _ in range(self._repeats(update)):
                plan.append(Noise.randint(len(self.table), update.batch_size))
                plan.extend(update.noise.values())
        return plan

    def _due(self, with_actor: bool) -> list[_Update]:
        return [self.updates["critic"]] + ([self.updates["actor"]] if with_actor else [])

    def _repeats(self, update: _Update) -> int:
        return self.schedule.critic_updates if update.name == "critic" else self.schedule.actor_updates

    def _iteration(self, rand: list[Tensor], with_actor: bool) -> None:
        """The whole iteration on drawn randomness; compiled or captured as one piece."""
        draws = iter(rand)
        if self.schedule.order == "joint":
            self._joint_iteration(draws, with_actor)
            return
        if self._shared(with_actor):
            critic, actor = self.updates["critic"], self.updates["actor"]
            batch = self.table.gather(next(draws))
            noise = {u.name: {name: next(draws) for name in u.noise} for u in (critic, actor)}
            after = getattr(critic.component, "actor_after", None)
            for _key, stage, run in critic.stages:
                self._accumulate(critic, run(batch, noise["critic"]))
                if stage.group == after:
                    self._update(actor, batch, noise["actor"], after_step=False)
            if after not in [stage.group for _, stage, _ in critic.stages]:
                self._update(actor, batch, noise["actor"], after_step=False)
            self._after_step(critic)
            self._after_step(actor)
            return
        for update in self._due(with_actor):
            for _ in range(self._repeats(update)):
                batch = self.table.gather(next(draws))
                self._update(update, batch, {name: next(draws) for name in update.noise})

    def _joint_iteration(self, draws: Any, with_actor: bool) -> None:
        """``trainer.update_order=joint``, FQL's ``update`` (seohongpark/fql agents/*.py): one Adam step on the
        sum of every loss, all computed on one batch from the parameters before the step.

        No loss reads another group's parameters with gradient (the contract), so the gradient of the sum
        with respect to a group is the gradient of that group's own stage, and per-group Adam steps from
        these gradients are the single optimiser's step (Adam is elementwise; FQL clips no gradient).
        Three consequences of one optimiser over every parameter are kept: (1) every stage reads the
        pre-step parameters — an IQL critic's Q target uses the V from before this step's V update; (2) the
        targets (and EMA copies) move towards the pre-step parameters, as FQL's ``target_update`` reads
        ``self.network``, the network before the step; (3) on iterations where the actor is not due
        (``actor.update_every`` > 1, FQL's ReBRAC ``full_update=False``), its groups still step, with zero
        gradients: Adam's moments decay and the parameters move by their momentum, while its after-update
        (target policy) waits for its next due iteration. Stages naming the same group add their gradients.
        """
        batch = self.table.gather(next(draws))
        due = self._due(with_actor)
        noise = {u.name: {name: next(draws) for name in u.noise} for u in due}
        grads: dict[str, list[Tensor]] = {}
        for update in due:
            for i, (key, _stage, _run) in enumerate(update.stages):
                g, metrics = self.stage_gradients[(key, i)](batch, noise[update.name])
                self._accumulate(update, metrics)
                grads[key] = g if key not in grads else [a + b for a, b in zip(grads[key], g)]
        for update in due:
            self._after_step(update)
        for update in self.updates.values():
            for key in dict.fromkeys(key for key, _, _ in update.stages):
                optim = self.optims[key]
                optim.step(grads[key] if key in grads else [torch.zeros_like(p) for p in optim.params])

    def _update(self, update: _Update, batch: Any, noise: dict[str, Tensor], after_step: bool = True) -> None:
        """One update of a component: its stages in order, then its after-step updates."""
        for _key, _stage, run in update.stages:
            self._accumulate(update, run(batch, noise))
        if after_step:
            self._after_step(update)

    def _accumulate(self, update: _Update, metrics: dict[str, Tensor]) -> None:
        for name, value in metrics.items():
            total = self.sums.get(name)
            if total is None:  # first (eager) iteration: allocate the accumulator
                self.sums[name] = value.detach().float().clone()
                self.metric_owner[name] = update.name
            else:
                total.add_(value.detach())

    def _after_step(self, update: _Update) -> None:
        count = self.update_counts[update.name]
        count.add_(1.0)
        self.stack.call(update.component.after_update, count)

    def _book(self, with_actor: bool) -> None:
        """Host bookkeeping of one iteration (never inside the compiled or captured code)."""
        self._counts["critic"] += self.schedule.critic_updates
        if with_actor:
            self._counts["actor"] += self.schedule.actor_updates
        self.iterations += 1

    @torch.no_grad()
    def _step_once(self) -> None:
        with_actor = self.schedule.actor_due(self.iterations)
        rand = self.rng.draw(self._plan(with_actor))
        if self.mode == "on" and self.sums:  # the first iteration runs eagerly to allocate the accumulators
            if self._compiled is None:
                # C++ wrapper on CPU: the generated code calls its ~100 kernels from C++ rather than Python
                # (measured ~5% more iterations/s for IQL here, docs/performance.md)
                options = {"cpp_wrapper": True} if self.device.type == "cpu" else None
                self._compiled = torch.compile(self._iteration, dynamic=False, options=options)
            first = with_actor not in self._compiled_variants
            t0 = time.perf_counter()
            self._compiled(rand, with_actor)
            if first:  # a new variant (with or without the actor update) was compiled in this call
                self._compiled_variants.add(with_actor)
                self.compile_seconds += time.perf_counter() - t0
        else:
            self._iteration(rand, with_actor)
        self._book(with_actor)

    def train(self, iterations: int) -> None:
        """Run ``iterations`` trainer iterations for every seed."""
        done = 0
        while done < iterations:
            left = iterations - done
            if self.mode == "graph" and left >= self.steps_per_call and self._graph_ready():
                calls = left // self.steps_per_call
                self._replay(calls)
                done += calls * self.steps_per_call
            elif self.mode == "graph" and self._graph is None:
                self._warm_up()
                done += 1
            else:
                self._step_once()
                done += 1

    # --- CUDA graphs ------------------------------------------------------------------------
    #: Eager iterations before capture (PyTorch's rule: warm up on a side stream before capturing).
    WARMUP_ITERATIONS = 3

    def _warm_up(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._step_once()
        torch.cuda.current_stream().wait_stream(side)

    def _graph_ready(self) -> bool:
        """Capture once warm, at an iteration where the policy-delay pattern starts, so every replay
        (always started at such an iteration) holds the same updates."""
        if self._graph is None:
            if self.iterations < self.WARMUP_ITERATIONS or not self.schedule.actor_due(self.iterations):
                return False
            self._capture()
        return self.schedule.actor_due(self.iterations)

    def _capture(self) -> None:
        """Record ``steps_per_call`` iterations — draws, losses, optimiser steps, targets, metric sums —
        into one CUDA graph. Capture records without executing, so no iteration is done here."""
        t0 = time.perf_counter()
        graph = torch.cuda.CUDAGraph()
        for g in self.rng.generators:  # member generators advance on every replay
            graph.register_generator_state(g)
        torch.cuda.synchronize()
        with torch.no_grad(), torch.cuda.graph(graph):
            for i in range(self.steps_per_call):
                with_actor = self.schedule.actor_due(i)
                self._iteration(self.rng.draw(self._plan(with_actor)), with_actor)
        torch.cuda.synchronize()
        self._graph = graph
        self.compile_seconds += time.perf_counter() - t0

    def _replay(self, calls: int) -> None:
        for _ in range(calls):
            self._graph.replay()
            for i in range(self.steps_per_call):
                self._book(self.schedule.actor_due(i))

    # --- metrics ------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, float]]:
        """Per-seed means of every metric since the last read (one host sync), then reset."""
        if not self.sums:
            return [{} for _ in range(self.members)]
        names = sorted(self.sums)
        values = torch.stack([self.sums[n] for n in names], dim=1).tolist()  # [E, M]
        counts = [self._counts[self.metric_owner[n]] for n in names]
        out = [{n: v / c for n, v, c in zip(names, row, counts) if c > 0} for row in values]
        for total in self.sums.values():
            total.zero_()
        self._counts = {name: 0 for name in self.updates}
        return out

    @torch.no_grad()
    def non_finite(self) -> list[str]:
        """Per seed, the first state tensor (weights, targets, optimiser moments) holding NaN/inf, or ''.
        One host sync: call it on the logging cadence, not every step."""
        named = list(self.stack.state.items())
        named += [(f"optimizer {k} moments", m) for k, o in self.optims.items() for m in o.exp_avg_sq]
        flags = torch.stack([torch.isfinite(t.reshape(self.members, -1)).all(1) for _, t in named], 1).tolist()
        return [next((name for (name, _), ok in zip(named, row) if not ok), "") for row in flags]

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, generators: list[torch.Generator]) -> Tensor:
        """Actions [E, n, A] in [−1, 1] for observations [E, n, O]; seed e's noise from ``generators[e]``."""
        actor, critic = self.stack.template.actor, self.stack.template.critic
        spec = actor.act_noise(obs.shape[1])
        noise = {name: torch.stack([s.draw(g, self.device) for g in generators]) for name, s in spec.items()}
        return self.stack.map(lambda o, z: actor.act(o, critic, z), obs, noise)

    # --- checkpoints -----------------------------------------------------------------------------
    def member_state(self, e: int) -> dict[str, Any]:
        """Everything seed ``e`` needs to continue exactly (tensors cloned, no seed axis)."""
        return {
            "state": self.stack.member_state(e),
            "optimizers": {k: o.member_state(e) for k, o in self.optims.items()},
            "generator": self.rng.member_state(e),
            "update_counts": {k: v.clone() for k, v in self.update_counts.items()},
            "iterations": self.iterations,
            "metric_sums": {k: v[e].clone() for k, v in self.sums.items()},
            "metric_counts": dict(self._counts),
            "metric_owner": dict(self.metric_owner),
        }

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Restore every seed from :meth:`member_state` dicts (one per seed, same order)."""
        self.stack.load_member_states([s["state"] for s in states])
        for k, o in self.optims.items():
            o.load_member_states([s["optimizers"][k] for s in states])
        self.rng.load_member_states([s["generator"] for s in states])
        with torch.no_grad():
            for k, v in self.update_counts.items():
                v.copy_(states[0]["update_counts"][k])
        self.iterations = int(states[0]["iterations"])
        names = states[0]["metric_sums"].keys()
        self.sums = {n: torch.stack([s["metric_sums"][n] for s in states]).to(self.device) for n in names}
        self._counts = dict(states[0]["metric_counts"])
        self.metric_owner = dict(states[0]["metric_owner"])
