"""The online phase: after the offline steps, the same learner keeps training while every seed collects.

Per environment step: every seed acts in its own environment (its actor's declared exploration,
:attr:`offrl.actors.base.Actor.exploration`; uniform actions for the first ``online.start_steps``), the
transitions go to the device replay (:class:`~offrl.online.replay.ReplayTable`), then the learner runs
``online.updates_per_step`` iterations — its ordinary update (same components, schedule, speed mode), now
sampling the replay. Logs and evaluations count **environment steps** from the offline steps on: a row at
``step = trainer.steps + k`` is k environment steps into the online phase (``env_step`` in train.jsonl), and
evaluations go through the trainer's own evaluation path.

What resume promises: the phase checkpoints every ``trainer.save_every`` environment steps (and on Ctrl-C) with
the learner, each seed's collected replay rows, its environment's state (:mod:`offrl.online.envstate`), its
collection counters and generators. ``offrl run --resume`` continues from there: on CPU the resumed run equals
the uninterrupted one. An environment whose state cannot be saved resumes at a new episode, with a note
(docs/online.md).
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import torch

from offrl import rundir
from offrl.data.returns import ReturnsToGo
from offrl.errors import ConfigError, RunDirError
from offrl.online.collect import Collector
from offrl.online.replay import ReplayTable

if TYPE_CHECKING:
    from offrl.trainer.progress import TrainingProgress
    from offrl.trainer.signals import StopFlag
    from offrl.trainer.trainer import Trainer

#: What each seed's run directory records of its online phase (and ``offrl finetune``'s parent).
ONLINE_FILE = "online.json"
#: What ``offrl finetune`` writes there before the phase runs (kept when the phase records itself).
PARENT_KEYS = ("parent", "parent_env_steps")


def capacity_of(cfg: Any, n_offline: int) -> int:
    """Rows of the replay per seed: ``online.capacity``, or the dataset's size + ``online.steps``."""
    return cfg.online.capacity or n_offline + cfg.online.steps


def check_actor_lr(actor_name: str, cosine_decay: bool, online_steps: int) -> None:
    """A cosine-decayed actor LR reaches 0 at the last offline step (IQL's code decays over its steps), so an
    online phase after it would collect with a frozen actor: refuse it rather than report its flat curve."""
    if online_steps > 0 and cosine_decay:
        raise ConfigError(
            f"actor.cosine_decay=true decays the {actor_name} actor's learning rate to 0 over the offline steps, so "
            f"the online phase (online.steps={online_steps}) would never train the actor. Train with "
            "--set actor.cosine_decay=false, as IQL's own fine-tuning does (ikostrikov/implicit_q_learning "
            "configs/antmaze_finetune_config.py: opt_decay_schedule=None), or use the iql-finetune preset.")


def check_online(trainer: "Trainer") -> None:
    """One clear message for an online phase that cannot run, before any of it does."""
    cfg, ds = trainer.cfg, trainer.dataset
    o = cfg.online
    if o.steps <= 0:
        return
    if ds.make_env is None:
        raise ConfigError(f"online.steps={o.steps} needs an environment to collect in, but dataset '{ds.dataset_id}' "
                          f"has none ({ds.eval_unavailable}); run it offline only (--online-steps 0).")
    if isinstance(trainer.table, dict):
        raise ConfigError("The online phase trains both components on one replay; it cannot follow decoupled data "
                          "(data.value_fraction / data.policy_fraction < 1). Set them to 1, or --online-steps 0.")
    n = len(trainer.table)
    cap = capacity_of(cfg, n)
    if cap <= n:
        raise ConfigError(f"online.capacity={cap} is smaller than the replay needs: it must hold the dataset "
                          f"({n:,} transitions) and collected transitions; set it above {n:,} "
                          "(0 = dataset size + online.steps).")
    check_schedules(trainer)


def check_schedules(trainer: "Trainer") -> None:
    """Any parameter group (a plugin's included) whose cosine LR schedule is spent by the end of the offline
    steps would not learn online: refuse it by name. Reads the learner's own groups, not config keys; a built-in
    actor's spent group is named by the config key that set it (``actor.cosine_decay``)."""
    cfg = trainer.cfg
    sched, steps = trainer.schedule, cfg.trainer.steps
    for key, optim in trainer.learner.optims.items():
        group = optim.group
        if group.schedule != "cosine":
            continue
        is_actor = key.startswith("actor/")
        done = sched.actor_updates_in(steps) if is_actor else sched.critic_updates_in(steps)
        if done >= group.total_updates:
            if is_actor:
                check_actor_lr(cfg.actor, bool(getattr(cfg.actor_cfg, "cosine_decay", False)), cfg.online.steps)
            raise ConfigError(
                f"Parameter group '{key}' decays its learning rate with a cosine schedule to 0 over "
                f"{group.total_updates:,} updates, and the {steps:,} offline steps take {done:,} of them, so "
                f"the online phase (online.steps={cfg.online.steps}) would never train it. Give the "
                "group a constant schedule (ParamGroup(schedule='constant')) or a total_updates that covers "
                "the online phase, or run offline only (--online-steps 0).")


