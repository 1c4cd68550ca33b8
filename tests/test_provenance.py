"""Provenance (``provenance.json``) and the report's configuration grouping (issue 26, item 4)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import offrl
from offrl import provenance
from offrl.config import fingerprint
from offrl.report.collect import collect
from offrl.report.configs import config_hash, differing_keys

from test_report import make_run

TINY = {"critic.hidden_dims": [32, 32], "actor.hidden_dims": [32, 32], "critic.batch_size": 64,
        "actor.batch_size": 64, "trainer.eval_episodes": 4, "trainer.eval_envs": 2, "trainer.compile": "off"}


def test_collect_records_versions_command_host_and_device() -> None:
    info = provenance.collect("cpu", argv=["offrl", "run", "--steps", "5"])
    assert info["offrl_version"] == offrl.__version__
    assert info["python"].count(".") == 2
    assert info["packages"]["numpy"] and info["packages"]["torch"]
    assert set(provenance.PACKAGES) <= set(info["packages"])  # missing ones recorded as None, not left out
    assert info["command"] == ["offrl", "run", "--steps", "5"]
    assert info["device"] == "cpu" and info["host"]
    json.dumps(info, allow_nan=False)  # strict JSON


def test_git_commit_of_a_checkout_and_none_outside_one(tmp_path: Path) -> None:
    assert provenance.git_commit(tmp_path / "pkg" / "offrl") is None  # no .git above: an installed wheel
    here = Path(offrl.__file__).resolve().parent
    got = provenance.git_commit(here)
    if (here.parent / ".git").exists():
        assert got is not None and len(got["commit"]) == 40
    else:
        assert got is None


def test_a_run_writes_provenance_atomically_and_resume_appends(tmp_path: Path) -> None:
    cfg = offrl.make_config(preset="bandit", actor="gaussian-awr", steps=20, overrides=TINY)
    run = tmp_path / "run"
    offrl.train(cfg, run)
    data = json.loads((run / provenance.PROVENANCE).read_text())
    assert data["offrl_version"] == offrl.__version__
    assert data["device"] == "cpu" and data["command"] == sys.argv
    assert data["packages"]["torch"]
    assert not list(run.glob(".*.tmp"))
    saved = json.loads((run / "config.json").read_text())
    assert "provenance" not in saved and "host" not in json.dumps(saved)  # not part of the config (nor its hash)
    assert fingerprint(saved) == fingerprint(cfg.for_seed(cfg.trainer.seed))


def test_resume_appends_an_entry(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    provenance.record(run, "cpu")
    provenance.record(run, "cuda:0", resumed=True)
    data = provenance.read(run)
    assert data["device"] == "cpu" and [r["device"] for r in data["resumes"]] == ["cuda:0"]


def test_config_hash_ignores_seed_device_workers_and_logging() -> None:
    base = {"critic": {"name": "expectile", "tau": 0.7}, "actor": {"name": "edp"}, "data": {"dataset": "d"},
            "trainer": {"steps": 600, "seed": 0, "device": "cpu", "eval_workers": 1, "log_every": 100,
                        "save_every": 300, "threads": 1}, "offrl_version": "0.1.0"}
    other = json.loads(json.dumps(base))
    other["trainer"].update(seed=3, device="cuda", eval_workers=4, log_every=7, save_every=9, threads=8)
    other["offrl_version"] = "9.9"
    assert config_hash(base) == config_hash(other)
    longer = json.loads(json.dumps(base))
    longer["trainer"]["steps"] = 1000
    assert config_hash(base) != config_hash(longer)
    assert differing_keys([base, other, longer]) == ["trainer.steps"]


def _set_steps(run_dir: Path, steps: int) -> None:
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["trainer"]["steps"] = steps
    (run_dir / "config.json").write_text(json.dumps(cfg))


def test_report_does_not_pool_600_and_1000_step_runs(tmp_path: Path) -> None:
    """The issue's case: 600- and 1000-step runs of one pairing were merged into one 7-run row."""
    for seed in range(4):
        _set_steps(make_run(tmp_path, "expectile", "edp", "offrl/bandit/multimodal-v0", seed,
                            [(10, 50.0), (20, 60.0)], name=f"short{seed}"), 600)
    for seed in range(3):
        _set_steps(make_run(tmp_path, "expectile", "edp", "offrl/bandit/multimodal-v0", seed,
                            [(10, 70.0), (20, 80.0)], name=f"long{seed}"), 1000)
    got = collect([tmp_path])
    pairings = got.runs.groupby("pairing")["run"].count().to_dict()
    assert pairings == {"expectile+edp [trainer.steps=600]": 4, "expectile+edp [trainer.steps=1000]": 3}
    flagged = [reason for _, reason in got.notes if "not pooled" in reason]
    assert len(flagged) == 1 and "trainer.steps" in flagged[0] and "7 runs" in flagged[0]


def test_report_pools_seeds_of_one_config_without_a_note(tmp_path: Path) -> None:
    for seed in range(3):
        make_run(tmp_path, "expectile", "edp", "offrl/bandit/multimodal-v0", seed, [(10, 50.0), (20, 60.0)])
    got = collect([tmp_path])
    assert set(got.runs["pairing"]) == {"expectile+edp"}
    assert not [n for n in got.notes if "not pooled" in n[1]]


@pytest.mark.parametrize("key", ["trainer.device"])
def test_runtime_differences_are_pooled(tmp_path: Path, key: str) -> None:
    for seed, device in enumerate(["cpu", "cuda"]):
        run = make_run(tmp_path, "expectile", "edp", "offrl/bandit/multimodal-v0", seed, [(10, 50.0)])
        cfg = json.loads((run / "config.json").read_text())
        cfg["trainer"]["device"] = device
        (run / "config.json").write_text(json.dumps(cfg))
    assert set(collect([tmp_path]).runs["pairing"]) == {"expectile+edp"}
