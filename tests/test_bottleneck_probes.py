"""The bottleneck probes: reference errors, visited episodes and returns, diagnostics, OPEX, TTT."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from offrl.bottleneck.diagnostics import diagnose
from offrl.bottleneck.probe import ProbeData
from offrl.bottleneck.reference import BestActions, bandit_reference
from offrl.bottleneck.testtime import SeedTables, opex_actions, ttt_adapt
from offrl.bottleneck.visits import VisitRecorder, reward_affine
from offrl.data.transitions import TransitionArrays
from offrl.learner import acting
from offrl.learner.members import Agent, StackedAgents

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------ stand-ins


class LinearQ(nn.Module):
    """Q(s, a) = w · a (target and online alike)."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return (act * self.w).sum(-1)


class BowlQ(nn.Module):
    """Q(s, a) = −‖a − c‖²: the best action is c."""

    def __init__(self, c: list[float]) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return -((act - self.c) ** 2).sum(-1)


class ConstantActor(nn.Module):
    """Acts with ``a`` at every state."""

    def __init__(self, a: list[float]) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def act_noise(self, n: int) -> dict:
        return {}

    def act(self, obs: torch.Tensor, critic: Any, noise: dict) -> torch.Tensor:
        return self.a.expand(obs.shape[0], -1)


def stack_of(*agents: Agent) -> StackedAgents:
    stack = StackedAgents(list(agents), CPU)
    stack.seal()
    return stack


def act(stack: StackedAgents, obs: torch.Tensor, gens: list) -> torch.Tensor:
    return acting.act(stack, obs, gens, CPU)


# ------------------------------------------------------------------------------------ references


def test_best_actions_error_is_to_the_nearest_best_mode() -> None:
    ref = BestActions(np.array([[-0.7, 0.0], [0.7, 0.0]]))
    err = ref.errors(np.zeros((3, 2)), np.array([[0.6, 0.1], [0.0, 0.0], [-0.7, 0.0]]))
    assert err == pytest.approx([0.01, 0.245, 0.0])
    bandit = bandit_reference()
    assert sorted(bandit.best[:, 0].tolist()) == [-0.7, 0.7]  # the two modes paying 1.0


def test_pointmaze_reference_reads_flattened_observations() -> None:
    from offrl.bottleneck.reference import MazeController
    from offrl.data.flatten import flatten_obs
    from offrl.datagen.recipes.pointmaze import controller_for, maze_for

    dataset_id = "offrl/pointmaze/umaze-v0"
    rng = np.random.default_rng(0)
    obs = [{"achieved_goal": rng.uniform(-1, 1, 2), "desired_goal": rng.uniform(-1, 1, 2),
            "observation": rng.uniform(-1, 1, 4)} for _ in range(5)]
    for o in obs:
        o["achieved_goal"] = o["observation"][:2]
    flat = np.stack([flatten_obs(o) for o in obs])
    expected = np.stack([controller_for(maze_for(dataset_id)).act_on_obs(o) for o in obs])
    assert np.allclose(MazeController(dataset_id)()(flat), expected)


def test_which_reference_each_dataset_gets() -> None:
    from types import SimpleNamespace

    from offrl.bottleneck.reference import DATASET_ACTION, reference_for
    from offrl.data.preprocess import ActionScaler, ObsNormalizer

    def dataset(recipe: str | None) -> SimpleNamespace:
        return SimpleNamespace(metadata={"offrl_recipe": {"recipe": recipe}} if recipe else {},
                               dataset_id="offrl/pointmaze/umaze-v0", obs_normalizer=ObsNormalizer.identity(8),
                               action_scaler=ActionScaler(-np.ones(2), np.ones(2)))

    assert isinstance(reference_for(dataset("offrl.datagen.recipes.bandit"), "auto")[0], BestActions)
    assert reference_for(dataset("offrl.datagen.recipes.bandit"), "dataset") == (None, DATASET_ACTION)
    ref, name = reference_for(dataset("offrl.datagen.recipes.pointmaze"), "auto")
    assert ref is not None and "controller" in name
    ref, name = reference_for(dataset("offrl.datagen.recipes.ogbench"), "auto")
    assert ref is None and "oracles plan over the simulator state" in name
    assert reference_for(dataset(None), "auto") == (None, DATASET_ACTION)  # a downloaded dataset


