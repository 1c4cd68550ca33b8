"""Off-policy evaluation (`offrl ope`, FQE): validated against true values — the bandit's (exact expected reward of
the policy) and a multi-step chain whose return is computed from the policy's own actions — plus splits, eval.ope,
the CLI and report ranking without an environment."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import offrl
from offrl.envs import bandit
from offrl.errors import ConfigError, UnknownNameError
from offrl.ope import evaluate_run, read_ope
from offrl.ope.fqe import FQEConfig
from offrl.policy import load_policy
from tests.helpers import TINY, run_cli

FAST = FQEConfig(steps=1500, hidden=64, bootstrap=4, action_samples=2)


@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    run = tmp_path_factory.mktemp("ope") / "ddpg-bc"
    cfg = offrl.make_config(critic="expectile", actor="ddpg-bc", preset="bandit", steps=1000,
                            overrides={"trainer.eval_every": 1000, "trainer.eval_episodes": 20,
                                       "data.validation_fraction": 0.2})
    offrl.train(cfg, run)
    return run


def test_fqe_matches_the_bandits_true_value(bandit_run: Path) -> None:
    policy = load_policy(bandit_run, seed=3)
    contexts = np.random.default_rng(0).uniform(-1, 1, (20000, 2))  # the bandit's contexts are uniform
    truth = float(bandit.bandit_reward(policy(contexts)).mean())  # one-step episodes: V = E[r(π(s))]
    out = evaluate_run(bandit_run, cfg=FAST)
    assert out["estimate_is_return"] and out["return_estimate"] == out["estimate"]
    assert abs(out["estimate"] - truth) < 0.05, (out["estimate"], truth)
    lo, hi = out["ci"]
    assert lo < hi and len(out["bootstrap_estimates"]) == 4
    assert out["normalized_score_100"] == pytest.approx(
        100 * (out["estimate"] - bandit.random_policy_score()) / (bandit.best_score() - bandit.random_policy_score()))
    assert read_ope(bandit_run)["estimate"] == out["estimate"]


def test_fqe_bootstraps_through_a_multi_step_chain(empty_store: Path, tmp_path: Path) -> None:
    """Episodes of H steps; the state is the time step, rewards depend on the action only, the last step is
    terminal. The policy's true discounted value is Σ_t γ^t r(π(s_t)), with π the trained policy itself."""
    from offrl.data import from_arrays

    H, episodes, gamma = 5, 300, 0.9
    rng = np.random.default_rng(0)
    t = np.tile(np.arange(H), episodes)
    obs = np.stack([t / H, np.zeros_like(t, float)], 1).astype(np.float32)
    actions = rng.uniform(-1, 1, (len(t), 1)).astype(np.float32)
    reward = lambda a: 1.0 - a[..., 0] ** 2  # noqa: E731
    from_arrays("mine/chain-v0", obs, actions, reward(actions), t == H - 1)
    run = tmp_path / "run"
    cfg = offrl.make_config(critic="expectile", actor="ddpg-bc", dataset="mine/chain-v0", steps=300,
                            overrides={"critic.hidden_dims": [32, 32], "actor.hidden_dims": [32, 32],
                                       "trainer.eval_every": 300})
    offrl.train(cfg, run)
    policy = load_policy(run)
    states = np.stack([np.arange(H) / H, np.zeros(H)], 1)
    truth = float(np.sum(gamma ** np.arange(H) * reward(policy(states))))
    out = evaluate_run(run, cfg=FQEConfig(steps=3000, hidden=64, bootstrap=0, action_samples=1, gamma=gamma))
    assert not out["estimate_is_return"] and out["ci"] is None
    assert abs(out["estimate"] - truth) < 0.1 * H, (out["estimate"], truth)


def test_splits(bandit_run: Path, tmp_path: Path) -> None:
    held = evaluate_run(bandit_run, split="heldout", cfg=FQEConfig(steps=50, hidden=16, bootstrap=0), write=False)
    train = evaluate_run(bandit_run, split="train", cfg=FQEConfig(steps=50, hidden=16, bootstrap=0), write=False)
    assert held["episodes"] == 600 and train["episodes"] == 2400  # data.validation_fraction = 0.2 of 3000
    with pytest.raises(UnknownNameError, match="Unknown OPE split .*Valid choices: all, heldout, train"):
        evaluate_run(bandit_run, split="test", write=False)
    cfg = offrl.make_config(critic="expectile", actor="ddpg-bc", steps=2,
                            overrides={"trainer.eval_every": 2, "trainer.eval_episodes": 1, "trainer.eval_envs": 1})
    offrl.train(cfg, tmp_path / "noheld")
    with pytest.raises(ConfigError, match="held none out .*data.validation_fraction=0.0"):
        evaluate_run(tmp_path / "noheld", split="heldout", write=False)


def test_eval_ope_runs_at_the_end_of_training(tmp_path: Path) -> None:
    cfg = offrl.make_config(critic="expectile", actor="ddpg-bc", steps=20,
                            overrides={"trainer.eval_every": 20, "trainer.eval_episodes": 2, "trainer.eval_envs": 2,
                                       "eval.ope": True, "eval.ope_steps": 20})
    offrl.train(cfg, tmp_path / "run")
    out = read_ope(tmp_path / "run")
    assert out["method"] == "fqe" and out["settings"]["steps"] == 20 and out["policy_step"] == 20
    with pytest.raises(ConfigError, match="eval.ope_steps must be positive"):
        offrl.make_config(overrides={"eval.ope_steps": 0})


def test_cli_and_report_ranking_without_an_environment(empty_store: Path, tmp_path: Path) -> None:
    from offrl.data import from_arrays

    rng = np.random.default_rng(0)
    n = 400
    from_arrays("mine/noenv-v0", rng.standard_normal((n, 3)), rng.uniform(-1, 1, (n, 2)), rng.standard_normal(n),
                np.ones(n, bool))
    for actor in ("ddpg-bc", "gaussian-awr"):
        r = run_cli("run", "--dataset", "mine/noenv-v0", *TINY[2:], "--actor", actor, "--steps", "30",
                    "--eval-every", "30", "--out", str(tmp_path / "runs" / actor), "--quiet")
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "runs" / actor / "policy_final.pt").is_file()  # saved though nothing evaluates it
        r = run_cli("ope", str(tmp_path / "runs" / actor), "--steps", "30", "--hidden", "16", "--bootstrap", "2",
                    "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["transitions"] == n
    r = run_cli("ope", str(tmp_path / "runs" / "ddpg-bc"), "--steps", "0")
    assert r.returncode == 2 and "ope.steps must be positive" in r.stderr
    r = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--no-plots")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "(FQE estimate, no environment)" in text and "expectile+ddpg-bc" in text
