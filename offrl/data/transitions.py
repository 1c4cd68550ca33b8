"""A device-resident transition table and batch sampling without Python loops.

Everything the training step touches lives on the training device as float32,
and batches are drawn with a ``torch.Generator`` on that device, so the step
needs no host round-trip (a prerequisite for CUDA-graph capture).

Next actions (SARSA's backup, ReBRAC's critic penalty) are derived here from
the flat actions and the episode boundaries, not stored: a'_t = a_{t+1} of the
same episode. The last transition of an episode has no next action (the
dataset ends at s_T); its row holds zeros and ``has_next_action`` = 0, and
the critics that read next actions say how they treat it (docs/critics.md).

Monte-Carlo returns-to-go (Cal-QL's lower bound) are computed once from the
episodes when the table is built with the critic's discount
(:mod:`offrl.data.returns`); a table built without one holds −inf there
(unknown: no bound).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from offrl.component import Noise
from offrl.data.returns import UNKNOWN, ReturnsToGo


class Batch(NamedTuple):
    """A batch of transitions (all float32, leading dim B)."""

    observations: torch.Tensor  # [B, O]
    actions: torch.Tensor  # [B, A], in [-1, 1]
    rewards: torch.Tensor  # [B]
    next_observations: torch.Tensor  # [B, O]
    terminals: torch.Tensor  # [B], 1.0 only for true terminations (not truncations)
    next_actions: torch.Tensor | None = None  # [B, A], a_{t+1} of the same episode (zeros without one)
    has_next_action: torch.Tensor | None = None  # [B], 1.0 where next_actions holds a real a_{t+1}
    mc_returns: torch.Tensor | None = None  # [B], discounted return-to-go of the episode (−inf: unknown)


@dataclass
class TransitionArrays:
    """Flat numpy transition table as read from a dataset (before device transfer)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray  # truncations; kept for information, never used as terminal
    episode_starts: np.ndarray  # index of each episode's first transition
    episode_returns: np.ndarray  # undiscounted return of each episode

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    def next_actions(self) -> tuple[np.ndarray, np.ndarray]:
        """(next actions [N, A], has-next mask [N]) from ``actions`` and ``episode_starts``."""
        return next_actions_in_episodes(self.actions, self.episode_starts)

    def mc_returns(self, returns: "ReturnsToGo") -> np.ndarray:
        """Discounted returns-to-go [N] of every transition (:mod:`offrl.data.returns`)."""
        return returns.table(self.rewards, self.terminals, self.episode_starts)

    def to_table(self, device: torch.device | str, returns: "ReturnsToGo | None" = None) -> "TransitionTable":
        """The device table; with ``returns`` (the critic's discount) its ``mc_returns`` column is filled."""
        t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)  # noqa: E731
        next_actions, has_next = self.next_actions()
        mc = t(self.mc_returns(returns)) if returns is not None else None
        return TransitionTable(
            t(self.observations), t(self.actions), t(self.rewards), t(self.next_observations), t(self.terminals),
            t(next_actions), t(has_next), mc,
        )


def next_actions_in_episodes(actions: np.ndarray, episode_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a'_t = a_{t+1} where t + 1 is in the same episode; zeros and mask 0 at each episode's last step.

    Episodes are contiguous and start at the sorted indices ``episode_starts``
    (the layout :func:`offrl.data.dataset.flatten_episodes` produces).
    """
    n = len(actions)
    has_next = np.ones(n, dtype=bool)
    starts = np.asarray(episode_starts, dtype=np.int64)
    has_next[starts[starts > 0] - 1] = False  # the step before the next episode's start
    if n:
        has_next[n - 1] = False  # the last step of the last episode
    following = np.zeros_like(actions)
    following[:-1] = actions[1:]
    following[~has_next] = 0.0
    return following, has_next.astype(np.float32)


#: The fields of a transition, in :class:`Batch` order.
FIELDS = Batch._fields


class TransitionTable:
    """The dataset on the device, packed: one float32 matrix [N, F] whose columns hold every field.

    Why packed: a batch is one ``index_select`` of whole rows (then free column views), not one gather
    per field — seven kernels become one, which matters when a CUDA-graph iteration is a few hundred
    small kernels. The fields are views of the packed matrix (``table.observations`` …).
    """

    def __init__(self, observations: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                 next_observations: torch.Tensor, terminals: torch.Tensor, next_actions: torch.Tensor | None = None,
                 has_next_action: torch.Tensor | None = None, mc_returns: torch.Tensor | None = None) -> None:
        if next_actions is None:  # a table built without episode boundaries knows no next action
            next_actions, has_next_action = torch.zeros_like(actions), torch.zeros_like(rewards)
        elif has_next_action is None:
            raise ValueError("next_actions needs has_next_action (1.0 where a next action exists)")
        if mc_returns is None:  # no discount given: returns unknown, no lower bound
            mc_returns = torch.full_like(rewards, UNKNOWN)
        parts = (observations, actions, rewards, next_observations, terminals, next_actions, has_next_action,
                 mc_returns)
        n = int(rewards.shape[0])
        columns = [t.reshape(n, -1).to(torch.float32) for t in parts]
        self.widths = tuple(c.shape[1] for c in columns)
        self.shapes = tuple(tuple(t.shape[1:]) for t in parts)  # per-row shape of each field
        self.data = torch.cat(columns, dim=1).contiguous()  # [N, F]
        offsets = [0]
        for w in self.widths:
            offsets.append(offsets[-1] + w)
        self.offsets = tuple(offsets)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def device(self) -> torch.device:
        return self.data.device

    def _split(self, rows: torch.Tensor, lead: tuple[int, ...]) -> Batch:
        return Batch(*(rows[..., a:b].reshape(*lead, *shape)
                       for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)))

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in FIELDS:  # a field: a column view of the packed matrix
            i = FIELDS.index(name)
            return self.data[:, self.offsets[i]:self.offsets[i + 1]].reshape(len(self), *self.shapes[i])
        raise AttributeError(name)

    def index_noise(self, batch_size: int) -> Noise:
        """The random tensor a batch's indices are made from (the learner draws it with the seed's
        generator): here the indices themselves, uniform over the table. A table whose size changes
        during training (a replay buffer) draws uniforms instead and maps them in :meth:`indices`."""
        return Noise.randint(len(self), batch_size)

    def indices(self, draw: torch.Tensor) -> torch.Tensor:
        """Row indices from the draw of :meth:`index_noise` (any leading shape)."""
        return draw

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(0, len(self), (batch_size,), device=self.device, generator=generator)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> Batch:
        """The transitions at ``idx`` (any shape, e.g. [E, B] for E seeds): fields [*idx.shape, ...]."""
        rows = self.data.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.data.shape[1])
        return self._split(rows, tuple(idx.shape))
