"""The three value losses: their fixed points, hand-computed values, implicit weights, CLI runs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from offrl.critics import CRITICS
from offrl.critics.base import IQLCritic
from offrl.errors import ConfigError
from tests.helpers import PlainTrainer, read_jsonl, run_cli



def make_critic(name: str, **cfg: object) -> IQLCritic:
    cls = CRITICS.get(name)
    return cls(cls.Config(hidden_dims=(8,), **cfg), 2, 2)


def minimise_v(critic: IQLCritic, q: np.ndarray, steps: int = 3000, lr: float = 0.1) -> float:
    """argmin over a scalar V of mean value_loss(Q − V), by Adam with a cosine-decayed LR."""
    qt = torch.as_tensor(q, dtype=torch.float64)
    v = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([v], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        critic.value_loss(qt - v).mean().backward()
        opt.step()
        sched.step()
    return v.item()


def expectile(q: np.ndarray, tau: float) -> float:
    return brentq(lambda v: np.mean(np.where(q < v, 1 - tau, tau) * (q - v)), q.min(), q.max(), xtol=1e-12)


# a skewed sample: its mean, median, 0.6-quantile and 0.7-expectile all differ
SKEWED = np.random.default_rng(0).lognormal(0.0, 0.75, 4001)
# the sample for the exponential loss: Q ~ N(0, 2²)
GAUSS = np.random.default_rng(1).normal(0.0, 2.0, 20000)


# --- fixed points ---------------------------------------------------------------------------------
def test_expectile_loss_converges_to_the_tau_expectile() -> None:
    v = minimise_v(make_critic("expectile", tau=0.7), SKEWED)
    target = expectile(SKEWED, 0.7)
    assert v == pytest.approx(target, abs=1e-3)
    assert abs(target - np.quantile(SKEWED, 0.7)) > 0.1 and abs(target - SKEWED.mean()) > 0.1


@pytest.mark.parametrize("tau", [0.6, 0.9])
def test_quantile_loss_converges_to_the_tau_quantile(tau: float) -> None:
    v = minimise_v(make_critic("quantile", tau=tau), SKEWED)
    target = float(np.quantile(SKEWED, tau))
    assert v == pytest.approx(target, abs=5e-3)
    assert abs(target - expectile(SKEWED, tau)) > 0.1  # the two statistics really differ here


def test_exponential_loss_fixed_points_with_and_without_the_clip() -> None:
    alpha = 1.0
    unclipped = float(np.log(np.mean(np.exp(alpha * GAUSS))) / alpha)  # (1/α) log E[exp(αQ)]
    clipped = brentq(lambda v: np.mean(np.minimum(np.exp(alpha * (GAUSS - v)), 6.0)) - 1.0, -10, 10, xtol=1e-12)
    # population values for Q ~ N(0, 2²): unclipped ασ²/2 = 2.0 (≈1.95 on this 20,000-sample draw); clipped at
    # c = 6 the root of e^{σ²/2 − v}Φ((v + log 6 − σ²)/σ) + 6(1 − Φ((v + log 6)/σ)) = 1, v ≈ 1.332
    assert unclipped == pytest.approx(2.0, abs=0.1) and clipped == pytest.approx(1.332, abs=0.05)
    pop = brentq(lambda v: math.exp(2.0 - v) * norm.cdf((v + math.log(6) - 4.0) / 2)
                 + 6 * norm.sf((v + math.log(6)) / 2) - 1.0, -10, 10)
    assert pop == pytest.approx(1.3317, abs=1e-4)

    v_inf = minimise_v(make_critic("exponential", alpha=alpha, clip=math.inf), GAUSS)
    v_6 = minimise_v(make_critic("exponential", alpha=alpha, clip=6.0), GAUSS)
    assert v_inf == pytest.approx(unclipped, abs=0.01)
    assert v_6 == pytest.approx(clipped, abs=0.01)


def test_exponential_fixed_point_scales_with_alpha() -> None:
    """α = 0.5 on the skewed sample (clip off): V = 2 · log E[exp(Q/2)]."""
    v = minimise_v(make_critic("exponential", alpha=0.5, clip=math.inf), SKEWED)
    assert v == pytest.approx(2.0 * np.log(np.mean(np.exp(0.5 * SKEWED))), abs=0.01)


# --- hand-computed values ---------------------------------------------------------------------------
U = torch.tensor([-1000.0, -3.0, -0.5, 0.0, 0.5, 2.0, 1000.0], dtype=torch.float64)


def test_expectile_values() -> None:
    c = make_critic("expectile", tau=0.7)
    f = [0.3 * 1e6, 0.3 * 9, 0.3 * 0.25, 0.0, 0.7 * 0.25, 0.7 * 4, 0.7 * 1e6]
    torch.testing.assert_close(c.value_loss(U), torch.tensor(f, dtype=torch.float64))
    w = [0.3, 0.3, 0.3, 0.7, 0.7, 0.7, 0.7]  # |τ − 1(u<0)|
    torch.testing.assert_close(c.implicit_weight_u(U), torch.tensor(w, dtype=torch.float64), check_dtype=False)


def test_quantile_values() -> None:
    c = make_critic("quantile", tau=0.6, adv_floor=0.01)
    f = [0.4 * 1000, 0.4 * 3, 0.4 * 0.5, 0.0, 0.6 * 0.5, 0.6 * 2, 0.6 * 1000]
    torch.testing.assert_close(c.value_loss(U), torch.tensor(f, dtype=torch.float64))
    # w = |τ − 1(u<0)| / max(|u|, ε): positive below V too (upstream divides by u and goes negative)
    w = [0.4 / 1000, 0.4 / 3, 0.4 / 0.5, 0.6 / 0.01, 0.6 / 0.5, 0.6 / 2, 0.6 / 1000]
    torch.testing.assert_close(c.implicit_weight_u(U), torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(c.implicit_log_weight_u(U), torch.log(torch.tensor(w, dtype=torch.float64)))
    tiny = torch.tensor([-1e-30, 1e-12, 0.0])
    assert torch.equal(c.implicit_weight_u(tiny), torch.tensor([0.4, 0.6, 0.6]) / 0.01)


def v_gradient(critic: IQLCritic, q: torch.Tensor) -> torch.Tensor:
    """∂ value_loss(Q − V) / ∂V, elementwise, at V = 0."""
    v = torch.zeros_like(q, requires_grad=True)
    critic.value_loss(q - v).sum().backward()
    return v.grad


def test_exponential_surrogate_has_the_clipped_v_gradient() -> None:
    e = math.e
    c = make_critic("exponential", alpha=1.0, clip=6.0)
    # ∂L/∂V = −α (min(e^{αu}, c) − 1) = −f'(u) · [clip]
    g = [1.0, 1 - e**-3, 1 - e**-0.5, 0.0, -(e**0.5 - 1), -5.0, -5.0]
    torch.testing.assert_close(v_gradient(c, U), torch.tensor(g, dtype=torch.float64))

    c2 = make_critic("exponential", alpha=2.0, clip=6.0)
    u = torch.tensor([-1.0, 0.0, 0.5, 0.8, 50.0], dtype=torch.float64)
    # α = 2: −2 (e^{2u} − 1) while e^{2u} ≤ 6 (u ≤ 0.896), then −2 · 5
    g2 = [2 * (1 - e**-2), 0.0, -2 * (e - 1), -2 * (e**1.6 - 1), -10.0]
    torch.testing.assert_close(v_gradient(c2, u), torch.tensor(g2, dtype=torch.float64))

    # clip off: the exponent is capped at 80 so huge u gives a large finite gradient, never inf/NaN
    c3 = make_critic("exponential", alpha=1.0, clip=math.inf)
    g3 = v_gradient(c3, torch.tensor([1.0, 1000.0]))
    assert g3[0].item() == pytest.approx(-(e - 1), rel=1e-6) and torch.isfinite(g3).all()


def test_exponential_weight_values() -> None:
    e = math.e
    c = make_critic("exponential", alpha=1.0)
    u = torch.tensor([-1000.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 10.0], dtype=torch.float64)
    w = [1 / 1000, 1 - e**-1, 1.0, 1.0, 1.0, e - 1, (e**10 - 1) / 10]  # α |e^{αu} − 1| / |u|, → α² at 0
    torch.testing.assert_close(c.implicit_weight_u(u), torch.tensor(w, dtype=torch.float64))

    c2 = make_critic("exponential", alpha=2.0)
    u2 = torch.tensor([0.0, 1e-8, -0.5, 0.5])
    w2 = torch.tensor([4.0, 4.0, 2 * (1 - e**-1) / 0.5, 2 * (e - 1) / 0.5])
    torch.testing.assert_close(c2.implicit_weight_u(u2), w2)

    # large αu: log w is exact (αu − log u + log α² … ), w itself is capped, finite and monotone
    big = torch.tensor([100.0, 1000.0, 1e6])
    torch.testing.assert_close(c.implicit_log_weight_u(big), big - torch.log(big))
    wb = c.implicit_weight_u(big)
    assert torch.isfinite(wb).all() and (wb > 0).all() and (wb.diff() >= 0).all()


@pytest.mark.parametrize("name", ["expectile", "quantile", "exponential"])
def test_weights_are_positive_finite_and_monotone(name: str) -> None:
    c = make_critic(name)
    u = torch.cat([-torch.logspace(-30, 6, 200).flip(0), torch.zeros(1), torch.logspace(-30, 6, 200)])
    w = c.implicit_weight_u(u)
    assert torch.isfinite(w).all() and (w > 0).all()
    if name == "exponential":  # exponential tilting: strictly prefers higher Q
        assert (w.diff() >= 0).all()
    if name == "quantile":  # concentrates on Q ≈ V
        assert w.argmax() == 200


def test_config_validation_names_the_value() -> None:
    from offrl.critics.exponential import ExponentialConfig
    from offrl.critics.quantile import QuantileConfig

    with pytest.raises(ConfigError, match="tau.*1.5"):
        QuantileConfig(tau=1.5)
    with pytest.raises(ConfigError, match="adv_floor.*0"):
        QuantileConfig(adv_floor=0.0)
    with pytest.raises(ConfigError, match="alpha.*-1"):
        ExponentialConfig(alpha=-1.0)
    with pytest.raises(ConfigError, match="clip.*1.0"):
        ExponentialConfig(clip=1.0)
    assert ExponentialConfig(clip=math.inf).clip == math.inf


# --- the critic trains with every loss ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["quantile", "exponential"])
def test_update_is_finite(name: str) -> None:
    from offrl.data.transitions import Batch

    torch.manual_seed(0)
    c = make_critic(name)
    b = 64
    batch = Batch(torch.randn(b, 2), torch.rand(b, 2) * 2 - 1, torch.randn(b) * 10, torch.randn(b, 2), torch.zeros(b))
    trainer = PlainTrainer(c)
    for _ in range(5):
        metrics = trainer.step(batch, None)
        c.after_update(torch.ones(()))
    assert all(torch.isfinite(m) for m in metrics.values())


# --- CLI -----------------------------------------------------------------------------------------------
def test_list_shows_the_three_critics_and_their_hyperparameters() -> None:
    out = run_cli("list", "critic")
    assert out.returncode == 0, out.stderr
    for name in ("expectile", "quantile", "exponential"):
        assert name in out.stdout
    q = run_cli("list", "critic", "quantile")
    assert q.returncode == 0 and "critic.tau" in q.stdout and "critic.adv_floor" in q.stdout and "0.6" in q.stdout
    e = run_cli("list", "critic", "exponential")
    assert e.returncode == 0 and "critic.alpha" in e.stdout and "critic.clip" in e.stdout


@pytest.mark.parametrize("critic", ["quantile", "exponential"])
def test_cli_run_with_gaussian_awr(critic: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("run", "--critic", critic, "--actor", "gaussian-awr", "--steps", "200", "--eval-every", "200",
                    "--eval-episodes", "20", "--out", str(out), "--set", "critic.hidden_dims=[32,32]",
                    "--set", "actor.hidden_dims=[32,32]", "--quiet")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["critic"] == critic and summary["steps"] == 200
    rows = read_jsonl(out / "eval.jsonl")
    assert rows[-1]["step"] == 200 and rows[-1]["episodes"] == 20
    assert math.isfinite(rows[-1]["normalized_score_100"])
    train = read_jsonl(out / "train.jsonl")
    assert all(math.isfinite(train[-1][k]) for k in ("critic/v_loss", "critic/q_loss"))


def test_cli_rejects_a_bad_value_by_name(tmp_path: Path) -> None:
    res = run_cli("run", "--critic", "exponential", "--steps", "10", "--out", str(tmp_path / "r"),
                    "--set", "critic.clip=0.5", "--quiet")
    assert res.returncode != 0 and "critic.clip" in res.stderr + res.stdout
