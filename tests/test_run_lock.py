"""RUN_DIR/run.lock and the sweep's cell locks: flock locks that child processes share and that die with them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from offrl import rundir

REPO = Path(__file__).resolve().parents[1]

HOLD = "import os, sys, time; from offrl import rundir; print(rundir.run_dir_busy(sys.argv[1]), flush=True); " \
       "sys.stdin.read()"


def test_a_held_run_dir_is_busy_for_other_processes(tmp_path: Path) -> None:
    assert not rundir.run_dir_busy(tmp_path)  # no lock file: not busy, and none is created
    assert not (tmp_path / rundir.LOCK).exists()
    fd = rundir.lock_run_dir(tmp_path)
    assert fd is not None
    try:
        assert rundir.lock_run_dir(tmp_path) is None  # a second holder is refused, even in this process
        probe = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, input="", capture_output=True,
                               text=True, timeout=60)
        assert probe.stdout.strip() == "True"
    finally:
        os.close(fd)
    assert not rundir.run_dir_busy(tmp_path)


def test_a_lock_passed_to_a_child_outlives_its_taker(tmp_path: Path) -> None:
    """The sweep's design: the worker takes the lock, its runner inherits it; the worker's close does not free it,
    the runner's exit does."""
    path = tmp_path / "cell.lock"
    fd = rundir.try_lock(path)
    assert fd is not None
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             pass_fds=(fd,))
    try:
        os.close(fd)
        assert rundir.try_lock(path) is None  # the child still holds it
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
    again = rundir.try_lock(path)
    assert again is not None
    os.close(again)


def test_primary_metric_prefers_success_then_normalised_then_return() -> None:
    rows = [{"step": 1, "return_mean": 5.0, "normalized_score_100": 50.0}, {"step": 2, "success_rate_100": 80.0}]
    assert rundir.primary_metric(rows) == "success_rate_100"
    assert rundir.primary_metric(rows[:1]) == "normalized_score_100"
    assert rundir.primary_metric([{"return_mean": 5.0, "normalized_score_100": None}]) == "return_mean"
    assert rundir.primary_metric([{"success_rate_100": float("nan"), "return_mean": True}]) is None
    assert rundir.primary_metric([]) is None
