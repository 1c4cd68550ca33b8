"""The trainer's evaluations: when they run, where (in the trainer's process or in workers), what they record.

An evaluation at step s records an ``eval.jsonl`` row per seed, updates the
run's last and best evaluation and writes ``policy_final.pt`` (and
``policy_best.pt`` when the score improved) from the weights at step s.

``trainer.eval_async`` decides where it runs: ``off`` evaluates the live
weights in the trainer's process, blocking training; ``on`` sends a snapshot
of the weights to worker processes (:mod:`offrl.trainer.eval_worker`) and keeps
training, recording the results when they arrive — the same rows, scores and
policy files, because the trainer waits for every pending evaluation before a
checkpoint, a divergence report and the end. ``auto`` is ``on`` on CUDA and
for CPU runs long enough to compile (a worker costs a few seconds to start)
on a host with a core to spare.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import torch

from offrl import rundir
from offrl.bottleneck.probe import Prober, evaluate, probe_data
from offrl.errors import RunDirError, unknown
from offrl.learner import acting
from offrl.trainer.evaluation import EvalSpec, Evaluator, scoring_record

if TYPE_CHECKING:
    from offrl.trainer.progress import TrainingProgress
    from offrl.trainer.runs import SeedRun
    from offrl.trainer.trainer import Trainer

#: Values of ``trainer.eval_async``.
EVAL_ASYNC_MODES = ("auto", "on", "off")


def resolve_eval_async(mode: str, device: torch.device, steps: int) -> bool:
    """Whether evaluations run in worker processes (see the module docstring for ``auto``)."""
    from offrl.learner.learner import AUTO_COMPILE_MIN_STEPS

    if mode not in EVAL_ASYNC_MODES:
        raise unknown("evaluation mode (trainer.eval_async)", mode, EVAL_ASYNC_MODES)
    if mode == "auto":
        return device.type == "cuda" or (steps >= AUTO_COMPILE_MIN_STEPS and (os.cpu_count() or 1) >= 2)
    return mode == "on"


class Evaluations:
    """Runs a trainer's evaluations and records their results in the seeds' run directories."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        t = trainer.cfg.trainer
        self.spec = EvalSpec.of(trainer.dataset)
        self.available = self.spec.make_env is not None
        self.episodes = t.eval_episodes
        self.num_envs = min(t.eval_envs, t.eval_episodes)
        self.asynchronous = self.available and resolve_eval_async(t.eval_async, trainer.device, t.steps)
        self.sync: Evaluator | None = None
        self.prober: Prober | None = None
        self.workers: Any = None
        self.busy_s = 0.0  # time spent evaluating (here or in workers)
        self.blocking_s = 0.0  # time the training loop waited for evaluations
        self.count = 0
        self.notes: list[str] = []
        self.probes = probe_data(trainer.cfg, trainer.dataset, trainer.split) if self.available else None  # eval.*

    # --- lifetime -------------------------------------------------------------------------------
    def open(self) -> None:
        if not self.available:
            return
        tr = self.trainer
        if not self.asynchronous:
            self.sync = Evaluator(self.spec, len(tr.runs), self.num_envs, tr.device)
            self.prober = Prober(self.probes, tr.device) if self.probes is not None else None
            return
        from offrl.trainer.eval_worker import AsyncEvaluation, WorkerInit

        t = tr.cfg.trainer
        init = WorkerInit(config=rundir.floats_as_text(tr.cfg.to_dict()), seeds=[r.seed for r in tr.runs],
                          obs_dim=tr.dataset.obs_dim, act_dim=tr.dataset.act_dim,
                          actor_updates=tr.schedule.actor_updates_in(t.steps), spec=self.spec,
                          num_envs=self.num_envs, device=str(tr.device), compile_act=tr.mode != "off",
                          autocast=t.autocast, probes=self.probes)
        t0 = time.perf_counter()
        self.workers = AsyncEvaluation(init, list(tr.cfg.plugins), max(1, t.eval_workers))
        self.blocking_s += time.perf_counter() - t0
        self.notes += self.workers.notes

    def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.workers is not None:
            self.workers.close()

    @property
    def where(self) -> str:
        """How evaluations ran, for the summary."""
        if not self.available:
            return "none"
        if self.workers is None:
            return "in-process"
        if not self.workers.asynchronous:
            return "in-process (workers unavailable)"
        return f"{self.workers.started} worker process{'es' if self.workers.started > 1 else ''}"

    # --- evaluating -----------------------------------------------------------------------------
    def start(self, progress: "TrainingProgress") -> None:
        """Evaluate every active seed at the trainer's current step (now, or in the background)."""
        tr = self.trainer
        if not self.available:  # no environment: save the policy anyway (offrl ope, offrl export, load_policy)
            for e, r in enumerate(tr.runs):
                if r.active:
                    self._save_policies(r, False, tr.learner.member_state(e)["state"], tr.step)
            return
        step, now = tr.step, tr._now()
        active = [r.active for r in tr.runs]
        self.count += 1
        if self.workers is not None:
            snapshot = {n: t.detach().to("cpu", copy=True) for n, t in tr.learner.stack.state.items()}
            self.workers.submit(step, snapshot, active, self.episodes, now)
            self.notes += self.workers.notes[len(self.notes):]
            self.collect(block=False, progress=progress)
            return
        assert self.sync is not None
        progress.status("evaluating…")
        t0 = time.perf_counter()

        def act(stack: Any, obs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
            return tr.learner.act(obs, gens) if stack is tr.learner.stack else acting.act(stack, obs, gens, tr.device)

        results = evaluate(self.sync, self.prober, tr.learner.stack, act, active, self.episodes,
                           [r.seed for r in tr.runs], step, tr.device)  # a diverged seed acts with zeros
        seconds = time.perf_counter() - t0
        self.busy_s += seconds
        self.blocking_s += seconds
        states = [tr.learner.member_state(e)["state"] for e in range(len(tr.runs))]
        self._record(step, now, active, results, states, progress)

    def collect(self, block: bool, progress: "TrainingProgress") -> None:
        """Record the background evaluations that finished (``block``: wait for all of them first)."""
        if self.workers is None or not self.workers.pending:
            return
        t0 = time.perf_counter()
        if block:
            progress.status("waiting for the evaluation…")
        finished = self.workers.collect(block)
        if block:
            self.blocking_s += time.perf_counter() - t0
        self.notes += self.workers.notes[len(self.notes):]
        for job in finished:
            self.busy_s += job.busy_s
            states = [job.member_state(e) for e in range(len(self.trainer.runs))]
            self._record(job.step, job.time_s, job.active, job.results or [], states, progress)

    def _record(self, step: int, time_s: float, active: list[bool], results: list[dict[str, Any]],
                states: list[dict[str, torch.Tensor]], progress: "TrainingProgress") -> None:
        tr = self.trainer
        for e, (r, result) in enumerate(zip(tr.runs, results)):
            if active[e] and result:
                improved = self._row(r, {"step": step, "time_s": time_s, **result})
                self._save_policies(r, improved, states[e], step)
        progress.status(tr._compile_note())
        live = [r for r in tr.runs if r.active]
        progress.score([r.last_eval for r in live], [r.best for r in live], tr._score_key())

    def _row(self, r: "SeedRun", row: dict[str, Any]) -> bool:
        """Append the evaluation row; True when it is the seed's best score so far."""
        tr = self.trainer
        tr._append(r, rundir.EVAL_LOG, row)
        for mirror in (r.tb, r.wandb):
            if mirror:
                mirror.write("eval", row, row["step"])
        r.last_eval = row
        key = tr._score_key()
        if row.get(key) is not None and (not r.best or r.best.get(key) is None or row[key] > r.best[key]):
            r.best = row
            return True
        return False

    def _save_policies(self, r: "SeedRun", improved: bool, state: dict[str, torch.Tensor], step: int) -> None:
        """policy_final.pt after every evaluation, policy_best.pt when the score improved (offrl.policy)."""
        from offrl.policy import as_config, policy_file, save_policy

        tr = self.trainer
        ds = tr.dataset
        kwargs = dict(config=as_config(r.cfg), state=state, obs_normalizer=ds.obs_normalizer.to_dict(),
                      action_low=ds.action_scaler.low, action_high=ds.action_scaler.high, obs_dim=ds.obs_dim,
                      act_dim=ds.act_dim, step=step, evaluation=r.last_eval or {}, device=str(tr.device),
                      scoring=scoring_record(self.spec))
        try:
            save_policy(policy_file(r.run_dir, "final"), **kwargs)
            if improved:
                save_policy(policy_file(r.run_dir, "best"), **kwargs)
        except OSError as err:
            raise RunDirError(f"Could not write a policy file in {r.run_dir} ({err.strerror or err}). The last "
                              f"checkpoint is intact: continue with `offrl run --resume {tr._resume_target()}`."
                              ) from None

    def summary(self, wall_s: float) -> dict[str, Any]:
        """What evaluation cost the run: time evaluating, time training waited, and the share of wall time."""
        out = {"evaluations": self.count, "eval_where": self.where, "eval_s": round(self.busy_s, 3),
               "eval_blocking_s": round(self.blocking_s, 3),
               "eval_share": round(self.blocking_s / wall_s, 4) if wall_s > 0 else None}
        if self.probes is not None and self.probes.diagnostics:
            out["diagnostics_reference"] = self.probes.reference_name  # what diag/mse_* is measured against
        return out
