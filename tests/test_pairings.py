"""Every critic with every actor (7 × 7 = 49 pairings) trains and evaluates end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import offrl
from offrl.actors import ACTORS
from offrl.critics import CRITICS
from offrl.presets import PRESETS
from tests.helpers import read_jsonl

CRITIC_NAMES = ["expectile", "quantile", "exponential", "sarsa", "td3", "cql", "calql"]
ACTOR_NAMES = ["gaussian-awr", "ddpg-bc", "diffusion-resample", "edp", "fql", "flow-resample", "sac"]
TINY = {"critic.hidden_dims": [32, 32], "critic.batch_size": 64, "actor.batch_size": 64,
        "trainer.eval_every": 100, "trainer.eval_episodes": 10, "trainer.log_every": 50}
TINY_ACTOR = {"gaussian-awr": {"actor.hidden_dims": [32, 32]}, "ddpg-bc": {"actor.hidden_dims": [32, 32]},
              "diffusion-resample": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8},
              "edp": {"actor.hidden": 32, "actor.depth": 1, "actor.num_samples": 8, "actor.solver_steps": 5},
              "fql": {"actor.hidden_dims": [32, 32], "actor.flow_steps": 5},
              "flow-resample": {"actor.hidden_dims": [32, 32], "actor.num_samples": 8, "actor.flow_steps": 5},
              "sac": {"actor.hidden_dims": [32, 32]}}


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


def test_every_preset_resolves_with_every_critic() -> None:
    """Keys only the IQL family has (V's) are scoped to it, so --critic sarsa / td3 work with any preset."""
    for preset in PRESETS:
        family = preset.obj.dataset_family
        dataset = f"mine/{family}-v0" if family else None  # the data of their family
        for critic in CRITIC_NAMES:
            assert offrl.make_config(preset=preset.name, critic=critic, dataset=dataset).critic == critic


def test_the_new_presets_carry_their_papers_settings() -> None:
    td3bc = offrl.make_config(preset="td3bc-locomotion")
    c, a = td3bc.critic_cfg, td3bc.actor_cfg
    assert (td3bc.critic, td3bc.actor, a.update_every, a.q_agg, a.bc_reduction) == ("td3", "ddpg-bc", 2, "q1", "mean")
    assert (c.policy_noise, c.noise_clip, c.q_agg) == (0.2, 0.5, "min")
    assert td3bc.data.normalize_obs and td3bc.data.reward == "none"
    rebrac = offrl.make_config(preset="rebrac-locomotion")
    assert rebrac.critic_cfg.layer_norm and rebrac.critic_cfg.alpha_critic > 0 and rebrac.critic_cfg.batch_size == 1024
    alphas = {f: offrl.make_config(preset=f"fql-ogbench-{f}", dataset=f"mine/{f}-v0").actor_cfg.alpha
              for f in ("antmaze", "humanoidmaze", "cube", "scene", "puzzle")}
    assert alphas == {"antmaze": 10, "humanoidmaze": 30, "cube": 300, "scene": 300, "puzzle": 1000}
    fql = offrl.make_config(preset="fql-ogbench-cube")
    assert (fql.critic_cfg.policy_noise, fql.critic_cfg.q_agg, fql.critic_cfg.hidden_dims) == (0.0, "mean", (512,) * 4)
    assert fql.critic_cfg.layer_norm and fql.trainer.steps == 1_000_000
    ifql = offrl.make_config(preset="ifql")
    assert (ifql.critic_cfg.tau, ifql.actor, ifql.actor_cfg.num_samples) == (0.9, "flow-resample", 32)
