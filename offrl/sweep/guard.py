"""The process between a sweep worker and its runner: a runner never outlives the process that started it.

::

    python -m offrl.sweep.guard --parent PID [--lock-fd FD] -- RUNNER ARGS...

Why a process of its own: when a sweep driver is killed alone (``kill -9 PID``,
an OOM kill, a closed SSH session), nothing in the driver runs any more, so it
cannot stop its runners; an orphaned ``offrl run`` would keep training, and a
rerun of the sweep would resume the same cell beside it (steps and evaluations
logged twice). The guard is started by the worker (the sweep driver, or a Ray
worker) and starts the runner. It

- asks Linux to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``
  through ctypes) and, as the portable fallback (macOS has no such signal; it
  also covers a parent that died before the request), checks every
  :data:`WATCH_S` seconds that its parent is still ``PID``;
- passes the cell's lock descriptor (``--lock-fd``) to the runner, so the lock
  is held until the guard *and* the runner have exited: a rerun sees the cell
  busy for as long as any process of the old attempt lives, never a free cell;
- stops the runner the way Ctrl-C does when its parent is gone or when it is
  asked to with SIGTERM: one SIGINT (the runner saves a checkpoint and exits
  130), then SIGKILL if the runner has not exited after :data:`GRACE_S`;
- treats a SIGINT it receives as the terminal's Ctrl-C, which reached the
  runner too (they share the process group), and does not forward it: a second
  SIGINT would make the runner give up without saving its checkpoint;
- exits with the runner's status (128 + N when signal N ended it).

Inside a SLURM job step (``--shared-signals``, used by the SLURM backend)
SLURM signals every process of the step at once: a ``scancel``, a preemption
or the time limit's SIGTERM reaches the runner as well, so the guard treats
SIGTERM like the terminal's SIGINT (not forwarded: the runner's second signal
would make it give up without saving), and the private "stop your runner"
request, which is also the parent-death signal, is SIGHUP. ``--ignore-signal
USR2`` makes the guard and its runner ignore submitit's warning before the
time limit, which is meant for the job's own process (it stops the runner
through the guard, then requeues the job).

Only the standard library is used, so starting a guard costs a bare interpreter.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from typing import Any

#: Seconds between two checks that the parent is alive.
WATCH_S = 0.2
#: Seconds a runner gets to save its checkpoint after the SIGINT before it is killed.
GRACE_S = 60.0
#: Linux ``prctl`` option: the signal to receive when the parent thread exits.
PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class _Signals:
    """What the guard was told: stop the runner (SIGTERM) / the runner got Ctrl-C itself (SIGINT)."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.runner_interrupted = False

    def on_term(self, signum: int, frame: Any) -> None:
        self.stop_requested = True

    def on_int(self, signum: int, frame: Any) -> None:
        self.runner_interrupted = True


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell exit status (a signal N becomes 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def run_guarded(command: list[str], parent: int, lock_fd: int | list[int] | None,
                grace_s: float = GRACE_S, shared_signals: bool = False, ignore: tuple[str, ...] = ()) -> int:
    """Run ``command`` until it exits; stop it if ``parent`` dies or a stop is requested. Returns its status.

    ``shared_signals``: SIGTERM reached the runner too (a SLURM job step), so SIGHUP is the stop request.
    ``ignore``: signal names (``USR2``) the guard and, by inheritance, its runner ignore.
    """
    signals = _Signals()
    for name in ignore:
        signal.signal(signal_named(name), signal.SIG_IGN)  # an ignored signal stays ignored across exec
    stop_signal = signal.SIGHUP if shared_signals else signal.SIGTERM
    signal.signal(signal.SIGTERM, signals.on_int if shared_signals else signals.on_term)
    signal.signal(stop_signal, signals.on_term)
    signal.signal(signal.SIGINT, signals.on_int)
    set_parent_death_signal(stop_signal)
    if os.getppid() != parent or signals.stop_requested:  # the parent died (or asked to stop) before we started
        return 130
    try:
        fds = () if lock_fd is None else (tuple(lock_fd) if isinstance(lock_fd, list) else (lock_fd,))
        proc = subprocess.Popen(command, pass_fds=fds)
    except OSError as e:
        print(f"error: could not start the runner {command[0]!r}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 127
    kill_at: float | None = None
    while True:
        try:
            return exit_status(proc.wait(timeout=WATCH_S))
        except subprocess.TimeoutExpired:
            pass
        if kill_at is None and (signals.stop_requested or os.getppid() != parent):
            kill_at = time.monotonic() + grace_s
            if not signals.runner_interrupted:
                proc.send_signal(signal.SIGINT)  # saves a checkpoint and exits 130
        if kill_at is not None and time.monotonic() > kill_at:
            proc.kill()


def signal_named(name: str) -> signal.Signals:
    """``USR2`` or ``SIGUSR2`` -> ``signal.SIGUSR2``; a clear error for a name this system lacks."""
    key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    if not hasattr(signal.Signals, key):
        raise ValueError(f"unknown signal {name!r} (e.g. USR2)")
    return signal.Signals[key]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offrl.sweep.guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", type=int, required=True, help="pid whose death stops the runner")
    parser.add_argument("--lock-fd", type=int, action="append",
                        help="an open lock descriptor the runner must hold too (repeatable: a group of cells)")
    parser.add_argument("--grace", type=float, default=GRACE_S, help="seconds between SIGINT and SIGKILL")
    parser.add_argument("--shared-signals", action="store_true",
                        help="SIGTERM reaches the runner too (a SLURM job step): not forwarded; SIGHUP asks to stop")
    parser.add_argument("--ignore-signal", action="append", default=[], metavar="NAME",
                        help="a signal the guard and its runner ignore (e.g. USR2); repeatable")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the runner's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no runner command given after --")
    try:
        ignore = tuple(signal_named(name).name for name in args.ignore_signal)
    except ValueError as e:
        parser.error(str(e))
    return run_guarded(command, args.parent, args.lock_fd, args.grace, args.shared_signals, ignore)


if __name__ == "__main__":
    sys.exit(main())
