"""Actor ``ddpg-bc``: the loss by hand, the critic untouched, α → 0 is behaviour cloning, CLI runs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from offrl.actors import ACTORS
from offrl.actors.ddpg_bc import DDPGBCActor, DDPGBCConfig
from offrl.critics import CRITICS
from offrl.data.transitions import Batch
from offrl.errors import ConfigError, OfflineRLError
from tests.helpers import PlainTrainer, read_jsonl, run_cli



class LinearQ:
    """Stub critic: Q(s, a) = scale · (2 a₀ − a₁) + s₀, differentiable in a."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.scale * (2.0 * act[:, 0] - act[:, 1]) + obs[:, 0]


def make_actor(**cfg: object) -> DDPGBCActor:
    cfg.setdefault("hidden_dims", (8,))
    return DDPGBCActor(DDPGBCConfig(**cfg), 2, 2, 1000)


def constant_policy(actor: DDPGBCActor, mu: list[float]) -> None:
    """Make μ(s) = mu for every s: zero output weights, bias atanh(mu)."""
    last = actor.mean_net.out
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.atanh(torch.tensor(mu)))


def batch_of(obs: list[list[float]], act: list[list[float]]) -> Batch:
    o, a = torch.tensor(obs), torch.tensor(act)
    return Batch(o, a, torch.zeros(len(o)), o, torch.zeros(len(o)))


def test_loss_matches_a_hand_computed_value() -> None:
    """μ = (0.5, −0.2); Q₁ = 2·0.5 + 0.2 + 1 = 2.2, Q₂ = 1.2 + 0.5 = 1.7; mean|Q| = 1.95, λ = 2.5/1.95.
    ‖μ − a₁‖² = 0.4² + 0.4² = 0.32, ‖μ − a₂‖² = 0.8² + 0.7² = 1.13.
    L = mean(−λQ + ‖μ − a‖²) = −λ·1.95 + 0.725 = −1.775."""
    actor = make_actor(alpha=2.5)
    constant_policy(actor, [0.5, -0.2])
    batch = batch_of([[1.0, 0.0], [0.5, 9.0]], [[0.1, 0.2], [-0.3, 0.5]])
    loss, metrics = actor.loss(batch, {}, LinearQ())
    assert loss.item() == pytest.approx(-1.775, abs=1e-5)
    assert metrics["actor/lambda"].item() == pytest.approx(2.5 / 1.95, rel=1e-6)
    assert metrics["actor/bc_mse"].item() == pytest.approx((0.32 + 1.13) / 2, rel=1e-5)
    # λ carries no gradient: dL/dμ = −λ ∇ₐQ + mean 2(μ − a) = −λ(2, −1) + (1.2, −1.1);
    # without the stop-gradient, −α·mean Q / mean|Q| = −α would be constant and the Q term would vanish
    loss.backward()
    lam = 2.5 / 1.95
    dmu = torch.tensor([-2 * lam + 1.2, lam - 1.1])
    expected = dmu * (1 - torch.tensor([0.5, -0.2]) ** 2)  # through tanh
    torch.testing.assert_close(actor.mean_net.out.bias.grad, expected, rtol=1e-5, atol=1e-6)
    # TD3+BC's convention averages the squared error over the A = 2 action dimensions: −2.5 + 0.725 / 2
    mean_actor = make_actor(alpha=2.5, bc_reduction="mean")
    constant_policy(mean_actor, [0.5, -0.2])
    assert mean_actor.loss(batch, {}, LinearQ())[0].item() == pytest.approx(-2.1375, abs=1e-5)


def test_gaussian_policy_at_unit_sigma_equals_the_deterministic_loss() -> None:
    det, gauss = make_actor(alpha=2.5), make_actor(alpha=2.5, policy="gaussian")
    gauss.mean_net.load_state_dict(det.mean_net.state_dict())
    batch = batch_of([[1.0, 0.0], [0.5, 9.0]], [[0.1, 0.2], [-0.3, 0.5]])
    torch.testing.assert_close(det.loss(batch, {}, LinearQ())[0], gauss.loss(batch, {}, LinearQ())[0])
    with torch.no_grad():
        gauss.log_std.fill_(math.log(0.5))  # BC term ‖(μ − a)/σ‖² + 2 Σ log σ
    loss_det = det.loss(batch, {}, LinearQ(0.0))[0]  # Q ≡ s₀ here: λ·Q does not depend on the policy
    q_term = -(2.5 / 0.75) * 0.75
    expected = (loss_det - q_term) * 4 + 2 * 2 * math.log(0.5) + q_term
    torch.testing.assert_close(gauss.loss(batch, {}, LinearQ(0.0))[0], expected)
    PlainTrainer(gauss).step(batch, LinearQ())
    assert torch.isfinite(gauss.log_std).all()