# ------------------------------------------------------------------------------------ visits


def record(recorder: VisitRecorder, rewards: list[list[float]], terms: list[list[bool]], counted: int) -> None:
    """One round of ``len(rewards[0])`` envs: step t gives rewards[t], terminated terms[t]; an env stays live
    until its first termination (or the round's end, a truncation)."""
    n = len(rewards[0])
    recorder.round(counted)
    done = np.zeros(n, bool)
    for t, (r, term) in enumerate(zip(rewards, terms)):
        obs = np.full((n, 1), float(t))
        recorder.step(obs, np.full((n, 1), 0.5), np.asarray(r), obs + 1, np.asarray(term), ~done)
        done |= np.asarray(term)


def test_recorder_keeps_counted_episodes_and_monte_carlo_returns() -> None:
    rec = VisitRecorder(members=1, num_envs=2)
    # env 0 terminates at step 2 (3 steps); env 1 is padding (not counted) in this round
    record(rec, [[1, 9], [2, 9], [4, 9], [0, 9]], [[False] * 2, [False] * 2, [True, False], [False, False]], counted=1)
    # a second round counting both envs: two truncated 3-step episodes (never terminated)
    record(rec, [[1, 1], [1, 1], [1, 1]], [[False] * 2] * 3, counted=2)
    rec.finish()
    assert [len(ep) for ep in rec.episodes[0]] == [3, 3, 3]
    assert [ep.terminated for ep in rec.episodes[0]] == [True, False, False]
    obs, actions, ret = rec.value_targets(0, discount=0.5)
    # terminated: every state, G = [1 + .5·2 + .25·4, 2 + .5·4, 4]; truncated: γ^(T−t) ≤ 0.05 needs T−t ≥ 4.3: none
    assert ret.tolist() == [3.0, 4.0, 4.0] and obs[:, 0].tolist() == [0, 1, 2]
    _, _, ret = rec.value_targets(0, discount=0.1, scale=2.0, shift=-1.0)  # tail ≤ 0.05 needs T−t ≥ 1.3
    # r' = 2r − 1; terminated: [1, 3, 7] -> [1 + .3 + .07, 3 + .7, 7]; each truncated: t = 0, 1 -> [1.11, 1.1]
    assert ret == pytest.approx([1.37, 3.7, 7.0, 1.11, 1.1, 1.11, 1.1])
    t = rec.transitions(0)
    assert t.episode_starts.tolist() == [0, 3, 6] and t.terminals.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert np.array_equal(t.next_observations[:, 0], t.observations[:, 0] + 1)


def test_reward_affine_matches_the_preprocessing() -> None:
    from offrl.data.preprocess import preprocess_rewards

    r, returns = np.array([0.5, -2.0, 3.0]), np.array([10.0, 60.0])
    for mode in ("none", "antmaze", "locomotion"):
        scale, shift = reward_affine(mode, returns)
        assert scale * r + shift == pytest.approx(preprocess_rewards(r, returns, mode))


# ------------------------------------------------------------------------------------ diagnostics by hand


def probe_data(**kw: Any) -> ProbeData:
    base = dict(config={}, obs_dim=1, act_dim=2, diagnostics=True, diagnostic_states=1000, opex_steps=0, opex_lr=0.1,
                ttt_steps=0, ttt_lr=0.0, ttt_batch=0, discount=0.5, reward_scale=1.0, reward_shift=0.0,
                reference=None, reference_name="")
    return ProbeData(**{**base, **kw})


