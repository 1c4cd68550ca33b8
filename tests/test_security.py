"""A run folder is data: nothing in one that offrl reads back runs code, or makes offrl read or write elsewhere.

Each test plants a payload that writes a marker file (a pickled object whose ``__reduce__`` opens a file, a
plugin ``.py`` beside a policy file, a ``group.json`` or a link pointing outside the folder) and asserts that the
marker is never written and the user gets one clear message — docs/reliability.md, "What is loaded as data".
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import offrl
from offrl.errors import ConfigError, RunDirError
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "40", "--eval-every", "20", "--save-every", "20",
       "--eval-episodes", "2", "--quiet"]


class _Payload:
    """Unpickling this object creates ``marker`` (what any code run by a crafted pickle could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def _clean(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _tree(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != "run.lock":  # taking the lock is not a change to the run
            h.update(str(p.relative_to(d)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    out = tmp_path_factory.mktemp("security") / "run"
    _clean(run_cli(*RUN, "--out", str(out)), 0)
    return out


def _unfinished(finished: Path, dst: Path) -> Path:
    shutil.copytree(finished, dst)
    (dst / "summary.json").unlink()
    (dst / "run.lock").unlink(missing_ok=True)
    return dst


# --- checkpoints are loaded as data ------------------------------------------------------------------------------
def _tamper(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["learner"]["extra"] = _Payload(marker)
    torch.save(state, path)  # the default pickler: what a crafted file holds


def test_a_pickled_payload_in_the_checkpoint_is_never_run(finished: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = _unfinished(finished, tmp_path / "run")
    _tamper(run / "checkpoint.pt", marker)
    proc = run_cli("run", "--resume", str(run), "--quiet")
    _clean(proc, 0)  # continued from checkpoint.prev.pt, with a warning naming the refused file
    assert not marker.exists()
    assert "warning: not used:" in proc.stderr and "checkpoint.pt: holds Python objects" in proc.stderr


def test_both_checkpoints_tampered_is_one_message_and_nothing_runs(finished: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = _unfinished(finished, tmp_path / "run")
    _tamper(run / "checkpoint.pt", marker)
    _tamper(run / "checkpoint.prev.pt", marker)
    before = _tree(run)
    proc = run_cli("run", "--resume", str(run), "--quiet")
    _clean(proc)
    assert not marker.exists()
    assert "No usable checkpoint" in proc.stderr and "checkpoint.prev.pt: holds Python objects" in proc.stderr
    assert _tree(run) == before


def test_a_checkpoint_holds_only_plain_data(finished: Path) -> None:
    from offrl.trainer.checkpoint import plain

    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    gen = state["learner"]["generator"]
    assert state["format"] == 3 and state["belongs"]["seed"] == 0 and gen["state"].dtype == torch.uint8
    assert gen["device_type"] == "cpu"
    assert plain({"a": (1, 2), "b": __import__("numpy").float64(0.5)}) == {"a": [1, 2], "b": 0.5}
    with pytest.raises(TypeError, match="not plain data"):
        plain({"x": object()})


# --- plugins named in a run folder are never imported --------------------------------------------------------------
EVIL = "open({marker!r}, 'w').write('imported')\n"


def _plant_plugin(run: Path, marker: Path, critic: str | None = None) -> None:
    """A ``.py`` beside the run's files and the run's config.json / policy files naming it as their plugin."""
    (run / "evil_plugin.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((run / "config.json").read_text())
    config["plugins"] = ["evil_plugin"]
    if critic:
        config["critic"]["name"] = critic
    (run / "config.json").write_text(json.dumps(config))
    for which in ("final", "best"):
        payload = torch.load(run / f"policy_{which}.pt", weights_only=True)
        payload["config"]["plugins"] = ["evil_plugin"]
        if critic:  # a crafted file is consistent: it records the fingerprint of its own config
            from offrl.config import fingerprint

            payload["config"]["critic"]["name"] = critic
            payload["belongs"].update(critic=critic, config_sha256=fingerprint(payload["config"]))
        torch.save(payload, run / f"policy_{which}.pt")


def test_eval_and_load_policy_never_import_a_plugin_the_policy_file_names(finished: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = tmp_path / "downloaded"
    shutil.copytree(finished, run)
    _plant_plugin(run, marker)
    # `python -m offrl` puts the working directory on sys.path: the plugin is importable from the run folder
    proc = subprocess.run([sys.executable, "-m", "offrl", "eval", ".", "--episodes", "2"], cwd=run,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    _clean(proc, 0)  # its critic and actor are built in: it evaluates, without the plugin
    assert not marker.exists()
    sys.path.insert(0, str(run))
    try:
        policy = offrl.load_policy(run)
        assert policy.config.plugins == ("evil_plugin",)  # recorded, not imported
        assert not marker.exists() and "evil_plugin" not in sys.modules
    finally:
        sys.path.remove(str(run))


def test_a_policy_that_needs_its_plugin_says_so_and_imports_nothing(finished: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = tmp_path / "downloaded"
    shutil.copytree(finished, run)
    _plant_plugin(run, marker, critic="evil-critic")
    proc = subprocess.run([sys.executable, "-m", "offrl", "eval", "."], cwd=run, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    _clean(proc)
    assert not marker.exists()
    assert "critic 'evil-critic' from plugin 'evil_plugin', which is not loaded" in proc.stderr
    assert "--plugin evil_plugin" in proc.stderr
    with pytest.raises(ConfigError, match=r"plugins=\['evil_plugin'\]"):
        offrl.load_policy(run)
    assert not marker.exists()


def test_resume_never_imports_a_plugin_config_json_names(finished: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    run = _unfinished(finished, tmp_path / "downloaded")
    _plant_plugin(run, marker, critic="evil-critic")
    proc = subprocess.run([sys.executable, "-m", "offrl", "run", "--resume", ".", "--quiet"], cwd=run,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    _clean(proc)
    assert not marker.exists()
    assert "from plugin 'evil_plugin', which is not loaded" in proc.stderr
    assert "offrl run --resume . --plugin evil_plugin" in proc.stderr
    # the user asking is enough: --plugin imports it (and then the run's own critic name is what is missing)
    asked = subprocess.run([sys.executable, "-m", "offrl", "run", "--resume", ".", "--plugin", "evil_plugin",
                            "--quiet"], cwd=run, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    _clean(asked)
    assert marker.exists() and "Unknown critic 'evil-critic'" in asked.stderr


# --- paths read from files stay inside their folder ------------------------------------------------------------------
@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_group_json_pointing_outside_is_refused(finished: Path, tmp_path: Path, where: str) -> None:
    elsewhere = _unfinished(finished, tmp_path / "elsewhere")
    before = _tree(elsewhere)
    group = tmp_path / "a" / "b" / "group"
    group.mkdir(parents=True)
    if where == "symlink":
        (group / "seed0").symlink_to(elsewhere)
        named = "seed0"
    else:
        named = "../../../elsewhere" if where == "dotdot" else str(elsewhere)
    (group / "group.json").write_text(json.dumps({"seeds": [0], "run_dirs": [named]}))
    proc = run_cli("run", "--resume", str(group), "--quiet")
    _clean(proc)
    assert f"'{group / 'group.json'}' names" in proc.stderr, proc.stderr
    assert "outside" in proc.stderr or "not a path inside" in proc.stderr, proc.stderr
    assert _tree(elsewhere) == before and not (elsewhere / "summary.json").exists()
    with pytest.raises(RunDirError, match="group.json"):
        offrl.resume(group)


def test_a_damaged_group_json_is_named(tmp_path: Path) -> None:
    group = tmp_path / "group"
    group.mkdir()
    (group / "group.json").write_text('{"seeds": [0, 1], "run_dirs": ')
    proc = run_cli("run", "--resume", str(group), "--quiet")
    _clean(proc)
    assert f"'{group / 'group.json'}' is damaged" in proc.stderr


def test_links_among_a_runs_files_are_never_followed(finished: Path, tmp_path: Path) -> None:
    """A run.lock linked to a file of the user's would be truncated by taking the lock; a log linked elsewhere
    would be appended to."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    run = _unfinished(finished, tmp_path / "downloaded")
    (run / "run.lock").symlink_to(victim)
    proc = run_cli("run", "--resume", str(run), "--quiet")
    _clean(proc)
    assert "run.lock' is a symbolic link" in proc.stderr and victim.read_text() == "keep me"
    (run / "run.lock").unlink()
    (run / "train.jsonl").unlink()
    (run / "train.jsonl").symlink_to(tmp_path / "created-outside.jsonl")
    proc = run_cli("run", "--resume", str(run), "--quiet")
    _clean(proc)
    assert "train.jsonl' is a symbolic link" in proc.stderr and not (tmp_path / "created-outside.jsonl").exists()


def test_a_sweep_whose_runs_folder_leads_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "runs").symlink_to(outside)
    proc = run_cli("sweep", "--steps", "5", "--out", str(sweep), "--no-live")
    _clean(proc)
    assert "leads outside" in proc.stderr and not any(outside.iterdir())


def test_report_skips_run_files_that_lead_outside(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    shutil.copytree(finished, root / "runs" / "good")
    (root / "runs" / "linked").mkdir(parents=True)
    (root / "runs" / "linked" / "config.json").symlink_to(finished / "config.json")
    proc = run_cli("report", str(root), "--out", str(tmp_path / "report"), "--no-plots")
    _clean(proc, 0)
    assert "linked" in proc.stdout and "symbolic link" in proc.stdout
    runs = (tmp_path / "report" / "runs.csv").read_text()
    assert "good" in runs and "linked" not in runs
