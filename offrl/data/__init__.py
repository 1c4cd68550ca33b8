"""Data layer: Minari datasets -> device-resident transition tables.

:func:`from_arrays` writes your own arrays (D4RL or OGBench layout) as a local dataset
(:mod:`offrl.datagen.importer`; imported on call, so loading never pulls in the writers).
"""
from __future__ import annotations

from typing import Any


def from_arrays(dataset_id: str, observations: Any, actions: Any, rewards: Any, terminals: Any,
                timeouts: Any = None, next_observations: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Write arrays as the local dataset ``dataset_id``; see :func:`offrl.datagen.importer.from_arrays`."""
    from offrl.datagen.importer import from_arrays as _from_arrays

    return _from_arrays(dataset_id, observations, actions, rewards, terminals, timeouts, next_observations, **kwargs)


__all__ = ["from_arrays"]