def test_diagnostics_by_hand_on_two_seeds() -> None:
    # seed 0 acts (0.6, 0.1), seed 1 (0, 0); Q = a₀ + 2 a₁ for both critics
    stack = stack_of(Agent(LinearQ([1.0, 2.0]), ConstantActor([0.6, 0.1])),
                     Agent(LinearQ([1.0, 2.0]), ConstantActor([0.0, 0.0])))
    rec = VisitRecorder(members=2, num_envs=1)
    rec.round(1)
    for t, reward in enumerate([1.0, 2.0]):  # one 2-step terminated episode per seed, acting as the policy does
        rec.step(np.full((2, 1), float(t)), np.array([[0.6, 0.1], [0.0, 0.0]]), np.array([reward, reward]),
                 np.full((2, 1), t + 1.0), np.array([t == 1, t == 1]), np.ones(2, bool))
    rec.finish()
    states, dataset_actions = np.zeros((4, 1), np.float32), np.tile([[0.6, 0.0]], (4, 1)).astype(np.float32)
    best = BestActions(np.array([[-0.7, 0.0], [0.7, 0.0]]))
    rows = diagnose(act, stack, rec, [0, 1], 10, CPU, probe_data(reference=best, train_states=states,
                                                                    train_actions=dataset_actions))
    assert rows[0]["diag/mse_train"] == pytest.approx(0.01) and rows[1]["diag/mse_train"] == pytest.approx(0.245)
    assert rows[0]["diag/mse_visited"] == pytest.approx(0.01) and rows[1]["diag/mse_visited"] == pytest.approx(0.245)
    assert "diag/mse_validation" not in rows[0]  # no held-out split
    # Q(s, a) = 0.6 + 0.2 = 0.8 against G = [1 + .5·2, 2] = [2, 2] -> error −1.2 (seed 0); seed 1: Q = 0 -> −2
    assert rows[0]["diag/value_bias"] == pytest.approx(-1.2, abs=1e-6)
    assert rows[0]["diag/value_rmse"] == pytest.approx(1.2, abs=1e-6)
    assert rows[1]["diag/value_bias"] == pytest.approx(-2.0) and rows[0]["diag/value_states"] == 2
    # the dataset action as reference: training states only (no dataset action where the policy went)
    rows = diagnose(act, stack, rec, [0, 1], 10, CPU, probe_data(train_states=states, train_actions=dataset_actions))
    assert rows[0]["diag/mse_train"] == pytest.approx(0.005) and rows[1]["diag/mse_train"] == pytest.approx(0.18)
    assert "diag/mse_visited" not in rows[0]


# ------------------------------------------------------------------------------------ OPEX


def test_opex_climbs_a_known_q_and_stays_in_bounds() -> None:
    stack = stack_of(Agent(BowlQ([0.2, -0.4]), ConstantActor([0.0, 0.0])),
                     Agent(BowlQ([2.0, 0.0]), ConstantActor([0.0, 0.0])))  # seed 1's optimum is out of bounds
    obs = torch.zeros(2, 3, 1)
    a0 = torch.tensor([[0.9, 0.9]] * 3).expand(2, 3, 2).contiguous()
    out = opex_actions(stack, obs, a0, steps=3, lr=0.1)
    # ∇ₐQ = −2 (a − c): a − c shrinks by (1 − 2·0.1) per step
    c0 = torch.tensor([0.2, -0.4])
    assert torch.allclose(out[0], c0 + 0.8 ** 3 * (a0[0] - c0), atol=1e-6)
    assert out[1, :, 0].tolist() == [1.0, 1.0, 1.0]  # clipped at the action bound on the way to 2.0
    assert torch.allclose(out[1, :, 1], 0.9 * 0.8 ** 3 * torch.ones(3), atol=1e-6)
    assert opex_actions(stack, obs, a0, steps=0, lr=0.1).equal(a0)


# ------------------------------------------------------------------------------------ TTT


def visited(n: int, seed: int) -> TransitionArrays:
    rng = np.random.default_rng(seed)
    return TransitionArrays(observations=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                            actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                            rewards=rng.uniform(0, 1, n).astype(np.float32),
                            next_observations=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                            terminals=np.ones(n, np.float32), timeouts=np.zeros(n, bool),
                            episode_starts=np.arange(n), episode_returns=np.zeros(n))


def test_seed_tables_keep_each_seed_in_its_own_rows() -> None:
    table = SeedTables([visited(3, 0), visited(5, 1)], CPU)
    rows = table.indices(torch.tensor([[0.0, 0.5, 0.9999], [0.0, 0.5, 0.9999]]))
    assert rows.tolist() == [[0, 1, 2], [3, 5, 7]]
    assert len(table) == 8 and torch.equal(table.gather(rows).observations[1, 0],
                                           torch.as_tensor(visited(5, 1).observations[0]))


