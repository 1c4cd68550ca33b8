"""The registry of datasets offrl can generate itself (namespace ``offrl/``).

A built-in dataset is a recipe plus what a user must know before running it:
``make(dataset_id, seed=..., replace=..., **budget)`` writes it with
:func:`offrl.datagen.writer.write_minari_dataset`, and ``cost`` says how long
that took at the default budget on the development machine. The cost decides
whether loading may make a missing dataset on the fly (``made_on_first_use``:
only datasets that take seconds) or must stop with the ``offrl data make``
command instead.

This module only defines the mechanism; :mod:`offrl.datagen.builtins` registers
every built-in dataset in one place. Recipes never import either, so there is
no import cycle between recipes, the writer and the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from offrl.registry import Registry


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset recipe and its measured cost."""

    id: str
    description: str
    make: Callable[..., Any]  # make(dataset_id, seed=0, replace=False, **budget) -> Path
    cost: str  # measured wall time of `offrl data make ID` at the default budget (2-core CPU)
    default_budget: dict[str, Any] = field(default_factory=dict)
    quick_budget: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # importable modules the recipe needs (named in errors)
    extra: str = ""  # the pip extra that provides ``requires``
    made_on_first_use: bool = False  # only for recipes that take seconds

    def make_command(self) -> str:
        return f"offrl data make {self.id}"


BUILTIN_DATASETS: Registry[BuiltinDataset] = Registry("built-in dataset")


def register_builtin(spec: BuiltinDataset) -> BuiltinDataset:
    """Register (or replace) a built-in dataset recipe."""
    BUILTIN_DATASETS.add(spec.id, spec, spec.description)
    return spec
