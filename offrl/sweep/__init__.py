"""Sweeps: run a grid of offrl runs (critics × actors × datasets × seeds × hyperparameters).

Every cell is an ordinary ``offrl run`` in ``SWEEP_DIR/runs/<key>``; the sweep
only decides which cells still need work and where they run (``local`` process
pool, ``ray`` or ``slurm``). See docs/benchmarks.md.

Names are exported lazily so that ``offrl.sweep.spec`` (imported by every
``offrl`` command to build its parser) stays cheap to import.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Cell": "offrl.sweep.cells",
    "expand_cells": "offrl.sweep.cells",
    "DEFAULT_RUNNER": "offrl.sweep.driver",
    "SweepOutcome": "offrl.sweep.driver",
    "build_job": "offrl.sweep.driver",
    "run_sweep": "offrl.sweep.driver",
    "validate_spec": "offrl.sweep.driver",
    "CellJob": "offrl.sweep.execute",
    "CellResult": "offrl.sweep.execute",
    "execute_cell": "offrl.sweep.execute",
    "SweepLayout": "offrl.sweep.layout",
    "BackendOptions": "offrl.sweep.spec",
    "RunOptions": "offrl.sweep.spec",
    "SweepSpec": "offrl.sweep.spec",
    "load_spec": "offrl.sweep.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'offrl.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
