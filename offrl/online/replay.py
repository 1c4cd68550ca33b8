"""The online phase's replay: the offline dataset and every seed's collected transitions, on the device.

One packed float32 matrix as :class:`~offrl.data.transitions.TransitionTable` (same columns, same ``gather``),
preallocated once: the offline rows first (shared by every seed), then one block of ``capacity − N`` rows per
seed for what its own environment produced. Nothing is reallocated while collecting, and the number of collected
rows lives in a device tensor, so the learner's iteration (eager, compiled or captured) never sees a shape change.

Indices come from uniform draws (:meth:`ReplayTable.index_noise`) made with each seed's generator and mapped in
:meth:`ReplayTable.indices`:

- ``offline_fraction = 1``: uniform over the union of the offline rows and the seed's collected rows (FQL);
- ``0 < f < 1``: the first ``round(f · B)`` rows of every batch from the offline data, the rest from the
  collected data (RLPD's symmetric sampling at ``f = 0.5``);
- ``f = 0``: collected data only.

When a seed's block is full the oldest collected rows are overwritten (a ring); the offline rows never are.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from offrl.component import Noise
from offrl.data.returns import UNKNOWN
from offrl.data.transitions import FIELDS, TransitionTable
from offrl.errors import ConfigError


class ReplayTable(TransitionTable):
    """Offline rows + one ring of collected rows per seed (see the module docstring)."""

    def __init__(self, offline: TransitionTable, members: int, capacity: int, offline_fraction: float) -> None:
        n_off = len(offline)
        if capacity <= n_off:
            raise ConfigError(
                f"online.capacity={capacity} must hold the dataset ({n_off:,} transitions) and at least one "
                f"collected transition: set it above {n_off:,} (0 = dataset size + online.steps).")
        if not 0.0 <= offline_fraction <= 1.0:
            raise ConfigError(f"online.offline_fraction must be in [0, 1], got {offline_fraction!r}.")
        self.widths, self.shapes, self.offsets = offline.widths, offline.shapes, offline.offsets
        self.n_offline = n_off
        self.members = members
        self.per_member = capacity - n_off
        self.offline_fraction = float(offline_fraction)
        device = offline.data.device
        self.data = torch.zeros(n_off + members * self.per_member, offline.data.shape[1], device=device)
        self.data[:n_off] = offline.data
        self.bases = (n_off + torch.arange(members, device=device) * self.per_member).unsqueeze(1)  # [E, 1]
        self.n_online = torch.zeros((), device=device)  # collected rows per seed (the same for every seed)
        self.collected = 0  # transitions appended per seed (host count; > per_member once the ring wraps)

    # --- sampling --------------------------------------------------------------------------------
    def index_noise(self, batch_size: int) -> Noise:
        return Noise.uniform(batch_size)

    def indices(self, draw: torch.Tensor) -> torch.Tensor:
        """Row indices [E, B] from uniforms [E, B] (seed e's collected rows in its own block)."""
        u = draw
        n_on = self.n_online
        f = self.offline_fraction
        if f >= 1.0:  # the union, uniformly
            total = n_on + self.n_offline
            pos = torch.minimum(torch.floor(u * total), total - 1).long()
            return torch.where(pos < self.n_offline, pos, pos - self.n_offline + self.bases)
        online = self.bases + torch.minimum(torch.floor(u * n_on), (n_on - 1).clamp(min=0)).long()
        k = int(round(f * u.shape[-1]))
        if k == 0:
            return online
        offline = torch.clamp(torch.floor(u[..., :k] * self.n_offline).long(), max=self.n_offline - 1)
        return torch.cat([offline, online[..., k:]], dim=-1)

    # --- collecting -------------------------------------------------------------------------------
    def pack(self, **fields: np.ndarray) -> torch.Tensor:
        """Rows [E, F] from per-seed fields (``observations`` [E, O] …, in :class:`Batch` names;
        ``mc_returns`` may be left out: unknown until the episode ends, see :meth:`set_mc_returns`)."""
        E = next(iter(fields.values())).shape[0]
        fields = {"mc_returns": np.full(E, UNKNOWN), **fields}
        cols = [np.asarray(fields[name], np.float32).reshape(E, -1) for name in FIELDS]
        return torch.as_tensor(np.concatenate(cols, axis=1), device=self.data.device)

    def append(self, rows: torch.Tensor) -> torch.Tensor:
        """Write one row per seed ([E, F]); returns the rows' indices [E]."""
        slot = self.collected % self.per_member
        where = self.bases[:, 0] + slot
        self.data[where] = rows.to(self.data.dtype)
        self.collected += 1
        self.n_online.fill_(float(min(self.collected, self.per_member)))
        return where

    def link_next_action(self, rows: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> None:
        """Give rows ``rows`` [E] (where ``mask``) the next action a_{t+1} of their episode (SARSA's backup)."""
        i = FIELDS.index("next_actions")
        a, b = self.offsets[i], self.offsets[i + 1]
        h = self.offsets[FIELDS.index("has_next_action")]
        keep = mask.to(self.data.device)
        if not bool(keep.any()):
            return
        r = rows.to(self.data.device)[keep]
        self.data[r, a:b] = actions.to(self.data.device)[keep].reshape(len(r), -1)
        self.data[r, h] = 1.0

    # --- checkpoints ------------------------------------------------------------------------------
    def member_state(self, e: int) -> dict[str, Any]:
        """Seed ``e``'s collected rows, as stored (ring order), and the append count: what resume restores."""
        used = min(self.collected, self.per_member)
        start = int(self.bases[e, 0])
        return {"collected": self.collected, "rows": self.data[start:start + used].detach().cpu().clone()}

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Restore every seed's rows from :meth:`member_state` dicts (one per seed, same order)."""
        collected = {int(s["collected"]) for s in states}
        if len(collected) != 1:
            raise ValueError(f"the seeds' replays hold different numbers of collected rows: {sorted(collected)}")
        self.collected = collected.pop()
        used = min(self.collected, self.per_member)
        for e, s in enumerate(states):
            rows = s["rows"]
            if tuple(rows.shape) != (used, self.data.shape[1]):
                raise ValueError(f"seed {e}'s saved replay rows have shape {tuple(rows.shape)}, expected "
                                 f"{(used, self.data.shape[1])} (online.capacity or the dataset changed?)")
            start = int(self.bases[e, 0])
            self.data[start:start + used] = rows.to(self.data.device, self.data.dtype)
        self.n_online.fill_(float(used))

    def set_mc_returns(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """Give rows ``rows`` their Monte-Carlo returns (written when their episode ends; Cal-QL's bound)."""
        if len(rows) == 0:
            return
        col = self.offsets[FIELDS.index("mc_returns")]
        self.data[rows.to(self.data.device).long(), col] = values.to(self.data.device, self.data.dtype)

    def online_rows(self, e: int) -> torch.Tensor:
        """Seed ``e``'s collected rows (oldest first only until the ring wraps)."""
        start = int(self.bases[e, 0])
        return self.data[start:start + int(self.n_online)]
