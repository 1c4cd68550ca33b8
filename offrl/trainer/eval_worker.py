"""Evaluation in worker processes, on snapshots of the policy weights, while training goes on.

Why processes: an evaluation steps E × ``eval_envs`` environments for a whole
episode, with a policy call per step; in the trainer's process that stalls the
training loop for as long (on CPU the two also fight over the GIL). A worker
process gets a snapshot of every seed's weights (the stacked tensors, passed in
shared memory), evaluates exactly as the trainer's own :class:`Evaluator` does —
the same environments, episode seeds and acting noise derived from (seed, step,
round) — and sends the results back, so the scores equal those of an
in-process evaluation of the same weights. The trainer collects results as they
arrive and waits for all of them before every checkpoint and at the end, so
checkpoints, logs and policy files are those of a synchronous run.

``trainer.eval_workers`` > 1 splits the seeds over several workers (each with
its own environments), for many seeds on a host with many cores.

A worker that cannot be started (the host refuses a process) or that fails
makes the trainer evaluate in its own process from then on, saying so; the
snapshots still pending are evaluated there, nothing is lost.
"""
from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch

from offrl.trainer.evaluation import EvalSpec, Evaluator


@dataclass
class WorkerInit:
    """Everything needed to rebuild the acting agents of some seeds (plain, picklable)."""

    config: dict[str, Any]
    seeds: list[int]
    obs_dim: int
    act_dim: int
    actor_updates: int
    spec: EvalSpec
    num_envs: int
    device: str
    compile_act: bool = False
    autocast: str = "off"
    probes: Any = None  # offrl.bottleneck.probe.ProbeData of eval.*, or None


@dataclass
class Pending:
    """One submitted evaluation: its step and time, the snapshot, the results as they come in."""

    step: int
    time_s: float
    snapshot: dict[str, torch.Tensor]  # the stacked state [E, ...] on the CPU
    active: list[bool]
    episodes: int
    parts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # worker -> its seeds' results
    results: list[dict[str, Any]] | None = None  # per seed, once complete
    busy_s: float = 0.0

    def member_state(self, e: int) -> dict[str, torch.Tensor]:
        return {n: t[e] for n, t in self.snapshot.items()}


class EvalHost:
    """The acting agents of some seeds (stacked), their environments and the evaluator.

    Runs in a worker process, or in the trainer's own when workers are unavailable.
    """

    def __init__(self, init: WorkerInit) -> None:
        from offrl.config import resolve
        from offrl.learner.acting import act_core
        from offrl.learner.members import StackedAgents
        from offrl.trainer.agents import build_agent

        self.init = init
        self.device = torch.device(init.device)
        layer = dict(init.config)
        layer.pop("offrl_version", None)
        cfg = resolve([layer])
        agents = [build_agent(cfg, init.obs_dim, init.act_dim, s, init.actor_updates) for s in init.seeds]
        self.stack = StackedAgents(agents, self.device)
        self.stack.seal()
        self.evaluator = Evaluator(init.spec, len(init.seeds), init.num_envs, self.device)
        core = act_core(self.stack)
        self.core = torch.compile(core, dynamic=False) if init.compile_act else core
        from offrl.bottleneck.probe import Prober

        self.prober = Prober(init.probes, self.device) if init.probes is not None else None

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        if self.init.autocast == "bf16":
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    @torch.no_grad()
    def evaluate(self, step: int, snapshot: dict[str, torch.Tensor], active: list[bool],
                 episodes: int) -> list[dict[str, Any]]:
        from offrl.bottleneck.probe import evaluate
        from offrl.learner.acting import act

        for name, t in self.stack.state.items():
            t.copy_(snapshot[name])

        def policy(stack: Any, obs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
            core = self.core if stack is self.stack else None  # a TTT-adapted copy acts uncompiled
            return act(stack, obs, gens, self.device, self.precision, core)

        return evaluate(self.evaluator, self.prober, self.stack, policy, active, episodes, self.init.seeds, step,
                        self.device)  # a diverged seed acts with zeros

    def close(self) -> None:
        self.evaluator.close()


def _worker_main(conn: Any, init: WorkerInit, plugins: list[str]) -> None:
    """A worker's loop: build once, then evaluate every snapshot it is sent until told to stop."""
    try:
        torch.set_num_threads(1)
        if init.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(init.device))
        from offrl.plugins import load_plugins

        load_plugins(plugins)  # the modules the user named for this run, so its components are registered
        host = EvalHost(init)
    except BaseException as e:  # noqa: BLE001 — reported; the trainer then evaluates in its own process
        conn.send(("error", _describe(e)))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the trainer went away
                return
            if msg is None:
                return
            step, snapshot, active, episodes = msg
            t0 = time.perf_counter()
            try:
                results = host.evaluate(step, snapshot, active, episodes)
            except BaseException as e:  # noqa: BLE001
                conn.send(("error", _describe(e)))
                return
            del snapshot
            conn.send(("done", (results, time.perf_counter() - t0)))
    finally:
        host.close()


