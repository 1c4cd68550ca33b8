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
  iteration) or ``graph`` (CUDA only: ``steps_per_call`` iterations of the
  compiled iteration captured in one CUDA graph, data and noise drawn inside
  it, replayed; :mod:`offrl.learner.graphs`);
- precision: an opt-in bf16 autocast of the actor's stages and acting
  (``trainer.autocast``).

An iteration reads nothing back to the host: batches and noise are drawn on
the device, losses and metrics stay tensors (summed in place), LRs are device
tensors, and the only Python branches depend on the iteration index, never on
data.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from offrl.component import Component, Noise, Stage
from offrl.data.transitions import TransitionTable
from offrl.errors import ConfigError
from offrl.learner import acting
from offrl.learner.graphs import CudaGraphs, GraphRunner
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
#: Values of ``trainer.autocast``: ``bf16`` runs the actor's stages and acting under bf16 autocast.
AUTOCAST_MODES = ("off", "bf16")


#: What an iteration updates: (critic, actor).
Due = tuple[bool, bool]


@dataclass(frozen=True)
class UpdateSchedule:
    """Updates per trainer iteration, batch sizes, the policy delay, and phases.

    ``critic_until`` > 0 updates the critic only on iterations before it; ``actor_from`` > 0 updates the
    actor only from that iteration on (its policy delay counted from there). Together they make
    two-phase training: the critic first, then the actor on the frozen critic.
    """

    critic_updates: int = 1
    critic_batch: int = 256
    actor_updates: int = 1
    actor_batch: int = 256
    actor_every: int = 1
    shared_batch: bool = False
    critic_until: int = 0
    actor_from: int = 0
    order: str = "sequential"

    def __post_init__(self) -> None:
        if self.critic_until < 0 or self.actor_from < 0:
            raise ConfigError(f"critic_until ({self.critic_until}) and actor_from ({self.actor_from}) must be >= 0")
        if self.shared_batch and (self.critic_until or self.actor_from):
            raise ConfigError("trainer.shared_batch=true needs critic and actor updated on the same iterations; "
                              "it cannot be combined with separate training phases.")
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
        if self.order == "joint" and (self.critic_until or self.actor_from):
            raise ConfigError("trainer.update_order=joint steps critic and actor together on every iteration; "
                              "it cannot be combined with separate training phases.")
        if self.shared_batch and (self.critic_updates != 1 or self.actor_updates != 1
                                  or self.critic_batch != self.actor_batch):
            raise ConfigError(
                "trainer.shared_batch=true needs one critic and one actor update per iteration on equal batches "
                f"(critic.updates_per_step={self.critic_updates}, actor.updates_per_step={self.actor_updates}, "
                f"critic.batch_size={self.critic_batch}, actor.batch_size={self.actor_batch})."
            )

    def critic_due(self, iteration: int) -> bool:
        return self.critic_until <= 0 or iteration < self.critic_until

    def actor_due(self, iteration: int) -> bool:
        return iteration >= self.actor_from and (iteration - self.actor_from) % self.actor_every == 0

    def due(self, iteration: int) -> Due:
        return self.critic_due(iteration), self.actor_due(iteration)

    def phase(self, iteration: int) -> int:
        """Where ``iteration`` sits in the policy-delay pattern (the pattern repeats with this period)."""
        return (iteration - self.actor_from) % self.actor_every if iteration >= self.actor_from else 0

    def regime(self, iteration: int) -> tuple[bool, bool]:
        """Which training phase ``iteration`` is in: (critic trains, actor may train)."""
        return self.critic_due(iteration), iteration >= self.actor_from

    def next_boundary(self, iteration: int) -> int | None:
        """The first iteration after ``iteration`` where the regime changes, if any."""
        later = [b for b in (self.critic_until, self.actor_from) if b > iteration]
        return min(later) if later else None

    def actor_updates_in(self, iterations: int) -> int:
        """Actor optimiser steps over the first ``iterations`` iterations (for cosine schedules); with the
        joint order the actor's groups step on every iteration (zero gradients where it is not due)."""
        if self.order == "joint":
            return iterations
        span = max(0, iterations - self.actor_from)
        return -(-span // self.actor_every) * self.actor_updates

    def critic_updates_in(self, iterations: int) -> int:
        """Critic updates over the first ``iterations`` iterations."""
        span = min(iterations, self.critic_until) if self.critic_until > 0 else iterations
        return span * self.critic_updates


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

    def __init__(self, agents: list[Agent], seeds: list[int], table: TransitionTable | dict[str, TransitionTable],
                 schedule: UpdateSchedule,
                 device: torch.device, mode: str = "off", steps_per_call: int = 1, autocast: str = "off",
                 graphs: Any = None, compile_in_graph: bool = True) -> None:
        if len(agents) != len(seeds) or not agents:
            raise ValueError("one agent per seed is required")
        if mode not in ("off", "on", "graph"):
            raise ValueError(f"unresolved speed mode {mode!r} (see resolve_speed_mode)")
        if mode == "graph" and steps_per_call % schedule.actor_every:
            raise ConfigError(
                f"trainer.steps_per_call={steps_per_call} must be a multiple of actor.update_every="
                f"{schedule.actor_every}, so every captured graph holds the same updates."
            )
        if autocast not in AUTOCAST_MODES:
            from offrl.errors import unknown

            raise unknown("autocast mode (trainer.autocast)", autocast, AUTOCAST_MODES)
        self.device = device
        self.autocast = autocast
        self.seeds = list(seeds)
        self.members = len(agents)
        self.schedule = schedule
        self.tables = self._tables(table)
        self.table = self.tables["critic"]
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
        self._compiled_variants: set[Due] = set()
        self._eager_variants: set[Due] = set()
        self.compile_seconds = 0.0  # time spent compiling / capturing (shown by the trainer)
        self.compile_in_graph = compile_in_graph  # graph mode: capture the compiled iteration (else the eager one)
        self.compile_failed = ""  # graph mode: why the compiler failed (the eager iteration is captured instead)
        self._graphs: GraphRunner | None = None
        if mode == "graph":
            # the warm-ups of a phase run each kind of iteration (with and without the actor update) eagerly,
            # then under the compiler, before anything is captured
            warmups = max(self.WARMUP_ITERATIONS, 2 * schedule.actor_every)
            self._graphs = GraphRunner(graphs if graphs is not None else CudaGraphs(device), self._record,
                                       self._step_once, self.rng.generators, warmups)

    # --- setup -----------------------------------------------------------------------------
    def _tables(self, table: TransitionTable | dict[str, TransitionTable]) -> dict[str, TransitionTable]:
        """The table each component's batches come from: one for both, or ``{"critic": …, "actor": …}``
        (e.g. the critic and the actor trained on different subsets of a dataset)."""
        tables = dict(table) if isinstance(table, dict) else {"critic": table, "actor": table}
        if set(tables) != {"critic", "actor"}:
            raise ValueError(f"tables must be given for 'critic' and 'actor', got {sorted(tables)}")
        if (self.schedule.shared_batch or self.schedule.order == "joint") and tables["critic"] is not tables["actor"]:
            raise ConfigError("trainer.shared_batch=true and trainer.update_order=joint need the critic and the "
                              "actor to sample one table.")
        return tables

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
        precision = self._precision if key.startswith("actor/") else contextlib.nullcontext

        def per_seed(train: dict[str, Tensor], rest: dict[str, Tensor], batch: Any, noise: Any) -> Any:
            def loss_of(params: dict[str, Tensor]) -> Any:
                with precision():
                    loss, metrics = functional_call(template, {**rest, **consts, **params},
                                                    (stage.loss, batch, noise, other))
                return loss.float(), metrics

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
                with precision():
                    loss, metrics = functional_call(template, {**rest, **consts, **leaves},
                                                    (stage.loss, batch, noise, other))
                found = torch.autograd.grad(loss.float(), [leaves[n] for n in train_names], allow_unused=True)
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
                one = per_seed if torch.compiler.is_compiling() else per_seed_autograd
                return unsqueeze_tree(one(member(train, 0), member(rest, 0), member(batch, 0), member(noise, 0)))
            return batched(train, rest, batch, noise)

        return gradients

    # --- one iteration ------------------------------------------------------------------------
    def _shared(self, due: Due) -> bool:
        return self.schedule.shared_batch and due[0] and due[1]

    def _plan(self, due: Due) -> list[Noise]:
        """Every random tensor of one iteration, in draw order: per update, batch indices then noise."""
        if self.schedule.order == "joint":  # one batch, then the noise of every due update
            return [self.tables["critic"].index_noise(self.schedule.critic_batch),
                    *(n for u in self._due(due) for n in u.noise.values())]
        if self._shared(due):
            critic, actor = self.updates["critic"], self.updates["actor"]
            return [self.tables["critic"].index_noise(critic.batch_size), *critic.noise.values(),
                    *actor.noise.values()]
        plan: list[Noise] = []
        for update in self._due(due):
            for _ in range(self._repeats(update)):
                plan.append(self.tables[update.name].index_noise(update.batch_size))
                plan.extend(update.noise.values())
        return plan

    def _due(self, due: Due) -> list[_Update]:
        return [u for u, on in zip((self.updates["critic"], self.updates["actor"]), due) if on]

    def _repeats(self, update: _Update) -> int:
        return self.schedule.critic_updates if update.name == "critic" else self.schedule.actor_updates

    def _iteration(self, rand: list[Tensor], due: Due) -> None:
        """The whole iteration on drawn randomness; compiled or captured as one piece."""
        draws = iter(rand)
        if self.schedule.order == "joint":
            self._joint_iteration(draws, due)
            return
        if self._shared(due):
            critic, actor = self.updates["critic"], self.updates["actor"]
            table = self.tables["critic"]
            batch = table.gather(table.indices(next(draws)))
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
        for update in self._due(due):
            table = self.tables[update.name]
            for _ in range(self._repeats(update)):
                batch = table.gather(table.indices(next(draws)))
                self._update(update, batch, {name: next(draws) for name in update.noise})

    def _joint_iteration(self, draws: Any, due_now: Due) -> None:
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
        table = self.tables["critic"]
        batch = table.gather(table.indices(next(draws)))
        due = self._due(due_now)
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
            if total is None:  # first (eager) iteration of this kind: allocate the accumulator
                if self._graphs is not None and self._graphs.backend.capturing():
                    raise RuntimeError(
                        f"metric '{name}' first appeared inside a CUDA-graph capture: its accumulator would live "
                        "in the graph's private memory. A component's metrics must be the same on every update "
                        "(the warm-up iterations allocate them).")
                self.sums[name] = value.detach().float().clone()
                self.metric_owner[name] = update.name
            else:
                total.add_(value.detach().float())

    def _after_step(self, update: _Update) -> None:
        count = self.update_counts[update.name]
        count.add_(1.0)
        self.stack.call(update.component.after_update, count)

    def _book(self, due: Due) -> None:
        """Host bookkeeping of one iteration (never inside the compiled or captured code)."""
        if due[0]:
            self._counts["critic"] += self.schedule.critic_updates
        if due[1]:
            self._counts["actor"] += self.schedule.actor_updates
        self.iterations += 1

    def _compiled_iteration(self) -> Callable[..., None]:
        if self._compiled is None:
            # C++ wrapper on CPU: the generated code calls its ~100 kernels from C++ rather than Python
            # (measured ~5% more iterations/s for IQL here, docs/performance.md)
            options = {"cpp_wrapper": True} if self.device.type == "cpu" else None
            self._compiled = torch.compile(self._iteration, dynamic=False, options=options)
        return self._compiled

    def _run_iteration(self, rand: list[Tensor], due: Due) -> None:
        """One iteration on drawn randomness: compiled (modes ``on`` and ``graph``) once this kind of
        iteration has run eagerly (which allocates its metric accumulators), else eager."""
        seen = due in self._eager_variants
        self._eager_variants.add(due)
        if self.mode == "off" or not seen or self.compile_failed or (
                self.mode == "graph" and not self.compile_in_graph):
            self._iteration(rand, due)
            return
        first = due not in self._compiled_variants
        t0 = time.perf_counter()
        if first and self.mode == "graph":
            try:  # graph mode falls back to capturing the eager iteration when the compiler fails
                self._compiled_iteration()(rand, due)
            except Exception as e:  # noqa: BLE001 — any compiler failure; the eager graph is still right
                self.compile_failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                self._iteration(rand, due)
        else:
            self._compiled_iteration()(rand, due)
        if first:  # a new variant (critic and/or actor update) was compiled in this call
            self._compiled_variants.add(due)
            self.compile_seconds += time.perf_counter() - t0

    @torch.no_grad()
    def _step_once(self) -> None:
        due = self.schedule.due(self.iterations)
        self._run_iteration(self.rng.draw(self._plan(due)), due)
        self._book(due)

    def train(self, iterations: int) -> None:
        """Run ``iterations`` trainer iterations for every seed.

        In ``graph`` mode: warm-up iterations first (in every process, and again where a training phase
        begins), then whole graphs of ``steps_per_call`` iterations and, for what is left before the
        caller's next event or a phase boundary, one shorter graph — never eager iterations once warm.
        """
        done = 0
        runner = self._graphs
        while done < iterations:
            if runner is None:
                self._step_once()
                done += 1
                continue
            regime = self.schedule.regime(self.iterations)
            if not runner.warm(regime):
                runner.warm_up(regime)
                done += 1
                continue
            n = min(self.steps_per_call, iterations - done)
            boundary = self.schedule.next_boundary(self.iterations)
            if boundary is not None:
                n = min(n, boundary - self.iterations)
            self._replay(n)
            done += n

    # --- CUDA graphs ------------------------------------------------------------------------
    #: Eager iterations before capture (PyTorch's rule: warm up on a side stream before capturing); at least
    #: two per kind of iteration, so each kind has run eagerly (allocating its metrics) and compiled.
    WARMUP_ITERATIONS = 3

    @property
    def graph_kind(self) -> str:
        """What ``graph`` mode captures: the compiled iteration, or the eager one (compiler failed)."""
        if self.mode != "graph":
            return ""
        if self.compile_failed:
            return f"eager iteration (compile failed: {self.compile_failed})"
        return "compiled iteration" if self.compile_in_graph else "eager iteration"

    def _record(self, iterations: int, start: int) -> None:
        """What one graph holds: ``iterations`` iterations from one that is like iteration ``start``."""
        with torch.no_grad():
            for i in range(iterations):
                due = self.schedule.due(start + i)
                self._run_iteration(self.rng.draw(self._plan(due)), due)

    def _graph_key(self, iterations: int) -> tuple:
        i = self.iterations
        return iterations, self.schedule.phase(i), self.schedule.regime(i)

    def _replay(self, iterations: int) -> None:
        assert self._graphs is not None
        key = self._graph_key(iterations)
        fresh = key not in self._graphs.graphs
        t0 = time.perf_counter()
        self._graphs.run(key, self.iterations)
        if fresh:
            self.compile_seconds += time.perf_counter() - t0
        for _ in range(iterations):
            self._book(self.schedule.due(self.iterations))

    def replace_tables(self, table: TransitionTable) -> None:
        """Sample from ``table`` from now on, for both components (the online phase's replay,
        :mod:`offrl.online`). The compiled iteration and any captured graphs read the old table: they are
        dropped and made again (the kinds of iteration that ran stay known, so nothing runs eagerly twice)."""
        self.tables = self._tables(table)
        self.table = self.tables["critic"]
        self._compiled = None
        self._compiled_variants = set()
        if self._graphs is not None:
            self._graphs.graphs.clear()
            self._graphs._warm.clear()

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
        return acting.act(self.stack, obs, generators, self.device, self._precision)

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        """bf16 autocast for the actor's stages and acting when ``trainer.autocast=bf16``; else nothing."""
        if self.autocast == "bf16":
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

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
            # kinds of iteration that already ran (eagerly, once): a resumed compiled run compiles them at once,
            # as the uninterrupted run does, so its numbers are the same
            "variants_run": sorted([list(v) for v in self._eager_variants]),
        }

    def load_member_states(self, states: list[dict[str, Any]]) -> list[str]:
        """Restore every seed from :meth:`member_state` dicts (one per seed, same order).

        Returns notes for the user (a random stream re-derived because it was saved on another device type).
        """
        self.stack.load_member_states([s["state"] for s in states])
        for k, o in self.optims.items():
            o.load_member_states([s["optimizers"][k] for s in states])
        notes = self.rng.load_member_states([s["generator"] for s in states], int(states[0]["iterations"]))
        with torch.no_grad():
            for k, v in self.update_counts.items():
                v.copy_(states[0]["update_counts"][k])
        self.iterations = int(states[0]["iterations"])
        names = states[0]["metric_sums"].keys()
        self.sums = {n: torch.stack([s["metric_sums"][n] for s in states]).to(self.device) for n in names}
        self._counts = dict(states[0]["metric_counts"])
        self.metric_owner = dict(states[0]["metric_owner"])
        self._eager_variants = {(bool(c), bool(a)) for c, a in states[0].get("variants_run", [])}
        return notes
