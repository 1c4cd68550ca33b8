"""The shared trainer: one loop for any registered (critic, actor) pair.

Per iteration: ``critic.updates_per_step`` critic updates, then
``actor.updates_per_step`` actor updates, each on its own batch of its own size
sampled on the device. Metrics stay on the device until logged. Evaluation,
logging and checkpointing happen at iteration counts, so an interrupted run
resumed from its checkpoint produces the same logs as an uninterrupted one.
"""
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from offrl.actors import ACTORS
from offrl.config import RunConfig
from offrl.critics import CRITICS
from offrl.data.dataset import OfflineDataset, load_offline_dataset
from offrl.data.preprocess import ObsNormalizer
from offrl.errors import RunDirError
from offrl.trainer import checkpoint as ckpt
from offrl.trainer.evaluation import Evaluator
from offrl.trainer.logger import EVAL_LOG, TRAIN_LOG, JsonlLog, MetricAccumulator, TensorBoardLog
from offrl.trainer.progress import TrainingProgress
from offrl.trainer.runtime import configure_threads, resolve_device, seed_everything

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
OBS_STATS_FILE = "obs_stats.json"


@dataclass
class RunResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    steps: int
    finished: bool
    summary: dict[str, Any]


def prepare_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` for a new run; refuse one that already holds a run or is not writable."""
    if (run_dir / CONFIG_FILE).exists():
        raise RunDirError(
            f"'{run_dir}' already holds a run. Continue it with `offrl run --resume {run_dir}` "
            "or choose another --out."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"Cannot write to run directory '{run_dir}': {e.strerror or e}.") from None


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between iterations, so the checkpoint
    written on the way out is at an iteration boundary (a consistent state)."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Trainer:
    """Build everything from a :class:`RunConfig` and run it in ``run_dir``."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path, resume: bool = False, show_progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.show_progress = show_progress
        t = cfg.trainer
        self.device = resolve_device(t.device)
        configure_threads(self.device, t.threads)
        if not resume:
            prepare_run_dir(self.run_dir)
        seed_everything(t.seed)

        saved_norm = None
        if resume and (self.run_dir / OBS_STATS_FILE).exists():
            saved_norm = ObsNormalizer.from_dict(json.loads((self.run_dir / OBS_STATS_FILE).read_text()))
        d = cfg.data
        self.dataset: OfflineDataset = load_offline_dataset(
            d.dataset, reward=d.reward, normalize_obs=d.normalize_obs, action_clip_eps=d.action_clip_eps,
            obs_normalizer=saved_norm,
        )
        self.table = self.dataset.arrays.to_table(self.device)
        obs_dim, act_dim = self.dataset.obs_dim, self.dataset.act_dim
        self.critic = CRITICS.get(cfg.critic)(cfg.critic_cfg, obs_dim, act_dim, self.device)
        total_actor_updates = t.steps * cfg.actor_cfg.updates_per_step
        self.actor = ACTORS.get(cfg.actor)(cfg.actor_cfg, obs_dim, act_dim, total_actor_updates, self.device)
        self.sampler = torch.Generator(device=self.device).manual_seed(t.seed)
        self.metrics = MetricAccumulator()
        self.step = 0
        self.elapsed = 0.0
        self.best: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.train_log = JsonlLog(self.run_dir / TRAIN_LOG)
        self.eval_log = JsonlLog(self.run_dir / EVAL_LOG)

        if resume:
            self._load_checkpoint()
        else:
            (self.run_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            if d.normalize_obs:
                (self.run_dir / OBS_STATS_FILE).write_text(json.dumps(self.dataset.obs_normalizer.to_dict()))
        self.tb = TensorBoardLog(self.run_dir / "tensorboard") if t.tensorboard else None

    # --- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "elapsed": self.elapsed + (time.perf_counter() - self._t0 if hasattr(self, "_t0") else 0.0),
            "critic": self.critic.training_state(),
            "actor": self.actor.training_state(),
            "rng": ckpt.rng_state(self.sampler),
            "metrics": self.metrics.state_dict(),
            "best": self.best,
            "last_eval": self.last_eval,
        }
        ckpt.save_atomic(state, self.run_dir / ckpt.CHECKPOINT)

    def _load_checkpoint(self) -> None:
        path = self.run_dir / ckpt.CHECKPOINT
        if not path.exists():
            # killed before the first checkpoint: start over in the same directory
            for log in (self.train_log, self.eval_log):
                log.truncate_after(0)
            return
        state = ckpt.load(path, self.device)
        self.critic.load_training_state(state["critic"])
        self.actor.load_training_state(state["actor"])
        ckpt.restore_rng_state(state["rng"], self.sampler)
        self.metrics.load_state_dict(state["metrics"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.best, self.last_eval = state["best"], state["last_eval"]
        for log in (self.train_log, self.eval_log):
            log.truncate_after(self.step)

    # --- the loop ------------------------------------------------------------------------------
    def train_step(self) -> None:
        """One trainer iteration: critic updates, then actor updates. No host sync."""
        ccfg, acfg = self.cfg.critic_cfg, self.cfg.actor_cfg
        for _ in range(ccfg.updates_per_step):
            self.metrics.add(self.critic.update(self.table.sample(ccfg.batch_size, self.sampler)))
        for _ in range(acfg.updates_per_step):
            self.metrics.add(self.actor.update(self.table.sample(acfg.batch_size, self.sampler), self.critic))

    def evaluate(self, evaluator: Evaluator) -> dict[str, Any]:
        self.actor.eval()
        self.critic.eval()
        try:
            result = evaluator.evaluate(
                lambda obs, gen: self.actor.act(obs, self.critic, gen),
                self.cfg.trainer.eval_episodes, self.cfg.trainer.seed, self.step,
            )
        finally:
            self.actor.train()
            self.critic.train()
        return result

    def run(self) -> RunResult:
        t = self.cfg.trainer
        if self.resume and (self.run_dir / SUMMARY_FILE).exists():
            summary = json.loads((self.run_dir / SUMMARY_FILE).read_text())
            return RunResult(self.run_dir, self.step, True, summary)
        evaluator = Evaluator(self.dataset, min(t.eval_envs, t.eval_episodes), self.device)
        self._t0 = time.perf_counter()
        finished = False
        progress = TrainingProgress(t.steps, self.step, enabled=self.show_progress, title=self._title())
        try:
            with _StopFlag() as flag, progress:
                while self.step < t.steps:
                    self.train_step()
                    self.step += 1
                    s = self.step
                    last = s == t.steps
                    if s % t.log_every == 0 or last:
                        row = {"step": s, "time_s": self._now(), **self.metrics.means()}
                        self.train_log.write(row)
                        if self.tb:
                            self.tb.write("train", row, s)
                        progress.metrics(row)
                    if s % t.eval_every == 0 or last:
                        result = self.evaluate(evaluator)
                        if result:
                            self._record_eval(result)
                            progress.score(self.last_eval)
                    if s % t.save_every == 0 or last:
                        self.save_checkpoint()
                    progress.advance(s)
                    if flag.stop and not last:
                        self.save_checkpoint()
                        raise KeyboardInterrupt
                finished = True
        finally:
            evaluator.close()
            if self.tb:
                self.tb.close()
        summary = self._summary()
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        return RunResult(self.run_dir, self.step, finished, summary)

    def _now(self) -> float:
        return round(self.elapsed + time.perf_counter() - self._t0, 3)

    def _title(self) -> str:
        return f"{self.cfg.critic} + {self.cfg.actor} on {self.cfg.data.dataset}"

    def _record_eval(self, result: dict[str, Any]) -> None:
        row = {"step": self.step, "time_s": self._now(), **result}
        self.eval_log.write(row)
        if self.tb:
            self.tb.write("eval", row, self.step)
        self.last_eval = row
        key = "normalized_score_100" if row.get("normalized_score_100") is not None else "return_mean"
        if not self.best or row[key] > self.best[key]:
            self.best = row

    def _summary(self) -> dict[str, Any]:
        last, best = self.last_eval, self.best
        return {
            "status": "finished",
            "critic": self.cfg.critic,
            "actor": self.cfg.actor,
            "dataset": self.cfg.data.dataset,
            "seed": self.cfg.trainer.seed,
            "steps": self.step,
            "final_score_100": last.get("normalized_score_100"),
            "best_score_100": best.get("normalized_score_100"),
            "best_step": best.get("step"),
            "final_return": last.get("return_mean"),
            "best_return": best.get("return_mean"),
            "wall_time_s": self._now(),
            "run_dir": str(self.run_dir),
        }


def train(cfg: RunConfig, run_dir: str | Path, show_progress: bool = False) -> RunResult:
    """Python API: train ``cfg`` in ``run_dir`` (a new directory) and return the result."""
    return Trainer(cfg, run_dir, show_progress=show_progress).run()


def resume(run_dir: str | Path, show_progress: bool = False) -> RunResult:
    """Python API: continue the run in ``run_dir`` from its latest checkpoint."""
    return Trainer(load_run_config(run_dir), run_dir, resume=True, show_progress=show_progress).run()


def saved_config_layer(run_dir: str | Path) -> dict[str, Any]:
    """The config layer saved in ``run_dir``; a clear error if it holds no run."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunDirError(f"'{run_dir}' holds no offrl run (no {CONFIG_FILE}); nothing to resume.")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"'{path}' is not valid JSON ({e}); cannot resume.") from None
    saved.pop("offrl_version", None)
    return saved


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The :class:`RunConfig` saved in ``run_dir``."""
    from offrl.config import resolve

    return resolve([saved_config_layer(run_dir)])
