"""One evaluation with the bottleneck probes: the plain score, diagnostics, OPEX and TTT (``eval.*``).

The trainer's evaluations (in its process, or in worker processes on weight
snapshots) call :func:`evaluate`. Without probes (``eval.*`` at their defaults)
it is the plain evaluation and nothing else. With them, one evaluation row per
seed holds, beside the plain scores:

- ``diag/*`` (``eval.diagnostics``; :mod:`offrl.bottleneck.diagnostics`);
- ``opex/*`` and ``ttt/*`` (``eval.opex_steps``, ``eval.ttt_steps``;
  :mod:`offrl.bottleneck.testtime`): the scores of the improved policy on the
  same episode seeds and acting noise as the plain pass, so the difference is
  paired; ``opex/seconds`` and ``ttt/seconds`` are their cost in wall time.

Everything runs on the evaluation path, outside the training step.
:class:`ProbeData` is what the probes read of the dataset (training and
held-out states, the reference, the reward map): built once in the trainer's
process, small and picklable, so a worker evaluates exactly as the trainer
would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from offrl.bottleneck.reference import Reference, reference_for
from offrl.bottleneck.testtime import ActFn, opex_act, ttt_adapt
from offrl.bottleneck.visits import VisitRecorder, reward_affine
from offrl.learner.members import StackedAgents
from offrl.trainer.runtime import derived_seed

if TYPE_CHECKING:
    from offrl.trainer.evaluation import Evaluator

#: Scores of an OPEX or TTT pass that the evaluation row keeps (under ``opex/`` and ``ttt/``).
PASS_KEYS = ("return_mean", "normalized_score_100", "success_rate_100")
#: Stream of TTT's batch and noise draws under (seed, step).
TTT_STREAM = 19


@dataclass
class ProbeData:
    """What the probes need of the run and its data (plain and picklable)."""

    config: dict[str, Any]  # the run's resolved config (TTT rebuilds the agents from it)
    obs_dim: int
    act_dim: int
    diagnostics: bool
    diagnostic_states: int
    opex_steps: int
    opex_lr: float
    ttt_steps: int
    ttt_lr: float
    ttt_batch: int
    discount: float
    reward_scale: float
    reward_shift: float
    reference: Reference | None
    reference_name: str
    train_states: np.ndarray | None = None
    train_actions: np.ndarray | None = None
    validation_states: np.ndarray | None = None
    validation_actions: np.ndarray | None = None

    @property
    def records_visits(self) -> bool:
        return self.diagnostics or self.ttt_steps > 0


def probe_data(cfg: Any, dataset: Any, split: Any) -> ProbeData | None:
    """The probes of ``cfg.eval`` on a loaded dataset and its split; None when there are none."""
    e = cfg.eval
    if not e.probes:
        return None
    from offrl import rundir

    scale, shift = reward_affine(dataset.reward_mode, dataset.arrays.episode_returns)
    reference, name = reference_for(dataset, e.reference) if e.diagnostics else (None, "")
    data = ProbeData(
        config=rundir.floats_as_text(cfg.to_dict()), obs_dim=dataset.obs_dim, act_dim=dataset.act_dim,
        diagnostics=e.diagnostics, diagnostic_states=e.diagnostic_states, opex_steps=e.opex_steps,
        opex_lr=e.opex_lr, ttt_steps=e.ttt_steps, ttt_lr=e.ttt_lr, ttt_batch=e.ttt_batch,
        discount=float(getattr(cfg.critic_cfg, "discount", 0.99)), reward_scale=scale, reward_shift=shift,
        reference=reference, reference_name=name,
    )
    if e.diagnostics:
        seed = cfg.data.split_seed
        data.train_states, data.train_actions = _states(split.policy, e.diagnostic_states, seed, 0)
        if split.validation is not None:
            data.validation_states, data.validation_actions = _states(split.validation, e.diagnostic_states, seed, 1)
    return data


def _states(arrays: Any, most: int, seed: int, which: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``most`` (state, dataset action) pairs of ``arrays``, the same at every evaluation."""
    n = len(arrays)
    idx = np.arange(n) if n <= most else np.sort(np.random.default_rng([seed, 23, which]).choice(n, most, False))
    return np.asarray(arrays.observations[idx], np.float32), np.asarray(arrays.actions[idx], np.float32)


