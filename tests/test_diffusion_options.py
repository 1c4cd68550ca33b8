"""The diffusion actors' fidelity options, on tiny hand-built models: EDP's loss balance, Q aggregation,
EMA cadence and which weights act. Every expected value is computed by hand in the test."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from offrl.actors.diffusion_resample import DiffusionResampleActor, DiffusionResampleConfig
from offrl.actors.edp import EDPActor, EDPConfig
from offrl.critics.base import aggregate_q
from offrl.data.transitions import Batch
from offrl.errors import OfflineRLError


class _StubCritic:
    """Q₁(s, a) = Σ a, Q₂(s, a) = 2 − Σ a for every state; V = 0, so A = min Q̄ = min(Σa, 2 − Σa)."""

    def _q_all(self, act: Tensor) -> Tensor:
        total = act.sum(-1)
        return torch.stack([total, 2.0 - total])

    def q(self, obs: Tensor, act: Tensor, agg: str = "min", u: Tensor | None = None) -> Tensor:
        return aggregate_q(self._q_all(act), agg, u)

    def q_for_actor(self, obs: Tensor, act: Tensor, agg: str = "min", u: Tensor | None = None) -> Tensor:
        return aggregate_q(self._q_all(act), agg, u)

    def v(self, obs: Tensor) -> Tensor:
        return torch.zeros(obs.shape[0])

    def advantage(self, obs: Tensor, act: Tensor) -> Tensor:
        return self.q(obs, act)


def _edp(**cfg: object) -> EDPActor:
    """EDP actor (A = 3, T = 1000) whose ε-network outputs the constant b = (−½, ½, −½)."""
    torch.manual_seed(0)
    actor = EDPActor(EDPConfig(**{"hidden": 8, "depth": 1, **cfg}), 2, 3, 100)
    out = actor.model.denoiser.net[-1]
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor([-0.5, 0.5, -0.5]))
    return actor


# One state, action a = (0.2, −0.4, 0.6) (A = Σa − 2·0 … = 0.4 ≥ 0), noised at the last step k = 999 with
# ε = 0: a_k = √ᾱ a with ᾱ ≈ 4e-5, so â⁰ = a − √(1/ᾱ − 1)·b ≈ a − 158·b, clipped to (1, −1, 1).
BATCH = Batch(torch.zeros(1, 2), torch.tensor([[0.2, -0.4, 0.6]]), torch.zeros(1), torch.zeros(1, 2),
              torch.zeros(1))
NOISE = {"k": torch.tensor([999]), "eps": torch.zeros(1, 3)}


@pytest.mark.parametrize("reduction, diffusion", [("mean", 0.25), ("sum", 0.75)])
def test_edp_weighted_loss_balance_by_hand(reduction: str, diffusion: float) -> None:
    """(ε − b)² = ¼ per dim: mean over A = 3 dims ¼ (EDP's mean_flat), sum ¾. Guide: A(s, a) = min(0.4, 1.6)
    = 0.4, w = min(e^{β·0.4}, 100) with β = 3 → e^{1.2}; ½‖a − â⁰‖² = ½(0.8² + 0.6² + 0.4²) = 0.58."""
    actor = _edp(guide="weighted", beta=3.0, bc_reduction=reduction)
    loss, metrics = actor.loss(BATCH, NOISE, _StubCritic())
    guide = math.exp(1.2) * 0.58
    assert metrics["actor/diffusion_loss"].item() == pytest.approx(diffusion, rel=1e-6)
    assert metrics["actor/guide"].item() == pytest.approx(guide, rel=1e-5)
    assert loss.item() == pytest.approx(diffusion + guide, rel=1e-5)


@pytest.mark.parametrize("reduction, diffusion", [("mean", 0.25), ("sum", 0.75)])
def test_edp_q_gradient_loss_balance_by_hand(reduction: str, diffusion: float) -> None:
    """Q(s, â⁰) = min(Σâ⁰, 2 − Σâ⁰) = min(1, 1) = 1 > 0, so the guide −α·Q/|Q| = −α = −2 whatever the scale:
    only the diffusion term changes with the reduction (the guide is A× weaker relative to a summed MSE)."""
    actor = _edp(guide="q-gradient", alpha=2.0, bc_reduction=reduction)
    loss, metrics = actor.loss(BATCH, NOISE, _StubCritic())
    assert metrics["actor/guide"].item() == pytest.approx(-2.0)
    assert loss.item() == pytest.approx(diffusion - 2.0, rel=1e-6)


def test_edp_bc_reduction_is_validated() -> None:
    with pytest.raises(OfflineRLError, match=r"actor\.bc_reduction.*Valid choices: mean, sum"):
        EDPConfig(bc_reduction="avg")


def test_diffusion_resample_keeps_idqls_summed_noise_loss() -> None:
    """IDQL's code sums the squared error over action dims (then averages over the batch)."""
    torch.manual_seed(0)
    actor = DiffusionResampleActor(DiffusionResampleConfig(network="mlp", hidden=8, depth=1), 2, 3, 100)
    out = actor.model.denoiser.net[-1]
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor([-0.5, 0.5, -0.5]))
    loss, _ = actor.loss(BATCH, {"k": torch.tensor([3]), "eps": torch.zeros(1, 3)}, _StubCritic())
    assert loss.item() == pytest.approx(0.75)
