"""Running one cell: the worker side, shared by every backend.

:func:`execute_cell` is a plain function of a picklable :class:`CellJob`, so a
thread of the local pool and a Ray task run exactly the same code. It

1. takes the cell's lock without waiting: if another worker (of this sweep or
   of a second ``offrl sweep`` on the same directory) holds it, the cell is
   reported ``busy`` and left alone, so a cell never runs twice at once;
2. skips the cell if its run already finished;
3. resumes it (``offrl run --resume``) if it has a checkpoint, else starts it
   afresh (clearing a run directory that never reached a checkpoint);
4. runs the runner as a subprocess, appending its output to the cell's log;
5. records the outcome: ``finished``, ``interrupted`` (exit 130 or stopped by
   the sweep, resumable later) or ``failed`` (with ``error.txt`` holding the
   exit code, the command and the tail of the log).
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

from filelock import FileLock, Timeout

from offrl.sweep.layout import CHECKPOINT, ERROR, is_finished

#: Placeholder for the worker's own Python interpreter in a runner command (a Ray node's
#: interpreter may live elsewhere than the driver's).
PYTHON = "{python}"
#: Seconds a stopped runner gets to save its checkpoint after SIGINT before it is terminated.
INTERRUPT_GRACE_S = 60.0
LOG_TAIL_LINES = 40


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


@dataclass
class CellResult:
    """The outcome of one attempt at a cell."""

    key: str
    state: str  # finished | skipped | failed | interrupted | busy
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
    lock = FileLock(job.lock_file)
    Path(job.lock_file).parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return CellResult(job.key, "busy", message=f"locked by another worker ({job.lock_file})")
    try:
        if is_finished(run_dir):
            return CellResult(job.key, "skipped", message="already finished")
        if stop is not None and stop.is_set():
            return CellResult(job.key, "interrupted", message="sweep stopped before the cell started")
        return _run(job, run_dir, on_start, stop)
    finally:
        lock.release()


def _run(
    job: CellJob,
    run_dir: Path,
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
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        except OSError as e:
            return _failed(job, run_dir, None, started, resumed, f"could not start the runner: {e}", argv, log_start)
        if on_start is not None:
            on_start(job.key, proc)
        try:
            returncode = proc.wait()
        except KeyboardInterrupt:  # Ray's cancel, or Ctrl-C reaching this thread: let the run checkpoint
            returncode = _interrupt(proc)
            return CellResult(job.key, "interrupted", returncode, started, time.time(), resumed, "interrupted")
    ended = time.time()
    if returncode == 0 and is_finished(run_dir):
        return CellResult(job.key, "finished", 0, started, ended, resumed)
    if returncode in (130, -signal.SIGINT) or (stop is not None and stop.is_set()):
        return CellResult(job.key, "interrupted", returncode, started, ended, resumed, "interrupted; rerun to resume")
    reason = (
        "the runner exited 0 but wrote no finished summary.json"
        if returncode == 0
        else f"the runner exited with code {returncode}"
    )
    return _failed(job, run_dir, returncode, started, resumed, reason, argv, log_start)


def _interrupt(proc: subprocess.Popen) -> int:
    """SIGINT the runner (it saves a checkpoint and exits 130); terminate it if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=INTERRUPT_GRACE_S)
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
    last_line = next((line for line in reversed(tail) if line.strip()), "")
    message = f"{reason}: {last_line}" if last_line else reason
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR).write_text(
        f"{reason}\n\ncommand: {shlex.join(argv)}\nlog: {job.log_file}\n\n"
        f"last {LOG_TAIL_LINES} lines of output:\n" + "\n".join(tail) + "\n\n"
        "Rerunning the sweep retries this cell (resuming it if it has a checkpoint.pt); "
        "delete this directory to restart the cell from scratch.\n"
    )
    return CellResult(job.key, "failed", returncode, started, time.time(), resumed, message)


def _log_tail(path: Path, start: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-LOG_TAIL_LINES:]
