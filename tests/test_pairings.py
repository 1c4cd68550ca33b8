"""Every critic with every actor (5 × 6 = 30 pairings) trains and evaluates end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import offrl
from offrl.actors import ACTORS
from offrl.critics import CRITICS
from tests.helpers import read_jsonl

CRITIC_NAMES = ["expectile", "quantile", "exponential", "sarsa", "td3"]
ACTOR_NAMES = ["gaussian-awr", "ddpg-bc", "diffusion-resample", "edp", "fql", "flow-resample"]
TINY = {"critic.hidden_dims": [32, 32], "critic.batch_size": 64, "actor.batch_size": 64,
        "trainer.eval_every": 100, "trainer.eval_episodes": 10, "trainer.log_every": 50}
TINY_ACTOR = {"gaussian-awr": {"actor.hidden_dims": [32, 32]}, "ddpg-bc": {"actor.hidden_dims": [32, 32]},
              "diffusion-resample": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8},
              "edp": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8, "actor.solver_steps": 5},
              "fql": {"actor.hidden_dims": [32, 32], "actor.flow_steps": 5},
              "flow-resample": {"actor.hidden_dims": [32, 32], "actor.num_samples": 8, "actor.flow_steps": 5}}


def test_the_grid_is_every_built_in_component() -> None:
    built_in = lambda registry: sorted(e.name for e in registry if e.obj.__module__.startswith("offrl."))  # noqa: E731
    assert built_in(CRITICS) == sorted(CRITIC_NAMES)
    assert built_in(ACTORS) == sorted(ACTOR_NAMES)


@pytest.mark.parametrize("critic", CRITIC_NAMES)
@pytest.mark.parametrize("actor", ACTOR_NAMES)
def test_every_pairing_trains_and_evaluates(critic: str, actor: str, tmp_path: Path) -> None:
    cfg = offrl.make_config(critic=critic, actor=actor, steps=100, overrides={**TINY, **TINY_ACTOR[actor]})
    result = offrl.train(cfg, tmp_path / "run")
    assert result.finished and result.steps == 100
    evals = read_jsonl(tmp_path / "run" / "eval.jsonl")
    assert [e["step"] for e in evals] == [100] and np.isfinite(evals[0]["normalized_score_100"])
    train = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert [r["step"] for r in train] == [50, 100]
    assert all(np.isfinite(v) for row in train for k, v in row.items() if k != "step")
    assert any(k.startswith("critic/") for k in train[-1]) and any(k.startswith("actor/") for k in train[-1])
