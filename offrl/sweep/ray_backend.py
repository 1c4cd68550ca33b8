"""The Ray backend: each cell is one Ray task with its CPU/GPU request.

``--ray-address`` joins an existing cluster (the sweep directory must then be
on a filesystem every node sees: cells write their run directories, logs and
locks there). Without it a private local instance is started
(``address="local"``, so the sweep never attaches to someone else's Ray on a
shared machine) with ``workers × cpus_per_cell`` CPUs and is shut down at the
end. Ray is imported only here, and only when this backend is chosen.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from offrl.cli.terminal import plural
from offrl.errors import MissingExtraError, OfflineRLError
from offrl.sweep.backend import Listener, cpu_count
from offrl.sweep.execute import CellJob, CellResult, execute_job
from offrl.sweep.spec import BackendOptions


def import_ray() -> Any:
    """``import ray``, or a clear error naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            "The Ray backend needs Ray, which is not installed. Install the extra: "
            "pip install 'offrl[ray]'  (or use --backend local)."
        ) from None
    return ray


class RayBackend:
    """Run cells as Ray tasks (``num_cpus`` = threads per cell, ``num_gpus`` = GPU share)."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.threads_per_cell = options.cpus_per_cell or 1
        self.workers = options.workers or max(1, cpu_count() // self.threads_per_cell)

    def describe(self) -> str:
        where = f"cluster at {self.options.ray_address}" if self.options.ray_address else (
            f"local instance with {plural(self.workers * self.threads_per_cell, 'CPU')}"
        )
        gpus = f", {self.options.gpus_per_cell:g} GPU" if self.options.gpus_per_cell else ""
        return f"ray: {where}; each cell {plural(self.threads_per_cell, 'CPU')}{gpus}"

    def run(self, jobs: Sequence[CellJob], listener: Listener) -> list[CellResult]:
        ray = import_ray()
        started_here = self._init(ray)
        try:
            return self._run(ray, jobs, listener)
        finally:
            if started_here:
                ray.shutdown()

    def _init(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        # Workers must import the same offrl as this driver, installed or not.
        offrl_root = str(Path(__file__).resolve().parents[2])
        pythonpath = os.pathsep.join(p for p in (offrl_root, os.environ.get("PYTHONPATH", "")) if p)
        kwargs: dict[str, Any] = dict(
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        )
        try:
            if self.options.ray_address:
                ray.init(address=self.options.ray_address, **kwargs)
            else:
                ray.init(address="local", num_cpus=self.workers * self.threads_per_cell, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            target = self.options.ray_address or "a local instance"
            raise OfflineRLError(f"Could not start or join Ray ({target}): {e}") from None
        return True

    def _run(self, ray: Any, jobs: Sequence[CellJob], listener: Listener) -> list[CellResult]:
        task = ray.remote(execute_job).options(
            num_cpus=self.threads_per_cell, num_gpus=self.options.gpus_per_cell, max_retries=0
        )
        pending: dict[Any, CellJob] = {}
        for job in jobs:
            pending[task.remote(job)] = job
            for k in _keys(job):
                listener.cell_queued(k)
        results: dict[str, CellResult] = {}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    job = pending.pop(ref)
                    for result in self._get(ray, ref, job):
                        results[result.key] = result
                        listener.cell_done(result)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # raises KeyboardInterrupt in the task: it SIGINTs its runner
            for ref, job in pending.items():
                for result in self._get(ray, ref, job, cancelled=True):
                    results[result.key] = result
                    listener.cell_done(result)
        return [results[k] for job in jobs for k in _keys(job)]

    @staticmethod
    def _get(ray: Any, ref: Any, job: CellJob, cancelled: bool = False) -> list[CellResult]:
        try:
            return ray.get(ref)
        except Exception as e:  # a task that crashed or was cancelled
            if cancelled:
                return [CellResult(k, "interrupted", message="sweep stopped") for k in _keys(job)]
            return [CellResult(k, "failed", message=f"Ray task error: {type(e).__name__}: {e}") for k in _keys(job)]


def _keys(job: CellJob) -> list[str]:
    return [m.key for m in job.members] or [job.key]
