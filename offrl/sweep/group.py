"""Several seeds of one cell configuration trained in one process (``offrl sweep --seeds-per-process E``).

The cells stay ordinary cells — one run directory, lock, log and result each —
but their seeds train together on the learner's seed axis. A group job:

1. takes every member's cell lock; a busy member is reported ``busy`` and left out,
   an ended one is skipped (finished) or reported (diverged);
2. runs the members that have a checkpoint with ``offrl run --resume DIR1 DIR2 …``
   and the others afresh with ``offrl run --seeds S1,S2,… --out TEMPLATE``, where
   the template names each seed's cell directory (at most two processes, one
   after the other);
3. writes the process's output to the first member's log (the others' logs
   point to it) and judges each member by its own run directory.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from offrl.rundir import CHECKPOINT, ERROR, PREV_CHECKPOINT, run_dir_busy, run_state, try_lock
from offrl.sweep.execute import (
    INTERRUPT_GRACE_S, PYTHON, CellJob, CellResult, _failed, diverged_message, stop_guard,
)


def execute_group(
    job: CellJob,
    on_start: Callable[[str, subprocess.Popen], None] | None = None,
    stop: threading.Event | None = None,
) -> list[CellResult]:
    results: dict[str, CellResult] = {}
    locks: dict[str, int] = {}
    try:
        runnable: list[tuple[CellJob, int]] = []
        for member, seed in zip(job.members, job.seeds):
            Path(member.lock_file).parent.mkdir(parents=True, exist_ok=True)
            fd = try_lock(Path(member.lock_file))
            run_dir = Path(member.run_dir)
            if fd is None or run_dir_busy(run_dir):
                results[member.key] = CellResult(member.key, "busy", message="in use by another process")
                if fd is not None:
                    os.close(fd)
                continue
            locks[member.key] = fd
            state = run_state(run_dir)
            if state == "finished":
                results[member.key] = CellResult(member.key, "skipped", message="already finished")
            elif state == "diverged":
                results[member.key] = CellResult(member.key, "diverged", message=diverged_message(run_dir))
            elif stop is not None and stop.is_set():
                results[member.key] = CellResult(member.key, "interrupted", message="sweep stopped before the cell started")
            else:
                runnable.append((member, seed))
        resumable = [(m, s) for m, s in runnable if _has_checkpoint(Path(m.run_dir))]
        fresh = [(m, s) for m, s in runnable if not _has_checkpoint(Path(m.run_dir))]
        for part, resumed in ((resumable, True), (fresh, False)):
            if part and not (stop is not None and stop.is_set()):
                results.update(_run_part(job, part, resumed, [locks[m.key] for m, _ in part], on_start, stop))
            for m, _ in part:
                results.setdefault(m.key, CellResult(m.key, "interrupted", message="sweep stopped"))
    finally:
        for fd in locks.values():
            os.close(fd)  # the guard and the runner keep their copies until they exit
    return [results[m.key] for m in job.members]


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).exists() or (run_dir / PREV_CHECKPOINT).exists()


def _run_part(job: CellJob, part: list[tuple[CellJob, int]], resumed: bool, lock_fds: list[int],
              on_start: Callable[[str, subprocess.Popen], None] | None,
              stop: threading.Event | None) -> dict[str, CellResult]:
    members = [m for m, _ in part]
    for m in members:
        run_dir = Path(m.run_dir)
        (run_dir / ERROR).unlink(missing_ok=True)
        if not resumed and run_dir.exists():  # an attempt died before its first checkpoint: nothing to resume
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    if resumed:
        argv = [*job.resume_argv[: job.resume_argv.index("--resume") + 1], *(m.run_dir for m in members), "--quiet"]
    else:
        argv = [*job.group_argv, "--seeds", ",".join(str(s) for _, s in part), "--out", job.out_template]
    argv = [sys.executable if a == PYTHON else a for a in argv]
    guarded = [sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()),
               *(x for fd in lock_fds for x in ("--lock-fd", str(fd))), "--grace", str(INTERRUPT_GRACE_S),
               *job.guard_args, "--", *argv]
    env = dict(os.environ)
    env.update(dict(job.env))
    lead = members[0]
    log_path = Path(lead.log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    keys = ", ".join(m.key for m in members)
    for m in members[1:]:
        with Path(m.log_file).open("a") as f:
            f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} trained together with {keys}: output in {log_path}\n")
    started = time.time()
    with log_path.open("ab") as log:
        log_start = log.tell()
        header = (f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resumed else 'start'} "
                  f"({len(members)} seeds: {keys}): {shlex.join(argv)}\n")
        log.write(header.encode())
        log.flush()
        try:
            proc = subprocess.Popen(guarded, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    pass_fds=tuple(lock_fds))
        except OSError as e:
            return {m.key: _failed(m, Path(m.run_dir), None, started, resumed, f"could not start the runner: {e}",
                                   argv, log_start) for m in members}
        for m in members:
            if on_start is not None:
                on_start(m.key, proc)
        try:
            returncode = proc.wait()
        except KeyboardInterrupt:
            returncode = stop_guard(proc)
            return {m.key: CellResult(m.key, "interrupted", returncode, started, time.time(), resumed, "interrupted")
                    for m in members}
    ended = time.time()
    out: dict[str, CellResult] = {}
    for m in members:
        run_dir = Path(m.run_dir)
        state = run_state(run_dir)
        if state == "diverged":
            out[m.key] = CellResult(m.key, "diverged", returncode, started, ended, resumed, diverged_message(run_dir))
        elif state == "finished":
            out[m.key] = CellResult(m.key, "finished", 0, started, ended, resumed)
        elif returncode in (130, -signal.SIGINT) or (stop is not None and stop.is_set()):
            out[m.key] = CellResult(m.key, "interrupted", returncode, started, ended, resumed,
                                    "interrupted; rerun to resume")
        else:
            reason = (f"the runner exited with code {returncode}" if returncode
                      else "the runner exited 0 but wrote no finished summary.json")
            out[m.key] = _failed(m if m is lead else _with_log(m, lead), run_dir, returncode, started, resumed,
                                 reason, argv, log_start)
    return out


def _with_log(member: CellJob, lead: CellJob) -> CellJob:
    """``member`` reading its error from the lead's log (where the group's output went)."""
    from dataclasses import replace

    return replace(member, log_file=lead.log_file)
