"""Hand-computed values for the expectile loss, its implicit weight, the TD target and AWR weights."""
from __future__ import annotations

import math

import torch

from offrl.actors.gaussian_awr import GaussianAWRActor, GaussianAWRConfig, awr_weights
from offrl.critics.expectile import ExpectileConfig, ExpectileCritic
from offrl.data.transitions import Batch



def make_critic(tau: float = 0.7) -> ExpectileCritic:
    torch.manual_seed(0)
    return ExpectileCritic(ExpectileConfig(tau=tau, hidden_dims=(8,)), obs_dim=3, act_dim=2)


def test_expectile_loss_hand_computed() -> None:
    critic = make_critic(0.7)
    u = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    # f(u) = |τ − 1(u<0)| u²: below V weight 0.3, above 0.7
    expected = torch.tensor([0.3 * 4.0, 0.3 * 0.25, 0.0, 0.7 * 0.25, 0.7 * 9.0])
    torch.testing.assert_close(critic.value_loss(u), expected)
    torch.testing.assert_close(critic.implicit_weight_u(u), torch.tensor([0.3, 0.3, 0.7, 0.7, 0.7]))


def test_expectile_fixed_point_is_the_expectile() -> None:
    """Minimising mean f(Q − V) over a scalar V gives the τ-expectile (solved independently)."""
    critic = make_critic(0.9)
    q = torch.tensor([0.0, 1.0, 2.0, 10.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        critic.value_loss(q - v).mean().backward()
        opt.step()
    # The τ-expectile m solves τ Σ_{q>m}(q − m) = (1 − τ) Σ_{q<m}(m − q); by bisection:
    lo, hi = 0.0, 10.0
    for _ in range(100):
        m = (lo + hi) / 2
        g = 0.9 * sum(max(x - m, 0) for x in q.tolist()) - 0.1 * sum(max(m - x, 0) for x in q.tolist())
        lo, hi = (m, hi) if g > 0 else (lo, m)
    assert abs(v.item() - m) < 1e-3
    assert m > q.mean().item() + 1  # the 0.9-expectile is far above the mean here


def test_td_target_uses_terminals_only() -> None:
    critic = make_critic()
    obs = torch.zeros(2, 3)
    nobs = torch.ones(2, 3)
    batch = Batch(obs, torch.zeros(2, 2), torch.tensor([1.0, 1.0]), nobs, torch.tensor([1.0, 0.0]))
    v_next = critic.v(nobs)
    y = critic.td_target(batch)
    torch.testing.assert_close(y, torch.tensor([1.0, 1.0 + 0.99 * v_next[1].item()]))


def test_awr_weights_hand_computed() -> None:
    adv = torch.tensor([-1.0, 0.0, 0.5, 2.0, 100.0])
    w = awr_weights(adv, beta=3.0, max_weight=100.0)
    expected = torch.tensor([math.exp(-3.0), 1.0, math.exp(1.5), 100.0, 100.0])  # exp(6) > 100 is clipped
    torch.testing.assert_close(w, expected)
    assert torch.isfinite(awr_weights(torch.tensor([1e6]), 10.0, 100.0)).all()


class _ConstAdvantage:
    def __init__(self, adv: torch.Tensor) -> None:
        self.adv = adv

    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.adv


def test_awr_actor_loss_matches_formula() -> None:
    torch.manual_seed(0)
    cfg = GaussianAWRConfig(hidden_dims=(8,), cosine_decay=False)
    actor = GaussianAWRActor(cfg, obs_dim=3, act_dim=2, total_updates=10)
    obs, act = torch.randn(4, 3), torch.rand(4, 2) * 2 - 1
    adv = torch.tensor([0.0, 1.0, -1.0, 5.0])
    with torch.no_grad():
        actor.log_std.copy_(torch.tensor([0.3, -0.7]))
        dist = torch.distributions.Normal(torch.tanh(actor.mean_net(obs)), actor.log_std.exp())
        logp = dist.log_prob(act).sum(-1)
        expected = -(torch.clamp(torch.exp(3.0 * adv), max=100.0) * logp).mean()
    loss, metrics = actor.loss(Batch(obs, act, torch.zeros(4), obs, torch.zeros(4)), {}, _ConstAdvantage(adv))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(metrics["actor/log_prob"], logp.mean())