def _unimodal_batch(gen: torch.Generator, n: int) -> Batch:
    """a = 0.8 · tanh(s₀ − s₁, s₀ s₁) + N(0, 0.02²): one action mode per state."""
    s = torch.rand(n, 2, generator=gen) * 2 - 1
    a = 0.8 * torch.tanh(torch.stack([s[:, 0] - s[:, 1], 2 * s[:, 0] * s[:, 1]], -1))
    a = a + 0.02 * torch.randn(n, 2, generator=gen)
    return Batch(s, a, torch.zeros(n), s, torch.zeros(n))


def _fit(alpha: float, steps: int = 1500) -> tuple[float, float]:
    """Train on the unimodal data with Q = 10·(2a₀ − a₁).

    Returns (mean |μ − a*|, the mean gain in 2a₀ − a₁ over the clean dataset action a*)."""
    torch.manual_seed(0)
    actor = make_actor(alpha=alpha, hidden_dims=(64, 64), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    q = LinearQ(10.0)
    trainer = PlainTrainer(actor)
    for _ in range(steps):
        trainer.step(_unimodal_batch(gen, 256), q)
    test = _unimodal_batch(torch.Generator().manual_seed(99), 2000)
    clean = 0.8 * torch.tanh(torch.stack([test.observations[:, 0] - test.observations[:, 1],
                                          2 * test.observations[:, 0] * test.observations[:, 1]], -1))
    mu = actor.act(test.observations, q, {})  # type: ignore[arg-type]
    gain = ((2 * mu[:, 0] - mu[:, 1]) - (2 * clean[:, 0] - clean[:, 1])).mean()
    return (mu - clean).abs().mean().item(), gain.item()


def test_alpha_to_zero_is_behaviour_cloning() -> None:
    err, gain = _fit(alpha=1e-4)
    assert err < 0.05, f"α → 0 should fit the dataset actions; mean |μ − a| = {err:.3f}"
    assert abs(gain) < 0.05
    # the Q term does act at the default α: the policy moves up Q's gradient, off the data
    err_q, gain_q = _fit(alpha=2.5, steps=500)
    assert gain_q > 0.3 and err_q > err


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="alpha.*-1"):
        DDPGBCConfig(alpha=-1.0)
    with pytest.raises(OfflineRLError, match="deterministic, gaussian"):
        DDPGBCConfig(policy="stochastic")
    with pytest.raises(OfflineRLError, match="mean, sum"):
        DDPGBCConfig(bc_reduction="max")
    assert "ddpg-bc" in ACTORS
    assert DDPGBCConfig().cosine_decay is False and DDPGBCConfig().alpha == 2.5



@pytest.mark.parametrize("critic", ["expectile", "quantile", "exponential"])
def test_cli_every_critic_with_ddpg_bc(critic: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("run", "--critic", critic, "--actor", "ddpg-bc", "--steps", "200", "--eval-every", "200",
                    "--eval-episodes", "20", "--out", str(out), "--set", "critic.hidden_dims=[32,32]",
                    "--set", "actor.hidden_dims=[32,32]", "--quiet")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["critic"] == critic and summary["actor"] == "ddpg-bc" and summary["steps"] == 200
    rows = read_jsonl(out / "eval.jsonl")
    assert rows[-1]["step"] == 200 and math.isfinite(rows[-1]["normalized_score_100"])
    train = read_jsonl(out / "train.jsonl")
    assert all(math.isfinite(train[-1][k]) for k in ("actor/loss", "actor/q", "actor/lambda"))


def test_list_shows_ddpg_bc() -> None:
    res = run_cli("list", "actor", "ddpg-bc")
    assert res.returncode == 0, res.stderr
    assert "actor.alpha" in res.stdout and "2.5" in res.stdout and "actor.policy" in res.stdout
