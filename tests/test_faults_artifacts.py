"""Damaged or mismatched artifacts: each is continued correctly with a warning, or refused with one message.

Checkpoints and policy files record what they belong to (seed, a fingerprint of the configuration, critic,
actor, dataset, dimensions) and are checked on load, so a file copied from another run, an edited config.json or
a damaged file is never silently trained or evaluated as something it is not (docs/reliability.md).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import offrl
from offrl.errors import DatasetError, RunDirError
from offrl.trainer.api import continue_runs
from tests.helpers import run_cli

BASE = ["run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "40", "--eval-every", "20", "--save-every",
        "20", "--eval-episodes", "2", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> dict[str, Path]:
    """Two seeds of one experiment, the same with other network sizes, and one with observation normalisation."""
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    root = tmp_path_factory.mktemp("artifacts")
    made = {
        "group": [*BASE, "--seeds", "0,1"],
        "small": [*BASE, "--set", "critic.hidden_dims=[16,16]", "--set", "actor.hidden_dims=[16,16]"],
        "norm": [*BASE, "--set", "data.normalize_obs=true"],
    }
    for name, args in made.items():
        proc = run_cli(*args, "--out", str(root / name))
        assert proc.returncode == 0, proc.stderr
    return {"seed0": root / "group" / "seed0", "seed1": root / "group" / "seed1", "small": root / "small",
            "norm": root / "norm"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for name in ("summary.json", "run.lock"):
        (dst / name).unlink(missing_ok=True)
    return dst


def _edit(path: Path, **changes: object) -> None:
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    torch.save(state, path)


def _continues_with_warning(run: Path, why: str) -> None:
    trainer = continue_runs([run])
    try:
        assert trainer.step == 20, "continued from checkpoint.prev.pt (step 20)"
        assert any(why in note and "checkpoint.pt" in note for note in trainer.notes), trainer.notes
    finally:
        trainer.release()


def _refused(run: Path, why: str) -> None:
    with pytest.raises(RunDirError, match="No usable checkpoint") as err:
        continue_runs([run])
    assert why in str(err.value), str(err.value)


# --- checkpoints ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, why", [
    ({"step": None}, "damaged: it records no step"),
    ({"step": 20.5}, "its step 20.5 is not a whole number"),
    ({"step": "40"}, "its step '40' is not a whole number"),
    ({"step": 1000}, "at step 1000, beyond this run's last step 40 (trainer.steps + online.steps)"),
    ({"seed": 1}, "written by seed 1, but this run is seed 0"),
    ({"learner": [1, 2]}, "holds no learner state"),
])
def test_a_damaged_or_foreign_checkpoint_falls_back_with_a_warning_or_is_refused(
        runs: dict[str, Path], tmp_path: Path, change: dict, why: str) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    _edit(run / "checkpoint.pt", **change)
    _continues_with_warning(run, why)
    _edit(run / "checkpoint.prev.pt", **change)
    _refused(run, why)


def test_a_checkpoint_of_another_seed_is_named(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        shutil.copy(runs["seed1"] / name, run / name)
    _refused(run, "written by seed 1, but this run is seed 0 (a checkpoint copied from another run)")


def test_a_checkpoint_of_other_network_sizes_names_the_keys(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        shutil.copy(runs["small"] / name, run / name)
    _refused(run, "written by a run with another configuration (actor.hidden_dims: [16, 16] vs [64, 64]")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):  # a checkpoint of the previous format records no config:
        _edit(run / name, format=2, belongs=None, config=None, seed=0)  # the shapes still tell
    _refused(run, "has shape [2, 4, 16] (torch.float32), this run's networks have [2, 4, 64]")


def test_a_checkpoint_from_before_new_hyperparameters_were_added_continues(runs: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    """A later offrl adds keys (at their defaults): the fingerprint differs, the recorded keys all match."""
    run = _copy(runs["seed0"], tmp_path / "run")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        state = torch.load(run / name, weights_only=True)
        state["config"]["actor"].pop("init")
        state["belongs"]["config_sha256"] = "0" * 64
        torch.save(state, run / name)
    trainer = continue_runs([run])
    try:
        assert trainer.step == 40 and trainer.notes == []
    finally:
        trainer.release()


def test_config_json_edited_after_the_checkpoint_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["trainer"]["steps"] = 10  # fewer steps than the checkpoint has
    (run / "config.json").write_text(json.dumps(config))
    _refused(run, "another configuration (trainer.steps: 40 vs 10")
    proc = run_cli("run", "--resume", str(run), "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "config.json was changed after the checkpoint was written" in proc.stderr


def test_obs_stats_of_the_wrong_size_or_damaged_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["norm"], tmp_path / "run")
    (run / "obs_stats.json").write_text(json.dumps({"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}))
    with pytest.raises(DatasetError, match=r"obs_stats.json\) hold 3 values, but .* has 2"):
        continue_runs([run])
    for bad, why in (('{"mean": [0, 0]}', "needs 'mean' and 'std'"), ('{"mean": [0, 0], "std": [1, 0]}', "positive"),
                     ("[1, 2]", "not a JSON object")):
        (run / "obs_stats.json").write_text(bad)
        with pytest.raises(RunDirError, match=f"obs_stats.json' is damaged .*{why}"):
            continue_runs([run])


# --- policy files -----------------------------------------------------------------------------------------------------
def _policy(run: Path, **changes: object) -> None:
    path = run / "policy_final.pt"
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        elif callable(value):
            value(payload)
        else:
            payload[key] = value
    torch.save(payload, path)


def _nan_weight(payload: dict) -> None:
    name = next(iter(payload["state"]))
    payload["state"][name] = torch.full_like(payload["state"][name], math.nan)


def _wrong_shape(payload: dict) -> None:
    name = next(k for k, t in payload["state"].items() if t.dim() == 2)
    payload["state"][name] = torch.zeros(3, 3)


@pytest.mark.parametrize("change, why", [
    ({"step": None}, "is damaged: it records no step"),
    ({"step": 1.5}, "its step 1.5 is not a whole number"),
    ({"obs_dim": 0}, "obs_dim is 0, not a positive size"),
    ({"action_low": [-1.0, -math.inf]}, "action_low is not 2 finite numbers"),
    ({"action_high": [-2.0, -2.0]}, "its action bounds are empty or inverted"),
    ({"obs_normalizer": {"mean": [0.0], "std": [1.0]}}, "holds statistics of 1 observation values"),
    ({"state": _nan_weight}, "holds non-finite weights"),
    ({"state": _wrong_shape}, "does not match the networks its config describes"),
    ({"config": None}, "it holds no config"),
    ({"config": lambda p: p["config"]["data"].update(dataset="offrl/other/x-v0")},
     "its config is not the one it was trained with"),
])
def test_a_damaged_policy_file_is_refused(runs: dict[str, Path], tmp_path: Path, change: dict, why: str) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    _policy(run, **change)
    with pytest.raises(RunDirError, match="policy_final.pt") as err:
        offrl.load_policy(run)
    assert why in str(err.value), str(err.value)
    proc = run_cli("eval", str(run), "--episodes", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and why in proc.stderr


def test_a_policy_file_copied_from_another_run_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["seed0"], tmp_path / "run")
    shutil.copy(runs["seed1"] / "policy_final.pt", run / "policy_final.pt")
    with pytest.raises(RunDirError, match="does not belong to the run .*trainer.seed: 1 vs 0"):
        offrl.load_policy(run)
    shutil.copy(runs["small"] / "policy_best.pt", run / "policy_best.pt")
    with pytest.raises(RunDirError, match="hidden_dims: \\[16, 16\\] vs \\[64, 64\\]"):
        offrl.load_policy(run, which="best")
    assert offrl.load_policy(runs["seed1"]).config.trainer.seed == 1  # in its own run it loads
