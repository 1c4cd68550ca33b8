"""Damaged, incomplete or misnamed datasets end in one clear error (or are repaired), never a traceback."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import h5py
import numpy as np
import pytest

from offrl.cli.main import main
from offrl.data.dataset import load_offline_dataset
from offrl.data.info import summarize
from offrl.errors import DatasetError
from tests.helpers import episode, run_cli, write_episodes

BANDIT = "offrl/bandit/multimodal-v0"
HDF5 = "data/main_data.hdf5"
BOX3 = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX2 = gym.spaces.Box(-1, 1, (2,), np.float32)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps long paths at 80 columns otherwise


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def _truncate(p: Path) -> None:
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size // 2)


def _garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).bytes(4096))


def _flip_signature(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[1] ^= 0x10  # one bit of the HDF5 signature
    p.write_bytes(bytes(b))


def _drop_rewards(p: Path) -> None:
    with h5py.File(p, "a") as f:
        del f["episode_3/rewards"]


def _wrong_shape(p: Path) -> None:
    with h5py.File(p, "a") as f:
        del f["episode_3/actions"]
        f["episode_3/actions"] = np.zeros((1, 3), np.float32)


def _drop_episode(p: Path) -> None:
    with h5py.File(p, "a") as f:
        del f["episode_7"]


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "not a readable HDF5 file"),
    "garbage": (_garbage, "not a readable HDF5 file"),
    "bit-flipped header": (_flip_signature, "not a readable HDF5 file"),
    "missing rewards": (_drop_rewards, "episode_3 has no 'rewards'"),
    "wrong shape": (_wrong_shape, "episode_3/actions has shape (1, 3), expected (1, 2)"),
    "missing episode": (_drop_episode, "3000 episodes but 1 are missing (episode_7)"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_damaged_hdf5_is_one_clear_error(kind: str, copy_store: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFRL_DATASET_CACHE", "0")
    damage, problem = CORRUPTIONS[kind]
    path = copy_store / BANDIT / HDF5
    damage(path)
    for read in (load_offline_dataset, summarize):
        with pytest.raises(DatasetError) as err:
            read(BANDIT)
        message = " ".join(str(err.value).split())
        assert str(path) in message and problem in message, message
        assert f"offrl data make --force {BANDIT}" in message
    code, out, err = _cli(capsys, "data", "info", BANDIT)
    assert code == 2 and problem in err and "Traceback" not in err + out


def test_offrl_run_on_a_truncated_file_exits_without_traceback(copy_store: Path, tmp_path: Path) -> None:
    _truncate(copy_store / BANDIT / HDF5)
    proc = run_cli("run", "--dataset", BANDIT, "--steps", "1", "--out", str(tmp_path / "run"),
                   env={"MINARI_DATASETS_PATH": str(copy_store), "OFFRL_DATASET_CACHE": "0"}, timeout=120)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "not a readable HDF5 file" in err and f"offrl data make --force {BANDIT}" in err


def test_random_bit_flips_never_escape_as_other_errors(empty_store: Path, tmp_path: Path) -> None:
    """Fuzz: 3 random bits flipped anywhere, 25 times. Loading succeeds (flips inside numbers are invisible)
    or raises DatasetError -- no other exception, no crash (run in a subprocess to survive a segfault)."""
    rng = np.random.default_rng(7)
    write_episodes("fz/bits/base-v0", [episode(6, 3, 2, rng, True) for _ in range(12)], BOX3, BOX2)
    code = f"""
import json, os, shutil, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from offrl.data.dataset import load_offline_dataset
from offrl.data.info import summarize
from offrl.errors import DatasetError
root = os.environ["MINARI_DATASETS_PATH"]
src, dst = root + "/fz/bits/base-v0", root + "/fz/bits/flip-v0"
data = open(src + "/{HDF5}", "rb").read()
rng = np.random.default_rng(0)
outcomes = {{"ok": 0, "DatasetError": 0}}
for trial in range(25):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    meta = json.load(open(dst + "/data/metadata.json"))
    meta["dataset_id"] = "fz/bits/flip-v0"
    json.dump(meta, open(dst + "/data/metadata.json", "w"))
    b = bytearray(data)
    for _ in range(3):
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
    open(dst + "/{HDF5}", "wb").write(bytes(b))
    for read in (load_offline_dataset, summarize):
        try:
            read("fz/bits/flip-v0")
            outcomes["ok"] += 1
        except DatasetError:
            outcomes["DatasetError"] += 1
