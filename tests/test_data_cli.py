"""`offrl data list | info | download | make` through the real CLI entry point."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offrl.cli.main import main

BANDIT = "offrl/bandit/multimodal-v0"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_builtins_and_local_state(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "list", "--json")
    assert code == 0
    rows = {r["dataset_id"]: r for r in json.loads(out)}
    for dataset_id in ("offrl/pointmaze/umaze-v0", "offrl/pointmaze/large-v0", "offrl/hopper/medium-replay-v0",
                       "offrl/walker2d/medium-expert-v0", "offrl/halfcheetah/random-v0", BANDIT):
        assert rows[dataset_id]["builtin"]
    assert rows[BANDIT]["local"] and rows[BANDIT]["episodes"] == 3000
    assert not rows["offrl/hopper/expert-v0"]["local"]
    assert rows["offrl/hopper/expert-v0"]["extra"] == "datagen"
    assert rows["offrl/pointmaze/umaze-v0"]["extra"] == "maze"
    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0 and BANDIT in out


def test_list_shows_other_local_datasets(copy_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(copy_store / BANDIT, copy_store / "someone/bandit/copy-v1")
    meta_path = copy_store / "someone/bandit/copy-v1/data/metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["dataset_id"] = "someone/bandit/copy-v1"
    meta_path.write_text(json.dumps(meta))
    rows = {r["dataset_id"]: r for r in json.loads(run_cli(capsys, "data", "list", "--json")[1])}
    assert rows["someone/bandit/copy-v1"] == {**rows["someone/bandit/copy-v1"], "builtin": False, "local": True}


def test_info_reports_size_returns_refs_and_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "info", BANDIT, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["episodes"] == 3000 and info["transitions"] == 3000
    assert info["terminations"] == 3000 and info["truncations"] == 0
    assert info["return_min"] <= info["return_mean"] <= info["return_max"]
    assert info["ref_min_score"] < info["ref_max_score"]
    assert info["recipe"]["recipe"] == "offrl.datagen.recipes.bandit"
    assert "Box" in info["observation_space"] and "Box" in info["action_space"]
    code, out, _ = run_cli(capsys, "data", "info", BANDIT)
    assert code == 0
    for word in ("episodes", "transitions", "reference scores", "episode return", "recipe"):
        assert word in out


def test_info_on_missing_dataset_says_how_to_get_it(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "data", "info", "offrl/pointmaze/umaze-v0")
    assert code == 2 and "offrl data make offrl/pointmaze/umaze-v0" in " ".join(err.split())
    code, _, err = run_cli(capsys, "data", "info", "mujoco/hopper/medium-v0")
    assert code == 2 and "download" in err
    code, _, err = run_cli(capsys, "data", "info", "not-an-id")
    assert code == 2 and "Minari dataset id" in err


def test_make_bandit_quick_force_and_budget_flags(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    code, _, err = run_cli(capsys, "data", "make", BANDIT, "--quick", "--seed", "3")
    assert code == 0, err
    ds = minari.load_dataset(BANDIT)
    assert ds.total_episodes == 500 and ds.storage.metadata["offrl_recipe"]["seed"] == 3
    code, _, err = run_cli(capsys, "data", "make", BANDIT)
    assert code == 2 and "--force" in err
    code, _, err = run_cli(capsys, "data", "make", BANDIT, "--force", "--episodes", "120")
    assert code == 0, err
    assert minari.load_dataset(BANDIT).total_episodes == 120
    code, _, err = run_cli(capsys, "data", "make", BANDIT, "--force", "--sac-steps", "5")
    assert code == 2 and "no budget option --sac-steps" in " ".join(err.split())
    code, _, err = run_cli(capsys, "data", "make", "offrl/pointmaze/umazee-v0")
    assert code == 2 and "Did you mean 'offrl/pointmaze/umaze-v0'" in " ".join(err.split())
    code, _, err = run_cli(capsys, "data", "make", BANDIT, "--force", "--workers", "2")
    assert code == 2 and "generated in one process" in " ".join(err.split())
    code, _, err = run_cli(capsys, "data", "make", BANDIT, "--force", "--workers", "0")
    assert code == 2 and "--workers must be positive" in " ".join(err.split())
    code, _, err = run_cli(capsys, "data", "make", "mujoco/hopper/medium-v0")
    assert code == 2 and "offrl data download mujoco/hopper/medium-v0" in " ".join(err.split())


def test_make_pointmaze_via_cli(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gymnasium_robotics")
    import minari

    code, out, err = run_cli(capsys, "data", "make", "offrl/pointmaze/large-v0", "--steps", "800", "--eval-episodes", "2")
    assert code == 0, err
    ds = minari.load_dataset("offrl/pointmaze/large-v0")
    assert ds.total_steps == 800
    assert ds.storage.metadata["offrl_recipe"]["budget"] == {"steps": 800, "eval_episodes": 2}
    assert "controller success rate" in out


def test_make_names_the_missing_extra(empty_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "stable_baselines3" else real(name, *a))
    code, _, err = run_cli(capsys, "data", "make", "offrl/hopper/medium-v0", "--quick")
    assert code == 2 and "offrl[datagen]" in err


def test_download_fails_fast_with_offline_flag(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "data", "download", "D4RL/pointmaze/umaze-v2")  # conftest sets HF_HUB_OFFLINE=1
    assert time.perf_counter() - start < 5
    assert code == 2 and "HF_HUB_OFFLINE" in err and "offrl data make" in " ".join(err.split())


def test_download_fails_fast_when_hub_unreachable(
    empty_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No offline flag: the reachability probe, not Minari's ~23 s retry loop, gives the answer."""
    pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "data", "download", "D4RL/pointmaze/umaze-v2")
    assert time.perf_counter() - start < 5
    assert code == 2 and "unreachable" in err