class Prober:
    """Runs the probes of one run's evaluations (built once per evaluating process)."""

    def __init__(self, data: ProbeData, device: torch.device) -> None:
        self.data = data
        self.device = device
        self._cfg: Any = None

    @property
    def cfg(self) -> Any:
        if self._cfg is None:
            from offrl.config import resolve

            layer = dict(self.data.config)
            layer.pop("offrl_version", None)
            self._cfg = resolve([layer])
        return self._cfg

    def evaluate(self, evaluator: "Evaluator", stack: StackedAgents, act: ActFn, active: Sequence[bool],
                 episodes: int, seeds: Sequence[int], step: int) -> list[dict[str, Any]]:
        d = self.data
        seeds = list(seeds)
        visits = VisitRecorder(len(seeds), evaluator.num_envs) if d.records_visits else None
        rows = evaluator.evaluate(masked(stack, act, active, self.device), episodes, seeds, step, observer=visits)
        if visits is not None:
            visits.finish()
        if d.diagnostics and evaluator.available:
            for row, diag in zip(rows, self._diagnose(act, stack, visits, seeds, step)):
                row.update(diag)
        if d.opex_steps > 0:
            t0 = time.perf_counter()
            opex = evaluator.evaluate(masked(stack, opex_act(act, d.opex_steps, d.opex_lr), active, self.device),
                                      episodes, seeds, step)
            _merge(rows, opex, "opex", time.perf_counter() - t0, steps=d.opex_steps)
        if d.ttt_steps > 0 and visits is not None and all(visits.episodes):
            t0 = time.perf_counter()
            adapted = self._adapt(stack, visits, seeds, step)
            ttt = evaluator.evaluate(masked(adapted, act, active, self.device), episodes, seeds, step)
            _merge(rows, ttt, "ttt", time.perf_counter() - t0, steps=d.ttt_steps)
        return rows

    def _diagnose(self, act: ActFn, stack: StackedAgents, visits: VisitRecorder | None, seeds: list[int],
                  step: int) -> list[dict[str, Any]]:
        from offrl.bottleneck.diagnostics import diagnose

        assert visits is not None
        return diagnose(act, stack, visits, seeds, step, self.device, self.data)

    def _adapt(self, stack: StackedAgents, visits: VisitRecorder, seeds: list[int], step: int) -> StackedAgents:
        d = self.data
        parts = [visits.transitions(e, d.reward_scale, d.reward_shift) for e in range(len(seeds))]
        streams = [derived_seed(s, step, TTT_STREAM) for s in seeds]
        return ttt_adapt(self.cfg, stack, parts, seeds, streams, d.obs_dim, d.act_dim, d.ttt_steps, d.ttt_lr,
                         d.ttt_batch, self.device)


def masked(stack: StackedAgents, act: ActFn, active: Sequence[bool], device: torch.device) -> Any:
    """The evaluator's policy: ``act`` on ``stack``, zero actions for diverged seeds (their NaNs never reach an
    environment)."""
    mask = torch.tensor(list(active), device=device).reshape(-1, 1, 1)

    def policy(obs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        actions = act(stack, obs, gens)
        return torch.where(mask, actions, torch.zeros_like(actions))

    return policy


def _merge(rows: list[dict[str, Any]], extra: list[dict[str, Any]], prefix: str, seconds: float, steps: int) -> None:
    for row, more in zip(rows, extra):
        for key in PASS_KEYS:
            if more.get(key) is not None:
                row[f"{prefix}/{key}"] = more[key]
        row[f"{prefix}/steps"] = steps
        row[f"{prefix}/seconds"] = round(seconds, 3)


def evaluate(evaluator: "Evaluator", prober: Prober | None, stack: StackedAgents, act: ActFn,
             active: Sequence[bool], episodes: int, seeds: Sequence[int], step: int,
             device: torch.device) -> list[dict[str, Any]]:
    """One evaluation of every seed: plain, or with the probes of ``prober``."""
    if prober is None:
        return evaluator.evaluate(masked(stack, act, active, device), episodes, list(seeds), step)
    return prober.evaluate(evaluator, stack, act, active, episodes, seeds, step)
