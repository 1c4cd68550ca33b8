"""The shared trainer: the loop, cadence, evaluation, logs and checkpoints, for one seed or many.

The :class:`~offrl.learner.Learner` owns what happens inside an iteration; the
trainer decides when to log (``log_every``), evaluate (``eval_every``) and
checkpoint (``save_every``), all at iteration counts, so an interrupted run
resumed from its checkpoint produces the same logs as an uninterrupted one.

Several seeds (``trainer.seeds``) train in one process on a leading seed axis;
each seed keeps an ordinary run directory of its own (``GROUP/seed<S>/``), with
the config, logs, checkpoints and summary its solo run would write.

Nothing silent: non-finite losses or parameters are detected on the logging
cadence and before every checkpoint (no host sync per step). A diverged seed
stops logging, keeps its last good checkpoint and ends with status
``diverged``, naming the step and the quantity.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from offrl import rundir
from offrl.config import RunConfig
from offrl.data.dataset import OfflineDataset, load_offline_dataset
from offrl.data.returns import ReturnsToGo
from offrl.data.split import split_dataset
from offrl.errors import RunDirError
from offrl.learner import Agent, Learner, resolve_speed_mode
from offrl.online.phase import OnlinePhase
from offrl.trainer import checkpoint as ckpt
from offrl.trainer.agents import build_agent, is_out_of_memory, too_big
from offrl.trainer.evaluations import Evaluations
from offrl.trainer.lock import RunLock
from offrl.trainer.phases import update_schedule
from offrl.trainer.logger import TensorBoardLog, WandbLog, check_wandb, make_summary_writer
from offrl.trainer.runs import RunResult, SeedRun, prepare_run_dir, read_obs_stats, write_new_runs
from offrl import provenance
from offrl.trainer.progress import TrainingProgress, announce
from offrl.trainer.runtime import configure_precision, configure_threads, resolve_device
from offrl.trainer.signals import StopFlag

#: Most iterations between two checks of Ctrl-C and progress updates.
CHUNK = 100


class Trainer:
    """Build everything for ``runs`` (one per seed) and train them together."""

    def __init__(self, cfg: RunConfig, runs: list[SeedRun], resume: bool = False, show_progress: bool = True,
                 group_dir: Path | None = None) -> None:
        t0 = time.perf_counter()
        self.cfg = cfg
        self.runs = runs
        self.resume = resume
        self.show_progress = show_progress
        self.group_dir = group_dir
        t = cfg.trainer
        self.device = resolve_device(t.device)
        configure_threads(self.device, t.threads)
        configure_precision(self.device, t.matmul_precision)
        self.notes: list[str] = []  # shown to the user when the run starts (damaged checkpoints, …)
        self.online_states: list[Any] | None = None  # a checkpoint taken in the online phase: where it resumes
        self.mode = resolve_speed_mode(t.compile, self.device, t.steps)
        if t.tensorboard:
            make_summary_writer()  # fail before anything is written if tensorboard is missing
        if t.wandb:
            check_wandb()

        saved_norm = read_obs_stats(runs[0].run_dir) if resume else None
        d = cfg.data
        self.dataset: OfflineDataset = load_offline_dataset(
            d.dataset, reward=d.reward, normalize_obs=d.normalize_obs, action_clip_eps=d.action_clip_eps,
            obs_normalizer=saved_norm, eval_env=cfg.eval.env,
        )
        self.split = split_dataset(self.dataset.arrays, d)  # the critic's, the actor's and held-out episodes
        # one table, or {"critic": …, "actor": …}; Monte-Carlo returns with the critic's discount (Cal-QL reads them)
        self.table = self.split.tables(self.device, ReturnsToGo.of(cfg.critic_cfg))
        self.schedule = update_schedule(cfg)  # joint, or two-phase (offrl.trainer.phases)
        agents = [self._build_agent(r.seed) for r in runs]
        try:
            self.learner = Learner(agents, [r.seed for r in runs], self.table, self.schedule, self.device,
                                   self.mode, t.steps_per_call, autocast=t.autocast)
        except BaseException as e:
            if is_out_of_memory(e):
                raise too_big(e, cfg) from None
            raise
        self.step = 0
        self.elapsed = 0.0
        self.started_fresh = False
        if not resume:  # the first iteration runs before anything is written: a setting that cannot run
            if self.mode != "off":  # it compiles: say so, or the first minute looks like a hang
                announce("capturing CUDA graphs…" if self.mode == "graph" else "compiling the training step…",
                         show_progress)
            self._first_iteration()  # (batch sizes, memory) fails while the run directory is untouched

        self._claim()
        try:  # mirrors start before anything else is written: a failure leaves a directory that can be reused
            if t.tensorboard:
                for r in runs:
                    r.tb = TensorBoardLog(r.run_dir / "tensorboard")
            if t.wandb:
                group = t.wandb_group or os.environ.get("OFFRL_SWEEP_NAME", "") or (group_dir.name if group_dir else "")
                for r in runs:
                    if t.wandb_name:
                        name = t.wandb_name + (f"-seed{r.seed}" if len(runs) > 1 else "")
                    else:
                        name = f"{group_dir.name}-seed{r.seed}" if group_dir else r.run_dir.name
                    r.wandb = WandbLog(r.run_dir, rundir.floats_as_text(r.cfg.to_dict()), t.wandb_project, group, name,
                                       t.wandb_mode)
            if resume:  # a checkpoint refused here leaves the run directories unlocked (Python callers retry)
                self._load_checkpoints()
        except BaseException:
            self.release()
            raise
        if not resume:
            write_new_runs(runs, self.dataset.obs_normalizer.to_dict() if d.normalize_obs else None, group_dir)
        for r in runs:  # where and how the run was made (not part of its config: see offrl.provenance)
            provenance.record(r.run_dir, str(self.device), resumed=resume)
        self.setup_s = time.perf_counter() - t0

    # --- construction ---------------------------------------------------------------------------
    def _build_agent(self, seed: int) -> Agent:
        """Seed ``seed``'s critic and actor, initialised exactly as a solo run of that seed."""
        return build_agent(self.cfg, self.dataset.obs_dim, self.dataset.act_dim, seed,
                           self.schedule.actor_updates_in(self.cfg.trainer.steps))

    def _first_iteration(self) -> None:
        t0 = time.perf_counter()
        try:
            self.learner.train(1)
        except BaseException as e:
            if is_out_of_memory(e):
                raise too_big(e, self.cfg) from None
            raise
        self.step = 1
        self.started_fresh = True
        self.elapsed = time.perf_counter() - t0

    def _claim(self) -> None:
        """Lock every run directory (one writer each); new runs must not hold a run already."""
        try:
            for r in self.runs:
                if not self.resume:
                    prepare_run_dir(r.run_dir)
                r.lock = RunLock(r.run_dir).acquire()
                for leftover in r.run_dir.glob(".*.tmp"):  # temporaries of a writer killed mid-write: with the
                    leftover.unlink(missing_ok=True)     # lock held, no live process owns them
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for r in self.runs:
            if r.lock is not None:
                r.lock.release()
                r.lock = None

    # --- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, online: list[dict[str, Any]] | None = None) -> None:
        """Checkpoint every healthy seed (a diverged seed keeps its last good checkpoint); ``online``: each
        seed's online-phase state (replay rows, environment, collector; :mod:`offrl.online.phase`)."""
        states = []
        for e, r in enumerate(self.runs):
            if not r.active:
                continue
            states.append((r.run_dir, {
                "step": self.step,
                "elapsed": self._now(),
                "seed": r.seed,
                "learner": self.learner.member_state(e),
                "best": r.best,
                "last_eval": r.last_eval,
                **ckpt.record(r.cfg, r.seed, self.dataset.obs_dim, self.dataset.act_dim),
                **({"online": online[e]} if online is not None else {}),
            }))
        if states:
            ckpt.save_group(states)
            for r in self.runs:
                if r.active:
                    r.last_checkpoint = self.step

    def _load_checkpoints(self) -> None:
        expected = ckpt.Expected.of(self.runs, self.dataset.obs_dim, self.dataset.act_dim, self.learner)
        states, notes = ckpt.load_group([r.run_dir for r in self.runs], self.device, expected)
        self.notes += notes
        if states is None:  # killed before the first checkpoint: start over in the same directories
            for r in self.runs:
                for log in (rundir.TRAIN_LOG, rundir.EVAL_LOG):
                    rundir.truncate_jsonl(r.run_dir / log, 0)
                for name in (rundir.CHECKPOINT, rundir.PREV_CHECKPOINT):
                    (r.run_dir / name).unlink(missing_ok=True)
            return
        try:
            self.notes += self.learner.load_member_states([s["learner"] for s in states])
        except (KeyError, RuntimeError) as e:
            raise RunDirError(f"The checkpoint in '{self.runs[0].run_dir}' does not match this run's networks "
                              f"({type(e).__name__}: {e}); it cannot be continued.") from None
        self.step, self.elapsed = int(states[0]["step"]), float(states[0]["elapsed"])
        self.online_states = [s.get("online") for s in states] if self.step > self.cfg.trainer.steps else None
        for r, s in zip(self.runs, states):
            r.best, r.last_eval = s["best"], s["last_eval"]
            r.last_checkpoint = self.step
            for log in (rundir.TRAIN_LOG, rundir.EVAL_LOG):
                rundir.truncate_jsonl(r.run_dir / log, self.step)

    # --- divergence -----------------------------------------------------------------------------------
    def _check_metrics(self, rows: list[dict[str, float]]) -> None:
        for r, row in zip(self.runs, rows):
            if r.active:
                bad = sorted((k for k, v in row.items() if not math.isfinite(v)), key=lambda k: (k.startswith("actor"), k))
                if bad:
                    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
                    self._diverge(r, ", ".join(f"{k} = {row[k]}" for k in bad[:3]) + more)

    def _check_state(self) -> None:
        for e, name in enumerate(self.learner.non_finite()):
            if name and self.runs[e].active:
                self._diverge(self.runs[e], f"a non-finite value in {name}")

    def _diverge(self, r: SeedRun, what: str) -> None:
        evals = getattr(self, "evals", None)
        if evals is not None:  # the evaluations before the divergence belong to its summary
            evals.collect(block=True, progress=self._progress)
        r.status = "diverged"
        r.diverged = f"step {self.step}: {what}"
        self._write_summary(r)

    # --- the loop -------------------------------------------------------------------------------------
    def run(self) -> list[RunResult]:
        t = self.cfg.trainer
        online = OnlinePhase.of(self)  # online.steps > 0: the online phase after the offline steps (offrl.online)
        self.evals = Evaluations(self)
        if self.started_fresh:  # the wall time counts loading (or making) the dataset and building the networks
            self.elapsed = self.setup_s
        self._t0 = time.perf_counter()
        progress = self._progress = TrainingProgress(t.steps + self.cfg.online.steps, self.step,
                                                     enabled=self.show_progress,
                                                     title=self._title())
        try:
            with StopFlag() as flag, progress:
                self.evals.open()
                for note in self.notes + self.evals.notes:
                    progress.note(note)
                self._notes_shown = len(self.evals.notes)
                progress.status(self._compile_note())  # compiled during set-up (the first iteration)
                if not self.evals.available:
                    progress.status(f"training only, no evaluation: {self.dataset.eval_unavailable}")
                if self.step == 1 and self.started_fresh:  # the events of the iteration run at start-up
                    progress.advance(1)
                    self._events(progress)
                while self.step < t.steps and any(r.active for r in self.runs):
                    n = self._chunk()
                    if not self.learner.compile_seconds and self.mode != "off":
                        progress.status("capturing CUDA graphs…" if self.mode == "graph"
                                        else "compiling the training step…")
                    self.learner.train(n)
                    self.step += n
                    progress.advance(self.step)
                    progress.status(self._compile_note())
                    self._events(progress)
                    if flag.stop and self.step < t.steps:
                        self.evals.collect(block=True, progress=progress)
                        self.save_checkpoint()
                        raise KeyboardInterrupt
                if online is not None:
                    online.run(progress, flag)
                self.evals.collect(block=True, progress=progress)
        finally:
            self.evals.close()
            for r in self.runs:
                for mirror in (r.tb, r.wandb):
                    if mirror:
                        mirror.close()
            self.release()
        for r in self.runs:
            if r.active:
                r.status = "finished"
                self._write_summary(r)
        ended = self.ended.run() if getattr(self, "ended", None) is not None else []
        return [self._result(r) for r in self.runs] + ended

    def _chunk(self) -> int:
        """Iterations until the next log, evaluation, checkpoint or the end, at most CHUNK — in ``graph``
        mode rounded to whole graphs of ``steps_per_call`` (the learner replays a shorter graph for what
        is left before an event, never eager iterations)."""
        t = self.cfg.trainer
        s = self.step
        nxt = min(t.steps, *(s + every - s % every for every in (t.log_every, t.eval_every, t.save_every)))
        most = CHUNK if self.mode != "graph" else -(-CHUNK // t.steps_per_call) * t.steps_per_call
        return max(1, min(nxt - s, most))

    def _events(self, progress: TrainingProgress) -> None:
        t = self.cfg.trainer
        s = self.step
        last = s == t.steps
        log, evaluate, save = (s % t.log_every == 0 or last), (s % t.eval_every == 0 or last), \
            (s % t.save_every == 0 or last)
        if log:
            rows = self.learner.read_metrics()
            self._check_metrics(rows)
            for r, row in zip(self.runs, rows):
                if r.active:
                    out = {"step": s, "time_s": self._now(), **row}
                    self._append(r, rundir.TRAIN_LOG, out)
                    for mirror in (r.tb, r.wandb):
                        if mirror:
                            mirror.write("train", out, s)
            progress.metrics(rows[self._first_active()] if any(r.active for r in self.runs) else {})
        if log or evaluate or save:
            self._check_state()
        self.evals.collect(block=False, progress=progress)
        if evaluate and any(r.active for r in self.runs):  # without an environment: the policy is still saved
            self.evals.start(progress)
        for note in self.evals.notes[self._notes_shown:]:
            progress.note(note)
        self._notes_shown = len(self.evals.notes)
        if save:
            self.evals.collect(block=True, progress=progress)  # a checkpoint holds every evaluation before it
            self.save_checkpoint()

    def _first_active(self) -> int:
        return next(i for i, r in enumerate(self.runs) if r.active)

    def _append(self, r: SeedRun, log: str, row: dict[str, Any]) -> None:
        try:
            rundir.append_jsonl(r.run_dir / log, row)
        except OSError as e:
            raise RunDirError(
                f"Could not write {r.run_dir / log} ({e.strerror or e}). The last checkpoint is intact: make the "
                f"run directory writable again and continue with `offrl run --resume {self._resume_target()}`."
            ) from None

    def _score_key(self) -> str:
        """What 'score' means for this dataset (its declared primary metric): success rate, normalised
        score, or raw return."""
        return {"success_rate": "success_rate_100", "normalized_score": "normalized_score_100"}.get(
            self.dataset.primary_metric, "return_mean")

    def _compile_note(self) -> str:
        if self.learner.compile_seconds:
            what = "capture" if self.mode == "graph" else "compile"
            return f"{what} {self.learner.compile_seconds:.1f} s"
        return ""

    def _now(self) -> float:
        return round(self.elapsed + time.perf_counter() - self._t0, 3) if hasattr(self, "_t0") else self.elapsed

    def _title(self) -> str:
        seeds = [r.seed for r in self.runs]
        who = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({self.cfg.trainer.seeds})"
        return f"{self.cfg.critic} + {self.cfg.actor} · {self.cfg.data.dataset} · {who}"

    def _resume_target(self) -> Path:
        return self.group_dir if self.group_dir is not None else self.runs[0].run_dir

    # --- results --------------------------------------------------------------------------------------
    def _summary(self, r: SeedRun) -> dict[str, Any]:
        key = self._score_key()
        last, best = r.last_eval, r.best
        out = {
            "status": r.status,
            "critic": self.cfg.critic,
            "actor": self.cfg.actor,
            "dataset": self.cfg.data.dataset,
            "seed": r.seed,
            "steps": self.step,
            "score_key": key,
            "final_score_100": last.get("normalized_score_100"),
            "best_score_100": best.get("normalized_score_100"),
            "best_step": best.get("step"),
            "final_return": last.get("return_mean"),
            "best_return": best.get("return_mean"),
            "final_success_rate_100": last.get("success_rate_100"),
            "best_success_rate_100": best.get("success_rate_100"),
            "evaluated": bool(last),
            "evaluation_unavailable": self.dataset.eval_unavailable,
            "score_unavailable": self.dataset.score_unavailable,
            "speed_mode": self.mode,
            "graph": self.learner.graph_kind or None,
            "device": str(self.device),
            "seeds_in_process": len(self.runs),
            **self.split.summary(),
            "setup_s": round(getattr(self, "setup_s", 0.0), 3),
            "wall_time_s": self._now(),
            "run_dir": str(r.run_dir),
        }
        evals = getattr(self, "evals", None)
        if evals is not None:
            out.update(evals.summary(out["wall_time_s"]))
        notes = self.notes + (evals.notes if evals is not None else [])
        if notes:
            out["notes"] = notes
        if r.status == "diverged":
            out["diverged"] = r.diverged
            out["reason"] = r.diverged
            out["last_checkpoint_step"] = r.last_checkpoint
        return out

    def _write_summary(self, r: SeedRun) -> None:
        try:
            rundir.write_json(r.run_dir / rundir.SUMMARY, self._summary(r))
        except OSError as e:
            raise RunDirError(f"Could not write {r.run_dir / rundir.SUMMARY} ({e.strerror or e}).") from None

    def _result(self, r: SeedRun) -> RunResult:
        summary = rundir.read_summary(r.run_dir) or self._summary(r)
        return RunResult(r.run_dir, int(summary.get("steps", self.step)), summary.get("status") == "finished", summary)
