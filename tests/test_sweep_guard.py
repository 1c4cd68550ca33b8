"""The runner guard (offrl.sweep.guard): a runner stops when the process that started it dies, exactly once.

The "runner" here is a small script that records every SIGINT it receives and,
like `offrl run`, saves and exits 130 on the first one (after a short delay, as a
checkpoint save takes time).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offrl.sweep import guard

REPO = Path(__file__).resolve().parents[1]

RUNNER = r'''
import os, signal, sys, time
log = sys.argv[1]

def on_int(signum, frame):
    with open(log, "a") as f:
        f.write("SIGINT\n")
    if not getattr(on_int, "seen", False):
        on_int.seen = True
        time.sleep(0.5)  # "saving the checkpoint"
        with open(log, "a") as f:
            f.write("saved\n")
        os._exit(130)

signal.signal(signal.SIGINT, on_int)
with open(log, "a") as f:
    f.write(f"started {os.getpid()}\n")
while True:
    time.sleep(0.05)
'''

#: A parent that starts a guarded runner, says the guard's pid, and waits to be killed. With
#: ``nopdeath`` the guard is told that the Linux parent-death signal is unavailable (the macOS case).
PARENT = r'''
import os, subprocess, sys
runner, log, mode = sys.argv[1:4]
code = "import sys, offrl.sweep.guard as g; "
if mode == "nopdeath":
    code += "g.set_parent_death_signal = lambda sig: False; "
code += "sys.exit(g.main(sys.argv[1:]))"
p = subprocess.Popen([sys.executable, "-c", code, "--parent", str(os.getpid()), "--grace", "20", "--",
                      sys.executable, runner, log])
print(p.pid, flush=True)
p.wait()
'''


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _runner_pid(log: Path) -> int:
    return int(next(line for line in _lines(log) if line.startswith("started")).split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_exit_status_of_a_signal() -> None:
    assert guard.exit_status(0) == 0 and guard.exit_status(2) == 2
    assert guard.exit_status(-signal.SIGINT) == 130 and guard.exit_status(-signal.SIGKILL) == 137


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_parent_death_signal_is_available_on_linux() -> None:
    code = "import signal, offrl.sweep.guard as g; print(g.set_parent_death_signal(signal.SIGTERM))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("mode", ["pdeath", "nopdeath"])
def test_runner_stops_once_when_its_parent_is_killed(tmp_path: Path, mode: str) -> None:
    """kill -9 of the parent alone: the runner gets one SIGINT, saves, exits; with or without PDEATHSIG."""
    runner, parent_py, log = tmp_path / "runner.py", tmp_path / "parent.py", tmp_path / "runner.log"
    runner.write_text(RUNNER)
    parent_py.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(parent_py), str(runner), str(log), mode], cwd=REPO,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert _wait(lambda: any(line.startswith("started") for line in _lines(log)), 60), "runner never started"
        pid = _runner_pid(log)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait(lambda: not _alive(pid), 20), "the runner outlived its parent"
        assert _lines(log)[1:] == ["SIGINT", "saved"]
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_terminal_ctrl_c_is_not_forwarded_twice(tmp_path: Path) -> None:
    """Ctrl-C reaches guard and runner together; the sweep's later SIGTERM must not send a second SIGINT."""
    runner, log = tmp_path / "runner.py", tmp_path / "runner.log"
    runner.write_text(RUNNER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()), "--", sys.executable, str(runner),
         str(log)], cwd=REPO, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert _wait(lambda: any(line.startswith("started") for line in _lines(log)), 60), "runner never started"
        time.sleep(0.3)  # the guard has installed its handlers by the time its runner runs
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group
        time.sleep(0.1)
        proc.terminate()  # then the sweep asks the guard to stop its runner
        assert proc.wait(timeout=30) == 130
        assert _lines(log)[1:] == ["SIGINT", "saved"]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_runner_that_cannot_start_is_one_error_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()), "--",
                          str(tmp_path / "no-such-runner")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 127
    assert out.stderr.startswith("error: could not start the runner") and "Traceback" not in out.stderr


#: Like RUNNER, but as `offrl run` does: SIGINT and SIGTERM both ask it to save and exit (the first one only).
STOPPABLE_RUNNER = RUNNER.replace(
    "signal.signal(signal.SIGINT, on_int)",
    "signal.signal(signal.SIGINT, on_int)\nsignal.signal(signal.SIGTERM, lambda s, f: on_int(s, f))",
).replace('f.write("SIGINT\\n")', 'f.write(signal.Signals(signum).name + "\\n")')


@pytest.mark.parametrize("event, expected", [
    ("scancel", ["SIGTERM", "saved"]),  # SLURM's SIGTERM reaches guard and runner: not forwarded a second time
    ("stop", ["SIGINT", "saved"]),  # the job's own request to its guard (SIGHUP): one SIGINT
])
def test_shared_signals_of_a_slurm_job_step(tmp_path: Path, event: str, expected: list[str]) -> None:
    """Under --shared-signals SLURM's signals reach every process: the runner gets each stop once; USR2 (submitit's
    warning before the time limit, for the job's own process) is ignored by guard and runner alike."""
    runner, log = tmp_path / "runner.py", tmp_path / "runner.log"
    runner.write_text(STOPPABLE_RUNNER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()), "--shared-signals",
         "--ignore-signal", "USR2", "--", sys.executable, str(runner), str(log)], cwd=REPO, start_new_session=True)
    try:
        assert _wait(lambda: any(line.startswith("started") for line in _lines(log)), 60), "runner never started"
        time.sleep(0.3)  # the guard has installed its handlers by the time its runner runs
        os.killpg(proc.pid, signal.SIGUSR2)  # to every process of the step
        time.sleep(0.3)
        assert proc.poll() is None and _alive(_runner_pid(log)) and _lines(log)[1:] == []
        if event == "scancel":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 130
        assert _lines(log)[1:] == expected
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_an_unknown_signal_name_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "offrl.sweep.guard", "--parent", str(os.getpid()), "--ignore-signal",
                          "USR9", "--", "true"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown signal 'USR9'" in out.stderr
