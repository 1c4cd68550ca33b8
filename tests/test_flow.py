"""The flow core and the flow actors: Euler by hand, the flow loss by hand, mixture transport,
FQL's loss and gradients by hand, IFQL's candidates.

The mixture test trains one small velocity field (MLP 3×128, 1500 Adam steps,
~2 s on one core) on four separated Gaussians with unequal weights and checks
that 10 Euler steps put the samples on the modes with their weights.
"""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from offrl.actors.flow_resample import FlowResampleActor, FlowResampleConfig
from offrl.actors.fql import FQLActor, FQLConfig
from offrl.component import draw_noise
from offrl.critics.base import aggregate_q
from offrl.data.transitions import Batch
from offrl.errors import OfflineRLError
from offrl.generative.flow import VelocityField, euler_sample, flow_matching_loss, interpolate


class _TimeField(nn.Module):
    """v(s, x, t) = t·1 + s₀·x: Euler has a closed form to compare with."""

    def forward(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        return t.reshape(-1, 1).expand_as(x) + obs[:, :1] * x


# --------------------------------------------------------------------------- the core


def test_euler_sampler_takes_steps_explicit_euler_steps() -> None:
    """x ← x + v(s, x, i/n)/n for i = 0..n−1: with v = t, x₁ = x₀ + (n−1)/(2n); with v = t + c·x the
    recursion x ← (1 + c/n)x + i/n² unrolled by hand; clipping only at the end."""
    x0 = torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    steps = 4
    out = euler_sample(_TimeField(), torch.zeros(2, 1), x0, steps, clip=None)
    torch.testing.assert_close(out, x0 + (steps - 1) / (2 * steps))
    c = 0.5
    x = x0.clone()
    for i in range(steps):
        x = (1 + c / steps) * x + i / steps**2
    torch.testing.assert_close(euler_sample(_TimeField(), torch.full((2, 1), c), x0, steps, clip=None), x)
    big = euler_sample(_TimeField(), torch.full((2, 1), 3.0), x0 + 2.0, steps)  # grows past the bounds
    assert big.abs().max() == 1.0


def test_flow_matching_loss_by_hand() -> None:
    """x_t = (1 − t)x₀ + t·x₁, target x₁ − x₀, mean over batch and action dims."""
    x1 = torch.tensor([[0.5, -0.5], [1.0, 0.0]])
    x0 = torch.tensor([[0.0, 1.0], [-1.0, 2.0]])
    t = torch.tensor([[0.25], [0.5]])
    obs = torch.tensor([[2.0], [1.0]])
    x_t = torch.tensor([[0.125, 0.625], [0.0, 1.0]])
    torch.testing.assert_close(interpolate(x0, x1, t), x_t)
    v = torch.tensor([[0.25 + 2 * 0.125, 0.25 + 2 * 0.625], [0.5 + 0.0, 0.5 + 1.0]])  # t + s₀·x_t
    # v − (x₁ − x₀) = [[0, 3], [−1.5, 3.5]]
    expected = (0.0 + 9.0 + 2.25 + 12.25) / 4
    assert flow_matching_loss(_TimeField(), obs, x1, x0, t).item() == pytest.approx(expected)
    assert ((v - (x1 - x0)) ** 2).mean().item() == pytest.approx(expected)


MODES = torch.tensor([[0.6, 0.6], [-0.6, 0.6], [-0.6, -0.6], [0.6, -0.6]])
WEIGHTS = torch.tensor([0.4, 0.3, 0.2, 0.1])


def test_flow_transports_noise_onto_a_mixture() -> None:
    """A velocity field trained by flow matching on four modes: 10 Euler steps land most samples
    near a mode, in the modes' proportions, and leave the empty middle empty."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    field = VelocityField(1, 2, (128, 128, 128), "gelu")
    opt = torch.optim.Adam(field.parameters(), lr=2e-3)
    steps, batch = 1500, 256
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    obs = torch.ones(batch, 1)
    for _ in range(steps):
        idx = torch.multinomial(WEIGHTS, batch, replacement=True, generator=g)
        x1 = (MODES[idx] + 0.05 * torch.randn(batch, 2, generator=g)).clamp(-1, 1)
        loss = flow_matching_loss(field, obs, x1, torch.randn(batch, 2, generator=g), torch.rand(batch, 1, generator=g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
        x = euler_sample(field, torch.ones(2000, 1), x0, 10)
    d = torch.cdist(x, MODES)
    shares = torch.bincount(d.argmin(1), minlength=4).float() / len(x)
    assert (shares - WEIGHTS).abs().max() < 0.06, shares.tolist()
    assert (d.min(1).values < 0.2).float().mean() > 0.8
    assert (x.norm(dim=1) < 0.3).float().mean() < 0.05  # no mass averaged into the middle


# --------------------------------------------------------------------------- FQL


class _TwinQ:
    """Stub critic: Q₁(s, a) = 2a₀ − a₁, Q₂(s, a) = a₀ + s₀, aggregated like offrl's critics."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def q_for_actor(self, obs: Tensor, act: Tensor, agg: str = "min", u: Tensor | None = None) -> Tensor:
        self.calls.append(agg)
        q_all = torch.stack([2 * act[:, 0] - act[:, 1], act[:, 0] + obs[:, 0]])
        return aggregate_q(q_all, agg, u)


def _constant(mlp_out: nn.Linear, value: list[float]) -> None:
    with torch.no_grad():
        mlp_out.weight.zero_()
        mlp_out.bias.copy_(torch.tensor(value))


def _fql(**cfg: object) -> FQLActor:
    torch.manual_seed(0)
    actor = FQLActor(FQLConfig(**{"hidden_dims": (8,), "flow_steps": 4, **cfg}), 1, 2, 100)
    _constant(actor.flow.net.out, [0.5, -1.0])  # v_θ ≡ b = (0.5, −1)
    _constant(actor.onestep.out, [0.3, 0.9])  # μ_ω ≡ c = (0.3, 0.9)
    return actor


BATCH = Batch(torch.tensor([[1.0], [-2.0]]), torch.tensor([[0.2, -0.4], [0.6, 0.8]]), torch.zeros(2),
              torch.zeros(2, 1), torch.zeros(2))
NOISE = {"t": torch.tensor([[0.5], [0.25]]), "x0": torch.tensor([[0.0, 0.4], [-0.2, 0.0]]),
         "z": torch.tensor([[0.2, 0.6], [-0.4, 0.8]])}


@pytest.mark.parametrize("q_agg, normalize", [("mean", False), ("min", False), ("mean", True)])
def test_fql_loss_by_hand(q_agg: str, normalize: bool) -> None:
    """With v ≡ b and μ ≡ c: L_flow = mean(b − (a − x₀))², ODE(s, z) = clip(z + b), distillation
    mean(c − clip(z + b))², Q term −agg Q(s, c) (over 1/mean|Q| when normalised)."""
    alpha = 3.0
    actor = _fql(alpha=alpha, q_agg=q_agg, normalize_q_loss=normalize)
    b, c = torch.tensor([0.5, -1.0]), torch.tensor([0.3, 0.9])
    a, x0, z, s = BATCH.actions, NOISE["x0"], NOISE["z"], BATCH.observations
    flow = ((b - (a - x0)) ** 2).mean()  # b − (a − x₀) = [[.3, −.2], [−.3, −1.8]] → (.09 + .04 + .09 + 3.24)/4
    assert flow.item() == pytest.approx(0.865)
    ode = (z + b).clamp(-1, 1)  # [[0.7, −0.4], [0.1, −0.2]]
    distill = ((c - ode) ** 2).mean()  # (0.16 + 1.69 + 0.04 + 1.21)/4
    assert distill.item() == pytest.approx(0.775)
    q1 = 2 * c[0] - c[1]  # −0.3 for every state
    q2 = c[0] + s[:, 0]  # [1.3, −1.7]
    q = (q1 + q2) / 2 if q_agg == "mean" else torch.minimum(q1, q2)
    q_loss = -q.mean() / (q.abs().mean() if normalize else 1.0)
    loss, metrics = actor.loss(BATCH, NOISE, _TwinQ())
    torch.testing.assert_close(loss, flow + alpha * distill + q_loss)
    torch.testing.assert_close(metrics["actor/flow_loss"], flow)
    torch.testing.assert_close(metrics["actor/distill_loss"], distill)
    torch.testing.assert_close(metrics["actor/q_loss"], q_loss)


def test_fql_distillation_target_is_a_constant_and_q_moves_only_the_one_step_policy() -> None:
    """∂L/∂b (flow bias) is L_flow's alone: the ODE target is stop-gradient. ∂L/∂c (one-step bias) is
    2α(c − ODE)/A-mean minus ∂Q/∂c — the flow never sees Q."""
    alpha = 3.0
    actor = _fql(alpha=alpha, q_agg="mean")
    loss, _ = actor.loss(BATCH, NOISE, _TwinQ())
    loss.backward()
    b, c = torch.tensor([0.5, -1.0]), torch.tensor([0.3, 0.9])
    a, x0, z = BATCH.actions, NOISE["x0"], NOISE["z"]
    grad_b = 2 * (b - (a - x0)).sum(0) / a.numel()  # d/db mean (b − (a − x₀))²
    torch.testing.assert_close(actor.flow.net.out.bias.grad, grad_b)
    ode = (z + b).clamp(-1, 1)
    # −mean_B ½(Q₁ + Q₂): ∂/∂c₀ = −½(2 + 1) = −1.5, ∂/∂c₁ = −½(−1) = 0.5 (c inside [−1, 1], clip passes it)
    grad_c = 2 * alpha * (c - ode).sum(0) / a.numel() + torch.tensor([-1.5, 0.5])
    torch.testing.assert_close(actor.onestep.out.bias.grad, grad_c)


def test_fql_acts_and_backs_up_with_the_one_step_policy() -> None:
    actor = _fql()
    critic = _TwinQ()
    z = {"z": torch.randn(5, 2)}
    torch.testing.assert_close(actor.act(torch.randn(5, 1), critic, z), torch.tensor([[0.3, 0.9]]).expand(5, 2))
    torch.testing.assert_close(actor.next_actions(torch.randn(5, 1), z), torch.tensor([[0.3, 0.9]]).expand(5, 2))
    assert critic.calls == []  # acting never asks the critic
    assert set(actor.update_noise(7, critic)) == {"t", "x0", "z"}
    assert set(_fql(q_agg="random").update_noise(7, critic)) == {"t", "x0", "z", "q_member"}


def test_fql_random_member_picks_one_q_per_update() -> None:
    actor = _fql(q_agg="random")
    _, m0 = actor.loss(BATCH, {**NOISE, "q_member": torch.tensor(0.2)}, _TwinQ())  # member 0: Q₁
    _, m1 = actor.loss(BATCH, {**NOISE, "q_member": torch.tensor(0.7)}, _TwinQ())  # member 1: Q₂
    assert m0["actor/q"].item() == pytest.approx(-0.3)
    assert m1["actor/q"].item() == pytest.approx(0.3 + (1.0 - 2.0) / 2)


@pytest.mark.parametrize("key, value", [("q_agg", "max"), ("alpha", -1.0), ("flow_steps", 0)])
def test_fql_rejects_bad_config(key: str, value: object) -> None:
    with pytest.raises(OfflineRLError, match=key):
        FQLConfig(**{key: value})


# --------------------------------------------------------------------------- IFQL


class _PreferRight:
    """Q̄(s, a) = a₀: argmax picks the candidate furthest right."""

    def q(self, obs: Tensor, act: Tensor) -> Tensor:
        return act[:, 0]


def test_flow_resample_acts_with_the_best_of_n_flow_samples() -> None:
    torch.manual_seed(0)
    actor = FlowResampleActor(FlowResampleConfig(hidden_dims=(16,), num_samples=6, flow_steps=3), 2, 2, 10)
    obs = torch.randn(4, 2)
    noise = draw_noise(actor.act_noise(4), torch.Generator().manual_seed(0), "cpu")
    acts = actor.act(obs, _PreferRight(), noise)
    cands = actor.sample(obs.repeat_interleave(6, 0), noise["x0"]).reshape(4, 6, 2)
    torch.testing.assert_close(acts, cands[torch.arange(4), cands[..., 0].argmax(1)])
    one = actor.next_actions(obs, {"x0": noise["x0"][::6]})  # one flow sample per state, no critic
    torch.testing.assert_close(one, cands[:, 0])
    loss, _ = actor.loss(Batch(obs, torch.zeros(4, 2), torch.zeros(4), obs, torch.zeros(4)),
                         {"t": torch.rand(4, 1), "x0": torch.randn(4, 2)}, None)
    assert torch.isfinite(loss)  # behaviour cloning: the critic (None here) is never read
