"""Selection among N candidate actions per state: argmax, implicit (∝ w), softmax; and sampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from einops import rearrange
from scipy.stats import chisquare

from offrl.critics import CRITICS
from offrl.critics.base import IQLCritic
from offrl.critics.selection import RULES, sample_candidates, sample_index, selection_probs
from offrl.errors import OfflineRLError



def critic_with_known_q(name: str, **cfg: object) -> IQLCritic:
    """A real critic whose Q(s, a) = a[0] and V(s) = s[0], so u = Q − V is set by the test."""
    cls = CRITICS.get(name)
    c = cls(cls.Config(hidden_dims=(8,), **cfg), 1, 1)
    c.q = lambda obs, act: act[:, 0]  # type: ignore[method-assign]
    c.v = lambda obs: obs[:, 0]  # type: ignore[method-assign]
    return c


# Q of 3 states × 5 candidates; V = 1.0, 0.0, 100.0 (state 3: every candidate far below V)
Q = torch.tensor([[0.5, 2.0, 1.0, 2.0, -3.0],
                  [0.0, -0.2, 0.3, 5.0, 0.01],
                  [-50.0, 0.0, 10.0, 1.0, 99.0]])
V = torch.tensor([1.0, 0.0, 100.0])
OBS = V[:, None]
CAND = Q[..., None]  # [B, N, A = 1]


@pytest.mark.parametrize("name", ["expectile", "quantile", "exponential"])
@pytest.mark.parametrize("rule", RULES)
def test_probs_are_distributions(name: str, rule: str) -> None:
    p = selection_probs(critic_with_known_q(name), OBS, CAND, rule)
    assert p.shape == (3, 5)
    assert (p >= 0).all() and torch.isfinite(p).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(3))


def test_argmax_is_one_hot_on_the_best_q_with_ties_to_the_first() -> None:
    p = selection_probs(critic_with_known_q("expectile"), OBS, CAND, "argmax")
    expected = torch.zeros(3, 5)
    expected[0, 1] = expected[1, 3] = expected[2, 4] = 1.0  # state 0: Q = 2.0 at 1 and 3 -> 1
    assert torch.equal(p, expected)


def test_softmax_is_exp_q_over_temperature() -> None:
    c = critic_with_known_q("quantile")
    for t in (1.0, 0.25, 10.0):
        torch.testing.assert_close(selection_probs(c, OBS, CAND, "softmax", temperature=t), torch.softmax(Q / t, -1))


def test_implicit_is_w_normalised() -> None:
    u = (Q - V[:, None]).double()
    # expectile (τ = 0.7): w = |τ − 1(u<0)|
    w = torch.where(u < 0, 0.3, 0.7)
    torch.testing.assert_close(selection_probs(critic_with_known_q("expectile"), OBS, CAND, "implicit"),
                               (w / w.sum(-1, keepdim=True)).float())
    # quantile (τ = 0.6, ε = 0.01): w = |τ − 1(u<0)| / max(|u|, ε), non-negative also where Q < V
    w = torch.where(u < 0, 0.4, 0.6) / u.abs().clamp_min(0.01)
    torch.testing.assert_close(selection_probs(critic_with_known_q("quantile"), OBS, CAND, "implicit"),
                               (w / w.sum(-1, keepdim=True)).float())
    # exponential (α = 1): w = |e^u − 1| / |u| (→ 1 at u = 0)
    w = torch.where(u == 0, 1.0, torch.expm1(u).abs() / u.abs())
    p = selection_probs(critic_with_known_q("exponential"), OBS, CAND, "implicit")
    torch.testing.assert_close(p, (w / w.sum(-1, keepdim=True)).float())
    assert p[1].argmax() == 3 and p[2].argmax() == 4  # prefers high Q, not a constant weight


def test_implicit_exponential_keeps_relative_weights_where_exp_overflows() -> None:
    """α(Q − V) up to 1000: e^{αu} overflows float32/64, log-space normalisation stays exact."""
    c = critic_with_known_q("exponential", alpha=10.0)
    q = torch.tensor([[100.0, 99.9, 99.0, 0.5]])
    p = selection_probs(c, torch.zeros(1, 1), q[..., None], "implicit")
    u = q.double()
    x = 10.0 * u
    log_w = math.log(10.0) + x + torch.log(-torch.expm1(-x)) - torch.log(u)  # log(α (e^x − 1) / u)
    torch.testing.assert_close(p, torch.softmax(log_w, -1).float())
    assert torch.isfinite(p).all() and p[0, 0] > p[0, 1] > p[0, 2] > p[0, 3] >= 0


def test_flattened_layout_matches() -> None:
    c = critic_with_known_q("quantile")
    flat = rearrange(CAND, "b n a -> (b n) a")
    for rule in RULES:
        assert torch.equal(selection_probs(c, OBS, flat, rule, num_candidates=5), selection_probs(c, OBS, CAND, rule))
    with pytest.raises(ValueError, match="num_candidates"):
        selection_probs(c, OBS, flat, "argmax")


def test_unknown_rule_lists_the_valid_ones() -> None:
    with pytest.raises(OfflineRLError, match="argmax, implicit, softmax"):
        selection_probs(critic_with_known_q("expectile"), OBS, CAND, "argmin")
    with pytest.raises(OfflineRLError, match="temperature"):
        selection_probs(critic_with_known_q("expectile"), OBS, CAND, "softmax", temperature=0.0)


def test_critic_method_delegates_with_a_real_network() -> None:
    cls = CRITICS.get("exponential")
    torch.manual_seed(0)
    c = cls(cls.Config(hidden_dims=(16, 16)), 3, 2)
    obs, cand = torch.randn(4, 3), torch.rand(4, 7, 2) * 2 - 1
    for rule in RULES:
        p = c.selection_probs(obs, cand, rule)
        assert torch.equal(p, selection_probs(c, obs, cand, rule))
        torch.testing.assert_close(p.sum(-1), torch.ones(4))
    q = c.q(obs.repeat_interleave(7, 0), cand.reshape(-1, 2)).reshape(4, 7)
    assert torch.equal(c.selection_probs(obs, cand, "argmax").argmax(-1), q.argmax(-1))


@pytest.mark.parametrize("rule,name", [("implicit", "quantile"), ("implicit", "exponential"), ("softmax", "expectile")])
def test_sampling_frequencies_match_the_probabilities(rule: str, name: str) -> None:
    """20 000 states with the same candidates: one draw each, chi-square against the probabilities."""
    c = critic_with_known_q(name)
    n_draws = 20_000
    q = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.6])
    obs = torch.full((n_draws, 1), 1.0)
    cand = q[None, :, None].expand(n_draws, 5, 1)
    p = selection_probs(c, obs[:1], cand[:1], rule)[0]
    u = torch.rand(n_draws, generator=torch.Generator().manual_seed(1234))
    chosen = sample_candidates(c, obs, cand, rule, u)
    assert chosen.shape == (n_draws, 1)
    counts = (chosen == q).sum(0).numpy()  # [5]
    assert counts.sum() == n_draws
    expected = p.double().numpy() / p.double().sum().item() * n_draws
    assert chisquare(counts, expected).pvalue > 1e-3
    np.testing.assert_allclose(counts / n_draws, p.numpy(), atol=4 * math.sqrt(0.25 / n_draws))


def test_sampling_is_a_function_of_the_uniforms_and_never_draws_zero_probability() -> None:
    c = critic_with_known_q("expectile")
    chosen = sample_candidates(c, OBS, CAND, "argmax", torch.rand(3))
    assert torch.equal(chosen[:, 0], torch.tensor([2.0, 5.0, 99.0]))
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]).expand(50_000, 5)
    u = torch.rand(50_000, generator=torch.Generator().manual_seed(3))
    idx = sample_index(probs, u)
    assert set(idx.unique().tolist()) == {1, 3}
    # inverse CDF: u < 0.5 picks the first candidate with mass, u >= 0.5 the second; u → 1 stays in range
    assert sample_index(probs[:4], torch.tensor([0.0, 0.4999, 0.5, 0.99999994])).tolist() == [1, 1, 3, 3]
    u = torch.rand(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample_candidates(c, OBS, CAND, "softmax", u), sample_candidates(c, OBS, CAND, "softmax", u))
