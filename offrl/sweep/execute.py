"""Running one cell: the worker side, shared by every backend.

:func:`execute_cell` is a plain function of a picklable :class:`CellJob`, so a
thread of the local pool and a Ray task run exactly the same code. It

1. takes the cell's lock without waiting: if another process holds it (a
   worker of this sweep or of a second ``offrl sweep`` on the same directory,
   or a runner of an earlier attempt that is still stopping), the cell is
   reported ``busy`` and left alone, so a cell never runs twice at once. A run
   directory locked by its own ``offrl run`` (``run.lock``, e.g. a
   ``--resume`` started by hand) is ``busy`` too;
2. leaves a cell whose run has ended alone: ``finished`` (skipped) or
   ``diverged`` (the trainer stopped it for good; retrying would diverge again);
3. resumes it (``offrl run --resume``) if it has a checkpoint, else starts it
   afresh (clearing a run directory that never reached a checkpoint);
4. runs the runner under :mod:`offrl.sweep.guard` (which stops it if this
   process dies, and holds the cell's lock with it), appending its output to
   the cell's log;
5. records the outcome: ``finished``, ``diverged``, ``interrupted`` (exit 130
   or stopped by the sweep, resumable later) or ``failed`` (with ``error.txt``
   holding the exit code, the runner's error message, the command and the
   tail of the log).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from offrl.rundir import CHECKPOINT, ERROR, read_summary, run_dir_busy, run_state, try_lock
from offrl.sweep import guard

#: Placeholder for the worker's own Python interpreter in a runner command (a Ray node's
#: interpreter may live elsewhere than the driver's).
PYTHON = "{python}"
#: Seconds a stopped runner gets to save its checkpoint after SIGINT before its guard kills it.
INTERRUPT_GRACE_S = guard.GRACE_S
#: Seconds past that grace after which the worker kills a guard that has not exited (a last resort).
GUARD_MARGIN_S = 15.0
LOG_TAIL_LINES = 40
#: How ``offrl run`` (and every offrl command) starts its message on a user error.
ERROR_PREFIX = "error:"


@dataclass(frozen=True)
class CellJob:
    """Everything a worker needs to run one cell (picklable, no open handles)."""

    key: str
    run_dir: str
    log_file: str
    lock_file: str
    fresh_argv: tuple[str, ...]
    resume_argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # added to the worker's environment
    # A group job trains several seeds of one cell configuration in one process (``--seeds-per-process``):
    members: tuple["CellJob", ...] = ()  # the cells, one per seed (this job's own key is the first's)
    seeds: tuple[int, ...] = ()  # their seeds, in order
    group_argv: tuple[str, ...] = ()  # the fresh command without --seed/--out (execution adds --seeds, --out)
    out_template: str = ""  # the members' run directories with '{seed}' for the seed
    guard_args: tuple[str, ...] = ()  # extra options of the runner's guard (a SLURM job step's signal rules)


@dataclass
class CellResult:
    """The outcome of one attempt at a cell."""

    key: str
    state: str  # finished | skipped | diverged | failed | interrupted | busy
    returncode: int | None = None
    started: float | None = None
    ended: float | None = None
    resumed: bool = False
    message: str = ""
    host: str = field(default_factory=lambda: os.uname().nodename)

    @property
    def wall_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "returncode": self.returncode,
            "started": self.started,
            "ended": self.ended,
            "wall_s": self.wall_s,
            "resumed": self.resumed,
            "message": self.message,
            "host": self.host,
        }


def execute_cell(
    job: CellJob,
    on_start: Callable[[str, subprocess.Popen], None] | None = None,
    stop: threading.Event | None = None,
) -> CellResult:
    """Run ``job`` to completion (see the module docstring). Never raises for a failing run."""
    run_dir = Path(job.run_dir)
    Path(job.lock_file).parent.mkdir(parents=True, exist_ok=True)
    lock_fd = try_lock(Path(job.lock_file))
    if lock_fd is None:
        return CellResult(job.key, "busy", message=f"locked by another process ({job.lock_file})")
    try:
        if run_dir_busy(run_dir):
            return CellResult(job.key, "busy", message=f"run directory in use by another process ({run_dir})")
        state = run_state(run_dir)
        if state == "finished":
            return CellResult(job.key, "skipped", message="already finished")
        if state == "diverged":
            return CellResult(job.key, "diverged", message=diverged_message(run_dir))
        if stop is not None and stop.is_set():
            return CellResult(job.key, "interrupted", message="sweep stopped before the cell started")
        return _run(job, run_dir, lock_fd, on_start, stop)
    finally:
        os.close(lock_fd)  # the guard and the runner keep their copies until they exit


def execute_job(
    job: CellJob,
    on_start: Callable[[str, subprocess.Popen], None] | None = None,
    stop: threading.Event | None = None,
) -> list[CellResult]:
    """Run a cell, or a group of cells in one process; one result per cell. Never raises for a failing run."""
    if not job.members:
        return [execute_cell(job, on_start, stop)]
    from offrl.sweep.group import execute_group

    return execute_group(job, on_start, stop)


def diverged_message(run_dir: Path) -> str:
    """What the run's summary says about its divergence (its reason and step, when it gives them)."""
    summary = read_summary(run_dir) or {}
    detail = summary.get("reason") or summary.get("message") or ""
    step = summary.get("steps", summary.get("step"))
    text = "diverged" + (f" at step {step}" if isinstance(step, int) else "")
    return f"{text}: {detail}" if detail else text


