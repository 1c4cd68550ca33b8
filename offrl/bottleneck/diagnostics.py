"""The bottleneck diagnostics: where the policy errs, and how wrong the critic is where the policy goes.

On three sets of states (Park et al. 2024, §5):

- ``diag/mse_train``: states the actor trained on (its own subset of the data);
- ``diag/mse_validation``: held-out states (``data.validation_fraction``);
- ``diag/mse_visited``: states the policy visited in the evaluation episodes;

the policy's action error ``mean_i (a_i − a*_i)²`` against the reference
(:mod:`offrl.bottleneck.reference`). On training and held-out states the policy
acts afresh (noise from a generator derived from (seed, step)); on visited
states the action is the one it took. With the dataset action as reference,
``mse_visited`` is not defined (no dataset action there) and is left out.

``diag/value_bias`` and ``diag/value_rmse``: Q(s_t, a_t) (the critic's target
ensemble, its minimum) minus the discounted Monte-Carlo return of the
evaluation episode from t, over the visited states whose return is a fair
target (:data:`offrl.bottleneck.visits.MC_TAIL`); ``diag/value_states`` counts
them. The return is a single sample of the *policy's* value, which a critic of
the IQL family does not estimate (it estimates an in-sample optimum), so the
bias reads as optimism against what this policy achieves.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from offrl.bottleneck.reference import Reference
from offrl.bottleneck.visits import VisitRecorder
from offrl.learner.members import StackedAgents
from offrl.trainer.runtime import derived_seed

#: Stream of the diagnostics' draws under (seed, step): acting noise and the choice of states.
DIAG_STREAM = 17


def action_errors(reference: Reference | None, states: np.ndarray, actions: np.ndarray,
                  dataset_actions: np.ndarray | None) -> np.ndarray | None:
    """Per state, ``mean_i (a_i − a*_i)²`` against the reference, or the dataset action; None if neither."""
    if reference is not None:
        return reference.errors(states, actions)
    if dataset_actions is None:
        return None
    return ((np.asarray(actions, np.float64) - np.asarray(dataset_actions, np.float64)) ** 2).mean(-1)


def policy_actions(act: Any, stack: StackedAgents, states: np.ndarray, seeds: Sequence[int], step: int,
                   which: int, device: torch.device) -> np.ndarray:
    """Every seed's action at the same ``states`` [n, O] -> [E, n, A]."""
    obs = torch.as_tensor(states, dtype=torch.float32, device=device).expand(len(seeds), *states.shape)
    gens = [torch.Generator(device=device).manual_seed(derived_seed(s, step, DIAG_STREAM, which)) for s in seeds]
    return act(stack, obs.contiguous(), gens).float().cpu().numpy()


def subsample(n: int, most: int, seed: int, step: int, which: int) -> np.ndarray:
    """At most ``most`` of ``n`` indices, drawn reproducibly from (seed, step)."""
    if n <= most:
        return np.arange(n)
    rng = np.random.default_rng([seed, step, DIAG_STREAM, which])
    return np.sort(rng.choice(n, most, replace=False))


def dataset_set_errors(act: Any, stack: StackedAgents, reference: Reference | None, states: np.ndarray,
                       dataset_actions: np.ndarray, seeds: Sequence[int], step: int, which: int,
                       device: torch.device) -> list[float | None]:
    """Per seed, the mean action error on a fixed set of dataset states (training or held-out)."""
    actions = policy_actions(act, stack, states, seeds, step, which, device)
    out: list[float | None] = []
    for e in range(len(seeds)):
        err = action_errors(reference, states, actions[e], dataset_actions)
        out.append(None if err is None else float(err.mean()))
    return out


@torch.no_grad()
def q_values(stack: StackedAgents, states: list[np.ndarray], actions: list[np.ndarray],
             device: torch.device) -> list[np.ndarray]:
    """Per seed, min_i Q̄_i(s, a) of its own critic at its own (state, action) pairs (padded to one call)."""
    n = max(len(s) for s in states)
    if n == 0:
        return [np.zeros(0) for _ in states]
    obs = np.zeros((len(states), n, states[0].shape[-1]), np.float32)
    act = np.zeros((len(states), n, actions[0].shape[-1]), np.float32)
    for e, (s, a) in enumerate(zip(states, actions)):
        obs[e, :len(s)], act[e, :len(a)] = s, a
    critic = stack.template.critic
    q = stack.map(lambda o, x: critic.q(o, x), torch.as_tensor(obs, device=device), torch.as_tensor(act, device=device))
    q = q.float().cpu().numpy()
    return [q[e, :len(s)] for e, s in enumerate(states)]


def diagnose(act: Any, stack: StackedAgents, visits: VisitRecorder, seeds: Sequence[int], step: int,
             device: torch.device, data: Any) -> list[dict[str, Any]]:
    """Every ``diag/*`` value for each seed (``data``: a :class:`offrl.bottleneck.probe.ProbeData`)."""
    rows: list[dict[str, Any]] = [{} for _ in seeds]
    ref = data.reference
    sets = [("train", data.train_states, data.train_actions), ("validation", data.validation_states,
                                                                 data.validation_actions)]
    for which, (name, states, dataset_actions) in enumerate(sets):
        if states is None or not len(states):
            continue
        for row, value in zip(rows, dataset_set_errors(act, stack, ref, states, dataset_actions, seeds, step, which,
                                                       device)):
            if value is not None:
                row[f"diag/mse_{name}"] = value
    if ref is not None:
        for e, (row, seed) in enumerate(zip(rows, seeds)):
            states, actions = visits.states(e), visits.actions(e)
            keep = subsample(len(states), data.diagnostic_states, seed, step, 2)
            if len(keep):
                row["diag/mse_visited"] = float(ref.errors(states[keep], actions[keep]).mean())
    targets = [visits.value_targets(e, data.discount, data.reward_scale, data.reward_shift) for e in range(len(seeds))]
    qs = q_values(stack, [t[0] for t in targets], [t[1] for t in targets], device)
    for row, (_, _, ret), q in zip(rows, targets, qs):
        row["diag/value_states"] = int(len(ret))
        if len(ret):
            err = q.astype(np.float64) - ret
            row["diag/value_bias"] = float(err.mean())
            row["diag/value_rmse"] = float(np.sqrt((err ** 2).mean()))
            row["diag/value_mc_mean"] = float(ret.mean())
    return rows
