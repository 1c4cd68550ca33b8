"""The local backend: a pool of ``--workers K`` threads, each driving one ``offrl run`` subprocess.

Threads are enough because the work happens in the subprocesses; each worker
gets ``max(1, cores // K)`` CPU threads so K workers never oversubscribe the
machine (oversubscribed OpenMP on shared cores slows PyTorch down by 5–20×,
docs/benchmarks.md). The runners stay in the sweep's process group, so Ctrl-C
or killing the group stops everything; each runs under a guard
(:mod:`offrl.sweep.guard`) that stops it when the sweep process dies alone.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Sequence

from offrl.cli.terminal import plural
from offrl.sweep.backend import Listener, cpu_count
from offrl.sweep.execute import CellJob, CellResult, execute_job, stop_guard
from offrl.sweep.spec import BackendOptions

#: After Ctrl-C, seconds to let runners that got the terminal's SIGINT exit on their own
#: before the sweep forwards one (a second SIGINT could cut a checkpoint save short).
SELF_STOP_WAIT_S = 5.0


class LocalBackend:
    """Run cells as subprocesses on this machine, ``workers`` at a time."""

    def __init__(self, options: BackendOptions) -> None:
        cores = cpu_count()
        if options.workers is not None:
            self.workers = options.workers
        else:
            self.workers = max(1, cores // (options.cpus_per_cell or 1))
        self.threads_per_cell = options.cpus_per_cell or max(1, cores // self.workers)
        self.cores = cores

    def describe(self) -> str:
        return (f"local: {plural(self.workers, 'worker')} × {plural(self.threads_per_cell, 'thread')} "
                f"on {plural(self.cores, 'core')}")

    def run(self, jobs: Sequence[CellJob], listener: Listener) -> list[CellResult]:
        stop = threading.Event()
        procs: dict[str, subprocess.Popen] = {}
        guard = threading.Lock()

        def on_start(key: str, proc: subprocess.Popen) -> None:
            with guard:
                procs[key] = proc
            # A runner started just as the sweep was stopped may have missed _stop_runners' last look:
            # registering first, then checking, means either that look or this check sees it.
            if stop.is_set():
                proc.send_signal(signal.SIGTERM)  # to the guard: "stop your runner"
            listener.cell_started(key)

        def work(job: CellJob) -> list[CellResult]:
            keys = [m.key for m in job.members] or [job.key]
            try:
                results = execute_job(job, on_start, stop)
            except Exception as e:  # a bug or an OS error in the worker itself: record, go on
                results = [CellResult(k, "failed", message=f"worker error: {e!r}") for k in keys]
            with guard:
                for k in keys:
                    procs.pop(k, None)
            for result in results:
                listener.cell_done(result)
            return results

        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="offrl-sweep")
        futures: list[Future[list[CellResult]]] = []
        for job in jobs:
            for k in [m.key for m in job.members] or [job.key]:
                listener.cell_queued(k)
            futures.append(pool.submit(work, job))
        try:
            while wait(futures, timeout=0.5).not_done:
                pass
        except KeyboardInterrupt:
            stop.set()
            for f in futures:
                f.cancel()
            _stop_runners(procs, guard)
            wait(futures)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        results: list[CellResult] = []
        for job, f in zip(jobs, futures):
            if f.cancelled():
                for k in [m.key for m in job.members] or [job.key]:
                    result = CellResult(k, "interrupted", message="sweep stopped before the cell started")
                    listener.cell_done(result)
                    results.append(result)
            else:
                results.extend(f.result())
        return results


def _stop_runners(procs: dict[str, subprocess.Popen], guard: threading.Lock) -> None:
    """Give runners a moment to stop on the terminal's SIGINT, then ask the guards of the rest to stop them.

    ``procs`` are the runners' guards: SIGTERM makes a guard SIGINT its runner once (unless the runner
    already got the terminal's), then kill it if it does not exit within the grace period.
    """
    deadline = time.monotonic() + SELF_STOP_WAIT_S
    while time.monotonic() < deadline:
        with guard:
            alive = [p for p in procs.values() if p.poll() is None]
        if not alive:
            return
        time.sleep(0.1)
    with guard:
        alive = [p for p in procs.values() if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    for p in alive:
        stop_guard(p)