class OnlinePhase:
    """Runs the online phase of a trainer (see the module docstring)."""

    def __init__(self, trainer: "Trainer") -> None:
        self.tr = trainer
        self.cfg = trainer.cfg.online

    @classmethod
    def of(cls, trainer: "Trainer") -> "OnlinePhase | None":
        """The phase for ``trainer`` (checked), or None when ``online.steps`` is 0."""
        check_online(trainer)
        return cls(trainer) if trainer.cfg.online.steps > 0 else None

    def run(self, progress: "TrainingProgress", flag: "StopFlag") -> None:
        tr, o = self.tr, self.cfg
        if not any(r.active for r in tr.runs):
            return
        t = tr.cfg.trainer
        offline_steps = t.steps
        tr.evals.collect(block=True, progress=progress)
        replay = ReplayTable(tr.table, len(tr.runs), capacity_of(tr.cfg, len(tr.table)), o.offline_fraction)
        tr.learner.replace_tables(replay)
        collector = Collector(tr.dataset.make_env, [r.seed for r in tr.runs], tr.dataset, tr.device,
                              tr.cfg.data.action_clip_eps, ReturnsToGo.of(tr.cfg.critic_cfg))
        done = self._restore(replay, collector, progress) if tr.online_states is not None else 0
        log_every, eval_every = o.log_every or t.log_every, o.eval_every or t.eval_every
        stack = tr.learner.stack
        actor, critic = stack.template.actor, stack.template.critic
        spec = actor.explore_noise(1)
        progress.status("online: collecting…")
        t0 = time.perf_counter()
        try:
            for k in range(done + 1, o.steps + 1):
                if k <= o.start_steps:
                    actions = collector.random_actions()
                else:
                    obs = collector.observations()
                    noise = {name: torch.stack([s.draw(g, tr.device) for g in collector.generators])
                             for name, s in spec.items()}
                    with torch.no_grad():
                        actions = stack.map(lambda x, z: actor.explore(x, critic, z, o.explore_noise), obs, noise)
                    actions = actions[:, 0]
                collector.step(actions, replay)
                if k > o.start_steps:
                    tr.learner.train(o.updates_per_step)
                tr.step = offline_steps + k
                progress.advance(tr.step)
                self._events(k, log_every, eval_every, collector, progress)
                if k % t.save_every == 0 or k == o.steps or (flag.stop and k < o.steps):
                    tr.evals.collect(block=True, progress=progress)  # a checkpoint holds every evaluation before it
                    self._checkpoint(replay, collector)
                if flag.stop and k < o.steps:
                    raise KeyboardInterrupt
                if not any(r.active for r in tr.runs):
                    break
        finally:
            collector.close()
        tr.evals.collect(block=True, progress=progress)
        seconds = time.perf_counter() - t0
        for r in tr.runs:
            self._record(r, offline_steps, replay, seconds)

    def _checkpoint(self, replay: ReplayTable, collector: Collector) -> None:
        self.tr.save_checkpoint(online=[{"replay": replay.member_state(e), "collector": collector.member_state(e)}
                                        for e in range(len(self.tr.runs))])

    def _restore(self, replay: ReplayTable, collector: Collector, progress: "TrainingProgress") -> int:
        """Continue from an online-phase checkpoint: replay rows and collection state back; returns the number
        of environment steps already done."""
        tr = self.tr
        states = tr.online_states or []
        if len(states) != len(tr.runs) or any(s is None for s in states):
            raise RunDirError(f"The checkpoint in '{tr.runs[0].run_dir}' is from the online phase (step {tr.step}) "
                              "but holds no online state for every seed; it cannot be continued.")
        try:
            replay.load_member_states([s["replay"] for s in states])
            notes = collector.load_member_states([s["collector"] for s in states], replay)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise RunDirError(f"The online-phase checkpoint in '{tr.runs[0].run_dir}' does not match this run "
                              f"({type(e).__name__}: {e}); it cannot be continued.") from None
        for note in notes:
            progress.note(note)
        done = tr.step - tr.cfg.trainer.steps
        if replay.collected != done:
            raise RunDirError(f"The online-phase checkpoint in '{tr.runs[0].run_dir}' is at environment step {done} "
                              f"but its replay holds {replay.collected} collected transitions; it cannot be continued.")
        return done

    def _events(self, k: int, log_every: int, eval_every: int, collector: Collector,
                progress: "TrainingProgress") -> None:
        tr, o = self.tr, self.cfg
        last = k == o.steps
        log, evaluate = (k % log_every == 0 or last), (k % eval_every == 0 or last)
        if log:
            rows = tr.learner.read_metrics()
            tr._check_metrics(rows)
            episodes = collector.read_episodes()
            for r, row, ep in zip(tr.runs, rows, episodes):
                if r.active:
                    out = {"step": tr.step, "env_step": k, "phase": "online", "time_s": tr._now(), **row, **ep}
                    tr._append(r, rundir.TRAIN_LOG, out)
                    for mirror in (r.tb, r.wandb):
                        if mirror:
                            mirror.write("train", {k2: v for k2, v in out.items() if k2 != "phase"}, tr.step)
            tr._check_state()
        tr.evals.collect(block=False, progress=progress)
        if evaluate and tr.evals.available and any(r.active for r in tr.runs):
            tr.evals.start(progress)

    def _record(self, r: Any, offline_steps: int, replay: ReplayTable, seconds: float) -> None:
        """``online.json``: what the phase did, beside the parent run ``offrl finetune`` recorded."""
        path = r.run_dir / ONLINE_FILE
        try:
            old = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            old = {}
        info = {**{k: v for k, v in old.items() if k in PARENT_KEYS}, "offline_steps": offline_steps,
                "env_steps": self.cfg.steps, "replay_offline_rows": replay.n_offline,
                "replay_collected_rows": int(replay.n_online), "offline_fraction": self.cfg.offline_fraction,
                "updates_per_step": self.cfg.updates_per_step, "start_steps": self.cfg.start_steps,
                "exploration": type(self.tr.learner.stack.template.actor).exploration,
                "online_s": round(seconds, 3),
                "resume": "an interrupted online phase continues from its last checkpoint (docs/online.md)"}
        rundir.write_json(path, info)
