"""The diffusion actors end to end: every pairing, IDQL's claim on the bandit, exact resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import offrl
from offrl.actors import ACTORS
from offrl.critics import CRITICS
from offrl.trainer.api import start
from tests.helpers import read_jsonl

TINY = {"critic.hidden_dims": [32, 32], "critic.batch_size": 64, "actor.batch_size": 64,
        "trainer.eval_every": 150, "trainer.eval_episodes": 10}
TINY_ACTOR = {"gaussian-awr": {"actor.hidden_dims": [32, 32]}, "ddpg-bc": {"actor.hidden_dims": [32, 32]},
              "diffusion-resample": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8},
              "edp": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8, "actor.solver_steps": 5}}


@pytest.mark.parametrize("critic", ["expectile", "quantile", "exponential"])
@pytest.mark.parametrize("actor", ["gaussian-awr", "diffusion-resample", "edp", "ddpg-bc"])
def test_every_pairing_trains_and_evaluates(critic: str, actor: str, tmp_path: Path) -> None:
    if critic not in CRITICS or actor not in ACTORS:
        pytest.fail(f"{critic} or {actor} is not registered")
    cfg = offrl.make_config(critic=critic, actor=actor, steps=300, overrides={**TINY, **TINY_ACTOR[actor]})
    result = offrl.train(cfg, tmp_path / "run")
    assert result.finished and result.steps == 300
    evals = read_jsonl(tmp_path / "run" / "eval.jsonl")
    assert [e["step"] for e in evals] == [150, 300]
    assert all(np.isfinite(e["normalized_score_100"]) for e in evals)
    train = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert all(np.isfinite(v) for row in train for k, v in row.items() if k != "step")


def test_edp_q_gradient_guide_runs(tmp_path: Path) -> None:
    cfg = offrl.make_config(actor="edp", steps=100, overrides={**TINY, **TINY_ACTOR["edp"], "actor.guide": "q-gradient",
                                                                "trainer.eval_every": 100})
    assert offrl.train(cfg, tmp_path / "run").finished


@pytest.mark.parametrize("rule", ["implicit", "softmax"])
def test_diffusion_resample_selection_rules(rule: str, tmp_path: Path) -> None:
    cfg = offrl.make_config(actor="diffusion-resample", critic="quantile", steps=100,
                            overrides={**TINY, **TINY_ACTOR["diffusion-resample"], "actor.selection": rule,
                                       "trainer.eval_every": 100})
    assert offrl.train(cfg, tmp_path / "run").finished


def test_paper_sized_networks_one_step(tmp_path: Path) -> None:
    """The IDQL (LN-ResNet 256×3, ×4, dropout) and EDP (T=1000, DPM-Solver) presets build, update and act."""
    for preset in ("idql-a-locomotion", "edp-iql-locomotion"):
        cfg = offrl.make_config(preset=preset, dataset="offrl/bandit/multimodal-v0", steps=1,
                                overrides={"data.reward": "none", "trainer.eval_episodes": 2})
        result = offrl.train(cfg, tmp_path / preset)
        assert result.finished and result.summary["final_return"] is not None


class _Crash(Exception):
    pass


def test_diffusion_actor_resume_is_exact(tmp_path: Path) -> None:
    """EMA weights, optimiser, LR schedule and RNGs survive a crash: resumed == uninterrupted."""
    overrides = {**TINY, **TINY_ACTOR["diffusion-resample"], "trainer.eval_every": 30, "trainer.save_every": 20,
                 "trainer.log_every": 10}
    cfg = offrl.make_config(actor="diffusion-resample", steps=60, overrides=overrides)
    offrl.train(cfg, tmp_path / "a")

    trainer = start(cfg, tmp_path / "b")
    train = trainer.learner.train

    def crashing(n: int) -> None:  # dies mid-way between the step-40 checkpoint and the end
        if trainer.step >= 40:
            raise _Crash
        train(n)

    trainer.learner.train = crashing  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        trainer.run()
    offrl.resume(tmp_path / "b")

    def logs(d: Path) -> list:
        return [{k: v for k, v in r.items() if k != "time_s"} for f in ("train.jsonl", "eval.jsonl")
                for r in read_jsonl(d / f)]

    assert logs(tmp_path / "b") == logs(tmp_path / "a")


def test_idql_beats_awr_on_the_multimodal_bandit(tmp_path: Path) -> None:
    """IDQL's central claim: with equal budgets (bandit preset) and seeds, critic-resampled diffusion
    clearly beats the AWR Gaussian, which averages the two good modes onto the poor midpoint."""
    scores: dict[str, list[float]] = {}
    for actor in ("diffusion-resample", "gaussian-awr"):
        for seed in range(3):
            cfg = offrl.make_config(preset="bandit", actor=actor, seed=seed, steps=1500,
                                    overrides={"trainer.eval_every": 1500, "trainer.eval_episodes": 50})
            scores.setdefault(actor, []).append(offrl.train(cfg, tmp_path / f"{actor}{seed}").summary["final_score_100"])
    diffusion, awr = np.mean(scores["diffusion-resample"]), np.mean(scores["gaussian-awr"])
    assert diffusion > awr + 25, scores