def test_ttt_updates_only_a_copy_of_the_actor_and_leaves_the_rngs_alone() -> None:
    from offrl.config import resolve
    from offrl.trainer.agents import build_agent

    cfg = resolve([{"critic": {"name": "expectile", "hidden_dims": [16, 16]},
                    "actor": {"name": "ddpg-bc", "hidden_dims": [16, 16]}, "trainer": {"steps": 100}}])
    stack = stack_of(*[build_agent(cfg, 2, 2, s, 100) for s in (0, 1)])
    with torch.no_grad():  # "trained" weights, unlike the freshly built agents TTT starts from
        for t in stack.state.values():
            t.add_(0.01 * torch.randn_like(t))
    before = {n: t.clone() for n, t in stack.state.items()}
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    adapted = ttt_adapt(cfg, stack, [visited(40, 0), visited(25, 1)], [0, 1], [11, 12], 2, 2, steps=5, lr=1e-2,
                        batch=16, device=CPU)
    assert torch.equal(torch.rand(3), expected)  # building the agents did not reseed the trainer's RNGs
    for name, t in stack.state.items():
        assert torch.equal(t, before[name])  # the trained weights are untouched
        moved = not torch.equal(adapted.state[name], t)
        if name.startswith("critic."):
            assert not moved, name  # the trained critic, frozen
        elif name.startswith("actor.mean_net.") and name.endswith("weight"):
            assert moved, name
    again = ttt_adapt(cfg, stack, [visited(40, 0), visited(25, 1)], [0, 1], [11, 12], 2, 2, steps=5, lr=1e-2,
                      batch=16, device=CPU)
    assert all(torch.equal(again.state[n], adapted.state[n]) for n in adapted.state)  # reproducible


# ------------------------------------------------------------------------------------ end to end


def run(out: Path, *sets: str) -> list[dict]:
    from offrl.config import resolve
    from offrl.trainer.api import train

    layer: dict[str, dict] = {"critic": {"hidden_dims": [32, 32], "batch_size": 64},
                              "actor": {"name": "ddpg-bc", "hidden_dims": [32, 32], "batch_size": 64},
                              "trainer": {"steps": 40, "eval_every": 40, "eval_episodes": 20, "log_every": 20,
                                          "save_every": 40, "device": "cpu"}}
    for item in sets:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        layer.setdefault(section, {})[name] = value
    train(resolve([layer]), out)
    return [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]


PROBES = ("data.validation_fraction=0.2", "eval.diagnostics=true", "eval.opex_steps=2", "eval.ttt_steps=3")


def test_probes_sit_beside_an_unchanged_plain_evaluation(tmp_path: Path) -> None:
    plain = run(tmp_path / "plain", "data.validation_fraction=0.2")
    rows = {}
    for where in ("off", "on"):  # in the trainer's process, and in an evaluation worker
        probed = rows[where] = run(tmp_path / where, *PROBES, f"trainer.eval_async={where}")
        assert len(plain) == len(probed) == 1
        a, b = plain[0], probed[0]
        assert a["normalized_score_100"] == b["normalized_score_100"]  # probes never touch training or the score
        for key in ("diag/mse_train", "diag/mse_validation", "diag/mse_visited", "diag/value_bias",
                    "opex/normalized_score_100", "ttt/normalized_score_100", "opex/seconds", "ttt/seconds"):
            assert key in b and math.isfinite(b[key]), key
        summary = json.loads((tmp_path / where / "summary.json").read_text())
        assert "best modes" in summary["diagnostics_reference"]
        assert summary["validation_episodes"] == 600 and summary["policy_episodes"] == 2400
    timings = ("time_s", "opex/seconds", "ttt/seconds")
    assert [{k: v for k, v in r.items() if k not in timings} for r in rows["off"]] == \
        [{k: v for k, v in r.items() if k not in timings} for r in rows["on"]]  # the same numbers either way