def _describe(e: BaseException) -> str:
    from offrl.errors import OfflineRLError

    if isinstance(e, OfflineRLError):
        return str(e)
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"


class AsyncEvaluation:
    """Workers evaluating snapshots in the background; finished evaluations collected oldest first."""

    def __init__(self, init: WorkerInit, plugins: list[str], workers: int) -> None:
        self.init = init
        self.here: EvalHost | None = None  # set once evaluation runs in the trainer's process
        self.pending: list[Pending] = []
        self.notes: list[str] = []
        self.busy_s = 0.0  # evaluation time (in the workers, or here)
        self.workers: list[tuple[Any, Any, list[int]]] = []  # (process, connection, member indices)
        try:
            import torch.multiprocessing as mp

            ctx = mp.get_context("spawn")
            for members in _split(len(init.seeds), max(1, min(workers, len(init.seeds)))):
                part = replace(init, seeds=[init.seeds[i] for i in members])
                here, there = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(there, part, plugins), daemon=True,
                                   name="offrl-eval")
                self.workers.append((proc, here, members))
                proc.start()
                there.close()
        except (OSError, RuntimeError) as e:
            self._degrade(f"the evaluation worker could not start ({e})")
        self.started = len(self.workers)
        self._ready = [False] * len(self.workers)  # a worker's first message says it is built (or why not)

    @property
    def asynchronous(self) -> bool:
        return self.here is None

    def submit(self, step: int, snapshot: dict[str, torch.Tensor], active: list[bool], episodes: int,
               time_s: float) -> None:
        """Start evaluating ``snapshot`` (the stacked state on the CPU) at ``step``; returns at once."""
        self.pending.append(Pending(step, time_s, snapshot, list(active), episodes))
        if not self.asynchronous:
            return
        try:
            for _, conn, members in self.workers:
                part = {n: t[members[0]:members[-1] + 1] for n, t in snapshot.items()}
                conn.send((step, part, [active[i] for i in members], episodes))
        except (OSError, EOFError) as e:
            self._degrade(f"an evaluation worker stopped ({e})")

    def collect(self, block: bool) -> list[Pending]:
        """Evaluations finished since the last call, oldest first; with ``block``, wait for all of them."""
        done: list[Pending] = []
        while self.pending:
            job = self.pending[0]
            if self.asynchronous and not self._gather(job, block):
                break
            if job.results is None:  # evaluation moved into this process
                t0 = time.perf_counter()
                assert self.here is not None
                job.results = self.here.evaluate(job.step, job.snapshot, job.active, job.episodes)
                job.busy_s = time.perf_counter() - t0
            self.busy_s += job.busy_s
            done.append(self.pending.pop(0))
        return done

    def _gather(self, job: Pending, block: bool) -> bool:
        """True once every worker's part of ``job`` is in (or evaluation moved here); False if not yet."""
        try:
            for w, (proc, conn, _) in enumerate(self.workers):
                if w in job.parts:
                    continue
                if not block and not conn.poll():
                    return False
                kind, payload = self._recv(conn, proc)
                if kind == "ready" and not self._ready[w]:
                    self._ready[w] = True
                    if not block and not conn.poll():
                        return False
                    kind, payload = self._recv(conn, proc)
                if kind != "done":
                    raise RuntimeError(payload)
                job.parts[w], seconds = payload
                job.busy_s = max(job.busy_s, seconds)
        except (OSError, RuntimeError, EOFError) as e:
            self._degrade(f"an evaluation worker failed ({e})")
            return True
        out: list[dict[str, Any]] = [{} for _ in self.init.seeds]
        for w, (_, _, members) in enumerate(self.workers):
            for i, r in zip(members, job.parts[w]):
                out[i] = r
        job.results = out
        return True

    @staticmethod
    def _recv(conn: Any, proc: Any) -> tuple[str, Any]:
        while not conn.poll(0.5):
            if not proc.is_alive():
                raise EOFError(f"it exited with code {proc.exitcode}")
        return conn.recv()

    def _degrade(self, why: str) -> None:
        """Evaluate in this process from now on (pending snapshots included)."""
        if self.here is None:
            self.notes.append(f"{why}; evaluating in the trainer's process instead")
            self._stop_workers()
            self.here = EvalHost(self.init)
            for job in self.pending:
                job.parts.clear()
                job.results = None

    def _stop_workers(self) -> None:
        for _, conn, _ in self.workers:
            with contextlib.suppress(OSError, EOFError):
                conn.send(None)
        for proc, conn, _ in self.workers:
            if proc.pid is not None:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)
            conn.close()
        self.workers = []

    def close(self) -> None:
        self._stop_workers()
        if self.here is not None:
            self.here.close()


def _split(n: int, parts: int) -> list[list[int]]:
    """``range(n)`` in ``parts`` contiguous chunks of near-equal size."""
    size, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        end = start + size + (1 if p < extra else 0)
        out.append(list(range(start, end)))
        start = end
    return out
