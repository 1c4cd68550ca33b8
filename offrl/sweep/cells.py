"""A sweep cell: one ordinary ``offrl run`` with a deterministic, readable directory name.

The name is built from the cell's own values only (never from its position in
the grid), so adding seeds or grid values to a sweep never renames existing
cells, and a person can find ``expectile__gaussian-awr__offrl-bandit-multimodal-v0__seed0``
without a lookup table. Grid overrides are too long and too free-form for a
directory name, so they are summarised by a short hash (the full values are in
``sweep.json``).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from offrl.errors import ConfigError
from offrl.sweep.spec import SweepSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a critic, an actor, a dataset, a seed and grid overrides."""

    critic: str
    actor: str
    dataset: str
    seed: int
    overrides: tuple[tuple[str, str], ...] = ()  # (config key, value) in grid order

    @property
    def pairing(self) -> str:
        return f"{self.critic}+{self.actor}"

    @property
    def variant(self) -> str:
        """The grid overrides as ``key=value`` text ('' when there are none)."""
        return ",".join(f"{k}={v}" for k, v in self.overrides)

    @property
    def key(self) -> str:
        """The directory name of the cell under ``SWEEP_DIR/runs/``."""
        parts = [slug(self.critic), slug(self.actor), slug(self.dataset), f"seed{self.seed}"]
        if self.overrides:
            parts.append(overrides_hash(self.overrides))
        return "__".join(parts)

    def set_args(self) -> list[str]:
        """``--set key=value`` flags for the grid overrides."""
        out: list[str] = []
        for k, v in self.overrides:
            out += ["--set", f"{k}={v}"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "critic": self.critic,
            "actor": self.actor,
            "dataset": self.dataset,
            "seed": self.seed,
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Cell":
        return cls(
            critic=data["critic"],
            actor=data["actor"],
            dataset=data["dataset"],
            seed=int(data["seed"]),
            overrides=tuple((k, str(v)) for k, v in data.get("overrides", {}).items()),
        )


def slug(text: str) -> str:
    """A filesystem-safe version of a name: ``offrl/bandit/multimodal-v0`` -> ``offrl-bandit-multimodal-v0``."""
    return _UNSAFE.sub("-", text).strip("-") or "x"


def overrides_hash(overrides: tuple[tuple[str, str], ...]) -> str:
    """8 hex digits identifying a set of overrides (independent of their order)."""
    text = json.dumps(sorted(overrides), separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, seeds outermost.

    Seeds vary slowest so that a sweep stopped half-way has every pairing and
    dataset covered by its first seeds, rather than all seeds of a few pairings.
    """
    grid_keys = [k for k, _ in spec.grid]
    grid_values = [v for _, v in spec.grid]
    cells = [
        Cell(critic, actor, dataset, seed, tuple(zip(grid_keys, combo)))
        for seed in spec.seeds
        for dataset in spec.datasets
        for critic in spec.critics
        for actor in spec.actors
        for combo in itertools.product(*grid_values)
    ]
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.key in seen:
            raise ConfigError(
                f"Two cells map to the same directory '{cell.key}' ({seen[cell.key]} and {cell}); "
                "rename one of the names so they differ in letters or digits, not only in punctuation."
            )
        seen[cell.key] = cell
    return cells