def test_download_fails_fast_on_this_machine(
    empty_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real endpoint, no offline flag: on a machine without internet this fails in seconds."""
    pytest.importorskip("huggingface_hub")
    from offrl.data.download import probe_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    if probe_hub() is None:
        pytest.skip("this machine can reach the Hugging Face Hub")
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "data", "download", "D4RL/pointmaze/umaze-v2")
    assert time.perf_counter() - start < 5 and code == 2 and "unreachable" in err


def test_download_without_hub_client_names_the_extra(
    empty_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, _, err = run_cli(capsys, "data", "download", "D4RL/pointmaze/umaze-v2")
    assert code == 2 and "offrl[hf]" in err and "minari[hf]" in err


def test_download_of_local_or_builtin_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "download", BANDIT)
    assert code == 0 and "already" in out
    code, _, err = run_cli(capsys, "data", "download", "offrl/pointmaze/umaze-v0")
    assert code == 2 and "offrl data make offrl/pointmaze/umaze-v0" in " ".join(err.split())


def test_made_dataset_normalises_with_minari(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    assert run_cli(capsys, "data", "make", BANDIT, "--episodes", "50")[0] == 0
    ds = minari.load_dataset(BANDIT)
    lo, hi = ds.storage.metadata["ref_min_score"], ds.storage.metadata["ref_max_score"]
    assert minari.get_normalized_score(ds, np.array([lo, hi])) == pytest.approx([0.0, 1.0])


def test_recipes_register_without_optional_packages(tmp_path: Path) -> None:
    """Listing and registration never import gymnasium-robotics, stable-baselines3 or ogbench."""
    import subprocess

    code = (
        "import sys\n"
        "sys.modules['gymnasium_robotics'] = None\n"
        "sys.modules['stable_baselines3'] = None\n"
        "sys.modules['ogbench'] = None\n"
        "from offrl.cli.main import main\n"
        "from offrl.datagen.builtins import BUILTIN_DATASETS\n"
        "assert 'offrl/pointmaze/large-v0' in BUILTIN_DATASETS and 'offrl/walker2d/medium-replay-v0' in BUILTIN_DATASETS\n"
        "sys.exit(main(['data', 'list', '--json']))\n"
    )
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "offrl/hopper/expert-v0" in proc.stdout and "offrl/ogbench/puzzle-4x4-play-singletask-task5-v0" in proc.stdout