def _run(
    job: CellJob,
    run_dir: Path,
    lock_fd: int,
    on_start: Callable[[str, subprocess.Popen], None] | None,
    stop: threading.Event | None,
) -> CellResult:
    (run_dir / ERROR).unlink(missing_ok=True)
    resumed = (run_dir / CHECKPOINT).exists()
    if resumed:
        argv = list(job.resume_argv)
    else:
        if run_dir.exists():  # a previous attempt died before its first checkpoint: nothing to resume
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        argv = list(job.fresh_argv)
    argv = [sys.executable if a == PYTHON else a for a in argv]
    guarded = [sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()), "--lock-fd", str(lock_fd),
               "--grace", str(INTERRUPT_GRACE_S), *job.guard_args, "--", *argv]
    env = dict(os.environ)
    env.update(dict(job.env))
    log_path = Path(job.log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with log_path.open("ab") as log:
        log_start = log.tell()
        header = f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resumed else 'start'}: {shlex.join(argv)}\n"
        log.write(header.encode())
        log.flush()
        try:
            proc = subprocess.Popen(guarded, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    pass_fds=(lock_fd,))
        except OSError as e:
            return _failed(job, run_dir, None, started, resumed, f"could not start the runner: {e}", argv, log_start)
        if on_start is not None:
            on_start(job.key, proc)
        try:
            returncode = proc.wait()
        except KeyboardInterrupt:  # Ray's cancel, or Ctrl-C reaching this thread: let the run checkpoint
            returncode = stop_guard(proc)
            return CellResult(job.key, "interrupted", returncode, started, time.time(), resumed, "interrupted")
    ended = time.time()
    state = run_state(run_dir)
    if state == "diverged":  # ended for good, whatever the exit code says: not a failure to retry
        return CellResult(job.key, "diverged", returncode, started, ended, resumed, diverged_message(run_dir))
    if returncode == 0 and state == "finished":
        return CellResult(job.key, "finished", 0, started, ended, resumed)
    if returncode in (130, -signal.SIGINT) or (stop is not None and stop.is_set()):
        return CellResult(job.key, "interrupted", returncode, started, ended, resumed, "interrupted; rerun to resume")
    reason = (
        "the runner exited 0 but wrote no finished summary.json"
        if returncode == 0
        else f"the runner exited with code {returncode}"
    )
    return _failed(job, run_dir, returncode, started, resumed, reason, argv, log_start)


def stop_guard(proc: subprocess.Popen) -> int:
    """Ask a runner's guard to stop it (SIGTERM: the guard sends the runner one SIGINT, so it saves a
    checkpoint and exits 130); kill the guard only if it has not exited well after the runner's grace."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=INTERRUPT_GRACE_S + GUARD_MARGIN_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _failed(
    job: CellJob,
    run_dir: Path,
    returncode: int | None,
    started: float,
    resumed: bool,
    reason: str,
    argv: list[str],
    log_start: int,
) -> CellResult:
    tail = _log_tail(Path(job.log_file), log_start)
    error = error_message(tail)
    message = error or reason
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR).write_text(
        f"{reason}\n" + (f"\n{ERROR_PREFIX} {error}\n" if error else "")
        + f"\ncommand: {shlex.join(argv)}\nlog: {job.log_file}\n\n"
        f"last {LOG_TAIL_LINES} lines of output:\n" + "\n".join(tail) + "\n\n"
        "Rerunning the sweep retries this cell (resuming it if it has a checkpoint.pt); "
        "delete this directory to restart the cell from scratch.\n"
    )
    return CellResult(job.key, "failed", returncode, started, time.time(), resumed, message)


def error_message(lines: list[str]) -> str:
    """The message of the runner's last ``error:`` block, unwrapped to one line; else its last output line.

    ``offrl run`` reports a user error as ``error: MESSAGE`` (older versions wrapped it over several
    lines at 80 columns when writing to a log); the block runs to the next blank line or the end.
    Without such a block (a crash), the last non-empty line is the best summary (a traceback's last line
    names the exception).
    """
    starts = [i for i, line in enumerate(lines) if line.startswith(ERROR_PREFIX)]
    if not starts:
        return next((line.strip() for line in reversed(lines) if line.strip()), "")
    block: list[str] = []
    for line in lines[starts[-1]:]:
        if not line.strip():
            break
        block.append(line.strip())
    return " ".join(block)[len(ERROR_PREFIX):].strip()


def _log_tail(path: Path, start: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-LOG_TAIL_LINES:]
