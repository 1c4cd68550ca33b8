"""Registry of datasets offrl can generate itself (namespace ``offrl/``).

A built-in dataset is a recipe: ``make(dataset_id, seed=..., **budget)`` writes
it with :func:`offrl.data.writer.write_minari_dataset`. ``offrl run`` makes a
missing built-in dataset automatically (with the default budget, under a lock);
``offrl data make`` makes it explicitly with a chosen seed and budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from offrl.registry import Registry


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset recipe. ``make(dataset_id, seed=0, **budget)`` writes it into the local store."""

    id: str
    description: str
    make: Callable[..., Any]
    default_budget: dict[str, Any] = field(default_factory=dict)
    quick_budget: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # importable modules the recipe needs (named in errors)
    extra: str = ""  # the pip extra that provides ``requires``


BUILTIN_DATASETS: Registry[BuiltinDataset] = Registry("built-in dataset")


def register_builtin(spec: BuiltinDataset) -> BuiltinDataset:
    BUILTIN_DATASETS.add(spec.id, spec, spec.description)
    return spec


def _load_builtin_recipes() -> None:
    """Import the modules that register built-in datasets."""
    from offrl.data.recipes import bandit  # noqa: F401
    from offrl.data.recipes import pointmaze  # noqa: F401  (gymnasium-robotics imported lazily)
    from offrl.data.recipes import locomotion  # noqa: F401  (stable-baselines3 imported lazily)


_load_builtin_recipes()
