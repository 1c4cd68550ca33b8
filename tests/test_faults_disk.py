"""A full disk or a folder that stops being writable: one message, the last checkpoint intact, the old dataset kept.

Where the machine allows it (root, tmpfs), the disk really fills up: a small tmpfs is mounted and a filler file
takes its space at the moment the test chooses, so the errors are the real ones (torch, h5py, pandas, matplotlib,
filelock). Elsewhere those tests skip, and the same code paths are covered by injected OSErrors (ENOSPC, EIO,
EROFS) in the tests below them.
"""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import types
from pathlib import Path
from typing import Iterator

import pytest
import torch

import offrl
from offrl.errors import DatasetError, RunDirError
from offrl.trainer.api import start
from tests.helpers import run_cli

TINY_RUN = {"trainer.save_every": 20, "trainer.log_every": 10, "trainer.eval_every": 100, "trainer.eval_episodes": 2}


def _clean(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs (skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"tmpfs not allowed here: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all but ``leave`` bytes of the disk."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    todo = max(0, st.f_bavail * st.f_frsize - leave)
    try:
        with open(filler, "ab") as f:
            while todo > 0:
                todo -= f.write(b"\0" * min(todo, 1 << 20))
    except OSError as e:  # the last page may already be short
        assert e.errno == errno.ENOSPC
    return filler


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- real full disks ----------------------------------------------------------------------------------------------
def test_disk_full_mid_run_keeps_the_last_checkpoint_and_resumes(small_disk: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.trainer import checkpoint

    out = small_disk / "r"
    trainer = start(offrl.make_config(preset="bandit", actor="ddpg-bc", steps=100, overrides=TINY_RUN), out)
    original, saves = checkpoint.save_group, []

    def save_then_fill(states: list) -> None:
        original(states)
        saves.append(1)
        if len(saves) == 2:  # the disk fills up right after the step-40 checkpoint
            fill(small_disk)

    monkeypatch.setattr(checkpoint, "save_group", save_then_fill)
    with pytest.raises(RunDirError) as err:
        trainer.run()
    assert "No space left on device" in str(err.value) and "intact" in str(err.value)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 40
    assert not list(out.glob(".*.tmp"))
    (small_disk / "filler").unlink()
    monkeypatch.undo()
    proc = run_cli("run", "--resume", str(out), "--quiet")
    _clean(proc, 0)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 100


def test_disk_full_at_start_is_one_message(small_disk: Path) -> None:
    fill(small_disk)
    proc = run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "20",
                   "--eval-episodes", "2", "--out", str(small_disk / "r"), "--quiet")
    _clean(proc)
    assert "No space left on device" in proc.stderr and "Nothing was trained yet" in proc.stderr


def test_disk_full_while_writing_a_report(small_disk: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _clean(run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "10",
                   "--eval-episodes", "2", "--out", str(run), "--quiet"), 0)
    (small_disk / "report").mkdir()
    fill(small_disk)
    for extra in ([], ["--no-plots"]):
        proc = run_cli("report", str(run), "--out", str(small_disk / "report"), *extra)
        _clean(proc)
        assert "Could not write the report" in proc.stderr and "No space left on device" in proc.stderr


def test_disk_full_during_data_make_force_keeps_the_old_dataset(small_disk: Path) -> None:
    store = small_disk / "store"
    env = {"MINARI_DATASETS_PATH": str(store)}
    _clean(run_cli("data", "make", "offrl/bandit/multimodal-v0", "--quick", env=env), 0)
    data = store / "offrl" / "bandit" / "multimodal-v0" / "data" / "main_data.hdf5"
    before = _md5(data)
    fill(small_disk, leave=300_000)  # room to start the new file, not to finish it
    proc = run_cli("data", "make", "offrl/bandit/multimodal-v0", "--quick", "--force", "--seed", "1", env=env)
    _clean(proc)
    assert "No space left on device" in proc.stderr and "The old dataset is kept" in proc.stderr
    assert _md5(data) == before
    assert [p.name for p in store.iterdir() if p.name.startswith(".offrl-")] == []  # no temporary store left
    (small_disk / "filler").unlink()
    _clean(run_cli("data", "info", "offrl/bandit/multimodal-v0", env=env), 0)


def test_a_read_only_disk_is_one_message(small_disk: Path, tmp_path: Path) -> None:
    run = small_disk / "r"
    _clean(run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "20", "--eval-every", "10",
                   "--save-every", "10", "--eval-episodes", "2", "--out", str(run), "--quiet"), 0)
    (run / "summary.json").unlink()
    (run / "run.lock").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    proc = run_cli("run", "--resume", str(run), "--quiet")
    _clean(proc)
    assert "Read-only file system" in proc.stderr
    proc = run_cli("report", str(run), "--out", str(small_disk / "report"))
    _clean(proc)
    assert "Read-only file system" in proc.stderr
    proc = run_cli("data", "make", "offrl/bandit/multimodal-v0", "--quick", env={"MINARI_DATASETS_PATH": str(
        small_disk / "store")})
    _clean(proc)
    assert "Read-only file system" in proc.stderr


# --- the same paths, by injection (every machine) -------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_injected_write_errors_at_start_and_in_the_policy_file(code: int, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl import rundir

    cfg = offrl.make_config(preset="bandit", actor="ddpg-bc", steps=20,
                            overrides={**TINY_RUN, "trainer.eval_every": 10, "trainer.save_every": 10})
    original = rundir.write_text_atomic

    def failing(path: Path, text: str, fsync: bool = True) -> None:
        if path.name == "config.json":
            raise OSError(code, os.strerror(code), str(path))
        original(path, text, fsync)

    monkeypatch.setattr(rundir, "write_text_atomic", failing)
    with pytest.raises(RunDirError, match=f"{os.strerror(code)}.*Nothing was trained yet"):
        start(cfg, tmp_path / "a")
    monkeypatch.undo()
    trainer = start(cfg, tmp_path / "b")

    import offrl.trainer.checkpoint as checkpoint

    real = checkpoint.serialise

    def no_space_for_policies(obj: dict) -> bytes:  # what a full disk does to the first policy file
        if "obs_normalizer" in obj:
            raise OSError(code, os.strerror(code))
        return real(obj)

    monkeypatch.setattr(checkpoint, "serialise", no_space_for_policies)
    with pytest.raises(RunDirError, match="Could not write a policy file.*intact"):
        trainer.run()
    assert not list((tmp_path / "b").glob(".*.tmp"))


def test_injected_h5py_failure_keeps_the_old_dataset(copy_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import minari

    from offrl.datagen.recipes import bandit

    data = copy_store / "offrl" / "bandit" / "multimodal-v0" / "data" / "main_data.hdf5"
    before = _md5(data)

    def h5py_like(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Can't write data (file write failed: time = now, filename = 'x', file descriptor = 4, "
                           "errno = 28, error message = 'No space left on device', buf = 0x1)")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", h5py_like)
    with pytest.raises(DatasetError, match="No space left on device.*The old dataset is kept"):
        bandit.make(episodes=10, replace=True)
    assert _md5(data) == before
    assert not [p for p in copy_store.iterdir() if p.name.startswith(".offrl-")]


def test_injected_errors_writing_a_report_or_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.report import build
    from offrl.sweep import driver
    from offrl.sweep.layout import SweepLayout
    from offrl.sweep.spec import SweepSpec

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "runs.csv")

    monkeypatch.setattr(build, "write_table", no_space)
    with pytest.raises(RunDirError, match="Could not write the report .*runs.csv: No space left on device"):
        build.write_report(types.SimpleNamespace(evals=None), tmp_path / "report")  # type: ignore[arg-type]
    monkeypatch.setattr(SweepLayout, "make_dirs", no_space)
    with pytest.raises(offrl.errors.ConfigError, match="Cannot write the sweep directory .*nothing was started"):
        driver.run_sweep(SweepSpec(), tmp_path / "sweep")


def test_the_status_file_of_a_sweep_is_advisory_on_a_full_disk(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.sweep import status

    file = status.StatusFile(tmp_path / "status.json")
    file.update({"a": {"state": "running"}})

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(status, "write_json_atomic", no_space)
    file.update({"a": {"state": "finished"}})  # no exception: the run directories are the truth
    assert "No space left on device" in file.error and file.read()["a"]["state"] == "running"
    (tmp_path / "status.json").write_text('{"cells": [1, 2]}')
    assert file.read() == {}


def test_an_os_error_no_command_expected_is_one_message(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The last line of defence in `offrl`'s entry point: any OSError becomes one message naming file and cause."""
    from offrl.cli import list as list_cmd
    from offrl.cli.main import main

    def broken(args: object) -> int:
        raise OSError(errno.EIO, "Input/output error", "/data/x")

    monkeypatch.setattr(list_cmd, "run", broken)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Input/output error (/data/x)") and err.count("\n") == 1

    def bug(args: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(list_cmd, "run", bug)
    assert main(["list"]) == 1
    assert "internal error (ZeroDivisionError" in capsys.readouterr().err


def test_injected_full_disk_while_matplotlib_writes_a_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    from offrl.report.build import build_report, write_report
    from tests.test_report import make_run

    for seed in range(3):
        make_run(tmp_path / "runs", "expectile", "edp", "offrl/bandit/multimodal-v0", seed, [(10, 50.0), (20, 60.0)])
    report = build_report([tmp_path / "runs"], reps=50)

    def no_space(self: object, path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", no_space)
    with pytest.raises(RunDirError, match="Could not write the report .*learning_curves.*No space left on device"):
        write_report(report, tmp_path / "report")