print(json.dumps(outcomes))
"""
    env = {**os.environ, "OFFRL_DATASET_CACHE": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(outcomes.values()) == 50 and outcomes["DatasetError"] > 0


def test_deleted_metadata_is_reported_and_repairable(copy_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    (copy_store / BANDIT / "data/metadata.json").unlink()
    with pytest.raises(DatasetError) as err:
        load_offline_dataset(BANDIT)
    message = " ".join(str(err.value).split())
    assert "exists but" in message and "metadata.json is missing" in message and "not in the local" not in message
    assert f"offrl data make --force {BANDIT}" in message
    code, out, _ = _cli(capsys, "data", "list", "--json")
    row = {r["dataset_id"]: r for r in json.loads(out)}[BANDIT]
    assert code == 0 and row["local"] and "metadata.json is missing" in row["broken"]
    code, _, err = _cli(capsys, "data", "make", BANDIT, "--episodes", "40")
    assert code == 2 and "is broken" in err and "--force" in err and "FileExistsError" not in err
    code, _, err = _cli(capsys, "data", "make", BANDIT, "--episodes", "40", "--force")
    assert code == 0, err
    assert minari.load_dataset(BANDIT).total_episodes == 40


def test_dataset_without_environment_loads_and_says_evaluation_is_unavailable(empty_store: Path) -> None:
    rng = np.random.default_rng(1)
    write_episodes("fz/noenv/a-v0", [episode(4, 3, 2, rng, True)], BOX3, BOX2)
    meta = json.loads((empty_store / "fz/noenv/a-v0/data/metadata.json").read_text())
    assert "env_spec" not in meta and "eval_env_spec" not in meta
    ds = load_offline_dataset("fz/noenv/a-v0")
    assert ds.make_env is None and "records no environment" in ds.eval_unavailable
    assert ds.primary_metric == "return" and ds.normalized_score_100(np.ones(2)) is None


def test_equal_reference_scores_give_no_score_and_say_why(empty_store: Path) -> None:
    rng = np.random.default_rng(2)
    write_episodes("fz/refs/a-v0", [episode(4, 3, 2, rng, True)], BOX3, BOX2)
    meta_path = empty_store / "fz/refs/a-v0/data/metadata.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "ref_min_score": 1.0, "ref_max_score": 1.0}))
    ds = load_offline_dataset("fz/refs/a-v0")
    assert ds.normalized_score_100(np.array([1.0, 2.0])) is None
    assert "ref_min_score == ref_max_score" in ds.score_unavailable and ds.primary_metric == "return"


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_force_keeps_the_old_dataset_until_the_new_one_is_complete(copy_store: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import minari

    from offrl.datagen.recipes import bandit

    old = _snapshot(copy_store / BANDIT)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the new dataset is being written

    monkeypatch.setattr(minari, "create_dataset_from_buffers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bandit.make(BANDIT, episodes=30, replace=True)
    assert _snapshot(copy_store / BANDIT) == old
    assert not list(copy_store.glob(".offrl-*"))


def test_killed_force_keeps_the_old_dataset_and_its_leftovers_are_cleaned(copy_store: Path) -> None:
    """SIGKILL `offrl data make --force` while it writes: the old dataset is intact, and the next
    writer removes the dead writer's temporary store."""
    old = _snapshot(copy_store / BANDIT)
    env = {**os.environ, "MINARI_DATASETS_PATH": str(copy_store), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "offrl", "data", "make", BANDIT, "--force", "--episodes", "60000"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(copy_store.glob(".offrl-write-*/**/main_data.hdf5")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    leftovers = list(copy_store.glob(".offrl-write-*"))
    assert leftovers and all(str(proc.pid) in p.name for p in leftovers)
    assert _snapshot(copy_store / BANDIT) == old
    load_offline_dataset(BANDIT)
    from offrl.datagen.recipes import bandit

    bandit.make("offrl/bandit/other-v0", episodes=5)  # any later write cleans dead writers' leftovers
    assert not list(copy_store.glob(".offrl-write-*"))


def test_a_swap_interrupted_between_the_renames_is_restored(copy_store: Path) -> None:
    """A writer killed after moving the old dataset aside but before moving the new one in."""
    from offrl.datagen.tempdirs import owner_tag
    from offrl.datagen.writer import clean_dead_writers

    old = _snapshot(copy_store / BANDIT)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tag = owner_tag().rsplit("-", 1)[0] + "-" + dead.stdout.strip()
    tmp = copy_store / f".offrl-write-{tag}-abc123"
    (tmp / "replaced" / BANDIT).parent.mkdir(parents=True)
    (tmp / "replacing.txt").write_text(BANDIT)
    os.replace(copy_store / BANDIT, tmp / "replaced" / BANDIT)
    assert clean_dead_writers(copy_store) == [tmp]
    assert _snapshot(copy_store / BANDIT) == old and not tmp.exists()


def test_live_writers_temporaries_are_left_alone(copy_store: Path) -> None:
    from offrl.datagen.tempdirs import owner_tag
    from offrl.datagen.writer import clean_dead_writers

    live = copy_store / f".offrl-write-{owner_tag()}-xyz"
    live.mkdir()
    other_host = copy_store / ".offrl-write-otherhost-1-xyz"
    other_host.mkdir()
    assert clean_dead_writers(copy_store) == []
    assert live.exists() and other_host.exists()


@pytest.mark.parametrize("bad_id", ["fz/../../outside/bandit/ok-v0", "../fz/outside/base-v0", "/abs/path/x-v0",
                                    "fz/./x/ok-v0", "fz/.hidden/ok-v0", "fz//x-v0"])
def test_ids_never_resolve_outside_the_store(bad_id: str, copy_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a real dataset where the escaping id would point
    target = (copy_store / bad_id).resolve() if not bad_id.startswith("/") else Path(bad_id)
    if not bad_id.startswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(copy_store / BANDIT, target, dirs_exist_ok=True)
    with pytest.raises(DatasetError, match="not a Minari dataset id"):
        load_offline_dataset(bad_id)
    for action in ("info", "make", "download"):
        code, _, err = _cli(capsys, "data", action, bad_id)
        assert code == 2 and "not a Minari dataset id" in err


def test_symlinked_namespace_pointing_outside_is_refused(copy_store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(copy_store / "offrl" / "bandit", outside / "bandit")
    (copy_store / "link").symlink_to(outside)
    with pytest.raises(DatasetError, match="outside the store"):
        load_offline_dataset("link/bandit/multimodal-v0")


def test_broken_metadata_values_are_named_and_others_still_listed(copy_store: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = copy_store / "fz/badmeta/a-v0"
    shutil.copytree(copy_store / BANDIT, bad)
    meta_path = bad / "data/metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.update(dataset_id="fz/badmeta/a-v0", total_episodes="x", ref_min_score="abc")
    meta_path.write_text(json.dumps(meta))
    code, out, _ = _cli(capsys, "data", "list", "--json")
    rows = {r["dataset_id"]: r for r in json.loads(out)}
    assert code == 0 and rows[BANDIT]["episodes"] == 3000 and rows[BANDIT]["broken"] is None
    assert "total_episodes='x'" in rows["fz/badmeta/a-v0"]["broken"]
    assert "ref_min_score='abc'" in rows["fz/badmeta/a-v0"]["broken"]
    code, out, _ = _cli(capsys, "data", "list")
    assert code == 0 and "broken" in out and BANDIT in out
    for argv in (("data", "info", "fz/badmeta/a-v0"), ("data", "info", "fz/badmeta/a-v0", "--json")):
        code, out, err = _cli(capsys, *argv)
        assert code == 2 and "total_episodes='x'" in err and "ref_min_score='abc'" in err and str(meta_path) in err
    with pytest.raises(DatasetError, match="is not a finite number"):
        load_offline_dataset("fz/badmeta/a-v0")
    meta_path.write_text("{not json")
    code, out, _ = _cli(capsys, "data", "list", "--json")
    assert "not readable JSON" in {r["dataset_id"]: r for r in json.loads(out)}["fz/badmeta/a-v0"]["broken"]


def test_misspelled_builtin_suggests_the_closest_one(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = "offrl/bandit/multimodel-v0"
    with pytest.raises(DatasetError) as err:
        load_offline_dataset(typo)
    assert f"Did you mean '{BANDIT}'" in str(err.value) and "minari download" not in str(err.value)
    for action in ("info", "make", "download"):
        code, _, err_text = _cli(capsys, "data", action, typo)
        assert code == 2 and f"Did you mean '{BANDIT}'" in err_text and "download it" not in err_text.lower()


@pytest.mark.parametrize("argv", [("data", "info", BANDIT, "--json"), ("data", "list", "--json"), ("data", "info", BANDIT)])
def test_closed_pipe_exits_quietly(argv: tuple[str, ...], minari_store: Path) -> None:
    """`offrl data info ID --json | head`: the reader is gone before offrl writes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "offrl", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `head` exiting at once
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]


def test_pointmaze_eval_env_prints_no_import_notice(empty_store: Path, tmp_path: Path) -> None:
    """Building a maze dataset's evaluation env (as `offrl run` does) prints nothing of gymnasium-robotics'."""
    pytest.importorskip("gymnasium_robotics")
    from offrl.datagen.recipes import pointmaze

    pointmaze.make("offrl/pointmaze/umaze-v0", steps=300, eval_episodes=1)
    code = ("from offrl.data.dataset import load_offline_dataset\n"
            "ds = load_offline_dataset('offrl/pointmaze/umaze-v0')\n"
            "env = ds.make_env(); env.reset(seed=0); env.close()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OFFRL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout + proc.stderr)[-2000:]
