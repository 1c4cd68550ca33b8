"""What a backend is: something that runs a list of cell jobs and reports as they end.

Backends differ only in *where* :func:`offrl.sweep.execute.execute_cell` runs
(a thread of a local pool driving a subprocess, a Ray task, or a SLURM job); locking,
skipping, resuming and failure recording are the same code everywhere.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

from offrl.sweep.execute import CellJob, CellResult
from offrl.sweep.spec import BackendOptions


class Listener(Protocol):
    """Receives progress from a backend (possibly from worker threads)."""

    def cell_queued(self, key: str) -> None: ...

    def cell_started(self, key: str) -> None: ...

    def cell_done(self, result: CellResult) -> None: ...


class Backend(Protocol):
    """Runs jobs; returns one result per job. On Ctrl-C it stops cleanly and marks the rest 'interrupted'."""

    #: CPU threads each cell may use (passed as ``trainer.threads`` and OMP_NUM_THREADS).
    threads_per_cell: int

    def describe(self) -> str: ...

    def run(self, jobs: Sequence[CellJob], listener: Listener) -> list[CellResult]: ...


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_backend(options: BackendOptions, sweep_dir: Path) -> Backend:
    """The backend named in ``options`` (Ray and submitit are imported only when asked for).

    ``sweep_dir`` is where a backend keeps files of its own (the SLURM backend's job folder).
    """
    if options.name == "ray":
        from offrl.sweep.ray_backend import RayBackend

        return RayBackend(options)
    if options.name == "slurm":
        from offrl.sweep.slurm_backend import SlurmBackend

        return SlurmBackend(options, sweep_dir)
    from offrl.sweep.local import LocalBackend

    return LocalBackend(options)
