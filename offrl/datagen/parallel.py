"""Run independent generation tasks in worker processes, or in this process when workers cannot start.

Tasks are independent by construction (each episode has its own seeds), so the
result does not depend on the number of workers or on which worker runs what;
results are handed back in completion order and the caller stores them by index.

Workers are *spawned* (fresh interpreters): forking a process that holds
MuJoCo/OpenGL state or threads is fragile, and spawn behaves the same on every
platform. Some machines refuse to create processes (process limits, sandboxes:
``fork``/``posix_spawn`` fail with EAGAIN). Starting the pool, or losing a
worker, then never hangs: the remaining tasks run in this process, after one
notice saying why.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence, TypeVar

R = TypeVar("R")


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_tasks(
    task: Callable[[int], R],
    indices: Sequence[int],
    workers: int,
    on_result: Callable[[int, R], None],
    notice: Callable[[str], None] = _notice,
) -> str:
    """Call ``task(i)`` for every index (``task`` must pickle: a module-level function or a
    ``functools.partial`` of one) and ``on_result(i, result)`` here as each finishes.

    Returns how the tasks ran: ``"N worker processes"`` or ``"in this process"``.
    Exceptions raised by a task propagate (remaining tasks are cancelled).
    """
    remaining = list(indices)
    how = "in this process"
    if workers > 1 and len(remaining) > 1:
        n = min(workers, len(remaining))
        remaining, failure = _run_pool(task, remaining, n, on_result)
        if failure is None:
            return f"{n} worker processes"
        notice(f"Worker processes are unavailable ({failure}); making the remaining {len(remaining)} "
               "in this process instead.")
        how = f"{n} worker processes, then in this process"
    for i in remaining:
        on_result(i, task(i))
    return how


def _run_pool(
    task: Callable[[int], R], indices: list[int], workers: int, on_result: Callable[[int, R], None]
) -> tuple[list[int], str | None]:
    """Run on a spawn pool; return (indices not finished, None) or (those, why the pool failed)."""
    done: set[int] = set()
    try:
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    except (OSError, ValueError, RuntimeError) as e:
        return indices, f"{type(e).__name__}: {e}"
    failure: str | None = None
    pending: dict[Future, int] = {}
    queue = list(indices)
    try:
        # at most 2 tasks per worker in flight, so an interrupted run has little work in progress
        while (queue or pending) and failure is None:
            while queue and len(pending) < 2 * workers:
                try:
                    fut = executor.submit(task, queue[0])
                except (OSError, BrokenProcessPool, RuntimeError) as e:  # a process could not be started
                    failure = _why(e)
                    break
                pending[fut] = queue.pop(0)
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    result = fut.result()  # a task's own exception propagates from here
                except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                    failure = _why(e)
                    continue
                on_result(i, result)
                done.add(i)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [i for i in indices if i not in done], failure


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
