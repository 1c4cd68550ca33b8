"""Decoupled data: the critic and the actor learn from their own sub-samples of a dataset's episodes.

The bottleneck protocol of Park et al. 2024 ("Is Value Learning Really the Main
Bottleneck in Offline RL?", docs/bottleneck.md) trains the value function on
N_v transitions and extracts the policy on N_π, and measures the policy on
held-out states. Here all three sets are drawn by **whole episodes** (so SARSA's
next actions and the episode boundaries stay intact), each from its own seeded
permutation, with ``data.split_seed``:

1. the validation split: ``round(validation_fraction · N)`` episodes of a
   permutation seeded by (split_seed, 0), held out from training entirely;
2. the critic's episodes: the first ``max(1, round(value_fraction · M))`` of a
   permutation of the M remaining episodes seeded by (split_seed, 1);
3. the actor's episodes: the same with ``policy_fraction`` and (split_seed, 2).

Because each subset is a prefix of a fixed permutation, smaller fractions are
nested in larger ones (the 10 % critic set is part of the 25 % one), so the
rows and columns of a data-scaling matrix differ only by added data. Episodes
keep the dataset's order inside each subset. One split serves every seed of a
run (the seeds share one table per component), so seeds differ by their
networks' randomness, not by their data; vary ``data.split_seed`` to vary the
data.

With the defaults (everything 1, no validation) the dataset is used as it is:
one table, shared by both components.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.data.returns import ReturnsToGo
from offrl.data.transitions import TransitionArrays, TransitionTable
from offrl.errors import DatasetError

#: The stream of each draw under ``data.split_seed``.
VALIDATION_STREAM, VALUE_STREAM, POLICY_STREAM = 0, 1, 2


@dataclass(frozen=True)
class EpisodeSplit:
    """Episode indices (sorted) of the validation split and of the critic's and the actor's subsets."""

    n_episodes: int
    validation: np.ndarray
    value: np.ndarray
    policy: np.ndarray


def split_episodes(n_episodes: int, value_fraction: float = 1.0, policy_fraction: float = 1.0,
                   validation_fraction: float = 0.0, seed: int = 0) -> EpisodeSplit:
    """The episode indices of each set (see the module docstring); deterministic in its arguments."""
    n_val = int(round(validation_fraction * n_episodes))
    if validation_fraction > 0:
        n_val = max(1, n_val)
    if n_val >= n_episodes:
        raise DatasetError(
            f"data.validation_fraction={validation_fraction} holds out {n_val} of the dataset's {n_episodes} "
            "episodes, leaving none to train on; lower it.")
    order = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(n_episodes)
    validation, train = np.sort(order[:n_val]), np.sort(order[n_val:])

    def subset(fraction: float, stream: int) -> np.ndarray:
        if fraction >= 1.0:
            return train
        keep = max(1, int(round(fraction * len(train))))
        return np.sort(train[np.random.default_rng([seed, stream]).permutation(len(train))[:keep]])

    return EpisodeSplit(n_episodes, validation, subset(value_fraction, VALUE_STREAM),
                        subset(policy_fraction, POLICY_STREAM))


def episode_bounds(arrays: TransitionArrays) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) transition index of every episode."""
    starts = np.asarray(arrays.episode_starts, np.int64)
    ends = np.append(starts[1:], len(arrays))
    return starts, ends


def take_episodes(arrays: TransitionArrays, episodes: np.ndarray) -> TransitionArrays:
    """The transitions of ``episodes`` (sorted indices), with their own episode starts and returns."""
    starts, ends = episode_bounds(arrays)
    episodes = np.asarray(episodes, np.int64)
    if len(episodes) == len(starts):
        return arrays
    rows = np.concatenate([np.arange(starts[e], ends[e]) for e in episodes]) if len(episodes) else np.zeros(0, np.int64)
    lengths = ends[episodes] - starts[episodes]
    new_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(episodes) else lengths
    return TransitionArrays(
        observations=arrays.observations[rows], actions=arrays.actions[rows], rewards=arrays.rewards[rows],
        next_observations=arrays.next_observations[rows], terminals=arrays.terminals[rows],
        timeouts=arrays.timeouts[rows], episode_starts=new_starts,
        episode_returns=np.asarray(arrays.episode_returns)[episodes],
    )


@dataclass
class DataSplit:
    """A dataset split for training: the critic's, the actor's and the held-out transitions."""

    episodes: EpisodeSplit
    value: TransitionArrays
    policy: TransitionArrays
    validation: TransitionArrays | None

    @property
    def decoupled(self) -> bool:
        """Whether the critic and the actor learn from different transitions."""
        return self.value is not self.policy

    def tables(self, device: Any, returns: ReturnsToGo | None = None) -> TransitionTable | dict[str, TransitionTable]:
        """One table for both components, or ``{"critic": …, "actor": …}`` when their data differ
        (``returns``: how their Monte-Carlo returns are computed, from each subset's own episodes)."""
        value = self.value.to_table(device, returns)
        if not self.decoupled:
            return value
        return {"critic": value, "actor": self.policy.to_table(device, returns)}

    def summary(self) -> dict[str, Any]:
        """What each component learned from (for summary.json and the bottleneck report)."""
        return {
            "value_transitions": len(self.value), "value_episodes": len(self.episodes.value),
            "policy_transitions": len(self.policy), "policy_episodes": len(self.episodes.policy),
            "validation_transitions": len(self.validation) if self.validation is not None else 0,
            "validation_episodes": len(self.episodes.validation),
            "dataset_episodes": self.episodes.n_episodes,
        }


def split_dataset(arrays: TransitionArrays, data: Any) -> DataSplit:
    """Split ``arrays`` as ``data`` (a :class:`offrl.config.DataConfig`) says."""
    n = len(arrays.episode_starts)
    ep = split_episodes(n, data.value_fraction, data.policy_fraction, data.validation_fraction, data.split_seed)
    value = take_episodes(arrays, ep.value)
    policy = value if np.array_equal(ep.policy, ep.value) else take_episodes(arrays, ep.policy)
    validation = take_episodes(arrays, ep.validation) if len(ep.validation) else None
    return DataSplit(ep, value, policy, validation)
