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


# One state, action a = (0.2, −0.4, 0.6), noised at the last step k = 999 with ε = 0: a_k = √ᾱ a with
# ᾱ ≈ 4e-5, so â⁰ = a − √(1/ᾱ − 1)·b ≈ a − 158·b, clipped to (1, −1, 1).
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


# --------------------------------------------------------------------------- q_agg


class _MemberCritic(_StubCritic):
    """Q_i(s, a) = a_i (member i reads action dimension i), target and online alike."""

    def _q_all(self, act: Tensor) -> Tensor:
        return act[:, :2].T


@pytest.mark.parametrize("q_agg, u, guide", [("min", None, 2.0), ("mean", None, 0.0), ("q1", None, -2.0),
                                             ("random", 0.2, -2.0), ("random", 0.7, 2.0)])
def test_edp_q_gradient_guide_reads_q_agg(q_agg: str, u: float | None, guide: float) -> None:
    """â⁰ = (1, −1, 1): Q₁ = 1, Q₂ = −1, so −α·Q/|Q| (α = 2) is +2 (min), 0 (mean), −2 (q1), and for
    random the member ⌊u·2⌋: u = 0.2 → Q₁, u = 0.7 → Q₂."""
    actor = _edp(guide="q-gradient", alpha=2.0, q_agg=q_agg)
    noise = dict(NOISE)
    if u is not None:
        assert actor.update_noise(1, _MemberCritic())["q_member"].shape == ()  # one member per update
        noise["q_member"] = torch.tensor(u)
    _, metrics = actor.loss(BATCH, noise, _MemberCritic())
    assert metrics["actor/guide"].item() == pytest.approx(guide)


# Four candidates (Q₁, Q₂) = (0, .9), (.5, .5), (.9, −.2), (.1, 1): min picks #1, mean #3 (0.55), q1 #2, Q₂ #3.
CANDIDATES = torch.tensor([[0.0, 0.9], [0.5, 0.5], [0.9, -0.2], [0.1, 1.0]])


@pytest.mark.parametrize("actor_name", ["diffusion-resample", "edp", "flow-resample"])
@pytest.mark.parametrize("q_agg, expected", [("min", [1, 1]), ("mean", [3, 3]), ("q1", [2, 2]),
                                             ("random", [2, 3])])
def test_candidate_selection_reads_q_agg(actor_name: str, q_agg: str, expected: list[int]) -> None:
    """argmax over the candidates of two states; random draws one member per state (u = 0.2 → Q₁, 0.7 → Q₂)."""
    from offrl.actors import ACTORS

    cls = ACTORS.get(actor_name)
    extra = {"hidden_dims": (8,)} if actor_name == "flow-resample" else {"hidden": 8, "depth": 1}
    actor = cls(cls.Config(selection="argmax", num_samples=4, q_agg=q_agg, **extra), 2, 2, 10)
    actor.sample = lambda obs, noise, **kw: CANDIDATES.repeat(2, 1)  # [(b n), A], the same four for both states
    spec = actor.act_noise(2)
    assert ("q_member" in spec) == (q_agg == "random")
    noise = {"select": torch.zeros(2), "q_member": torch.tensor([0.2, 0.7]), "x0": torch.zeros(8, 2)}
    acts = actor.act(torch.zeros(2, 2), _MemberCritic(), noise)
    torch.testing.assert_close(acts, CANDIDATES[expected])


def test_q_agg_is_validated() -> None:
    with pytest.raises(OfflineRLError, match=r"actor\.q_agg.*Valid choices: mean, min, q1, random"):
        EDPConfig(q_agg="max")


# --------------------------------------------------------------------------- EMA cadence, acting weights


def _resample(**cfg: object) -> DiffusionResampleActor:
    torch.manual_seed(0)
    return DiffusionResampleActor(DiffusionResampleConfig(**{"network": "mlp", "hidden": 8, "depth": 1, **cfg}),
                                  2, 2, 100)


def _params(module: torch.nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_ema_copies_the_live_weights_up_to_ema_start_then_updates_every_k() -> None:
    actor = _resample(ema_rate=0.5, ema_every=2, ema_start=3)
    out, shadow = actor.model.denoiser.net[-1], actor.ema.module.denoiser.net[-1]
    for step, value in [(1, 1.0), (2, -2.0), (3, 3.0)]:  # n ≤ start: an exact copy, whatever the value
        with torch.no_grad():
            out.bias.fill_(value)
        actor.after_update(torch.tensor(float(step)))
        for p, q in zip(actor.model.parameters(), actor.ema.module.parameters()):
            assert torch.equal(p, q)
    # n = 4: 4 > 3 and 2 | 4 → θ̄ = 3 + ½(10 − 3) = 6.5; n = 5: not due, unchanged; n = 6: 6.5 + ½(20 − 6.5)
    for step, value, expected in [(4, 10.0, 6.5), (5, 20.0, 6.5), (6, 20.0, 13.25), (7, 0.0, 13.25)]:
        with torch.no_grad():
            out.bias.fill_(value)
        actor.after_update(torch.tensor(float(step)))
        torch.testing.assert_close(shadow.bias, torch.full_like(shadow.bias, expected))


def test_default_ema_updates_after_every_update() -> None:
    actor = _resample(ema_rate=0.25)
    out, shadow = actor.model.denoiser.net[-1], actor.ema.module.denoiser.net[-1]
    start = shadow.bias.detach().clone()
    with torch.no_grad():
        out.bias.fill_(4.0)
    actor.after_update(torch.tensor(1.0))
    torch.testing.assert_close(shadow.bias, start + 0.25 * (4.0 - start))


@pytest.mark.parametrize("act_with", ["ema", "live"])
def test_act_with_chooses_the_acting_weights(act_with: str) -> None:
    """Only the live ε-network is made to output −50 everywhere, which drives every DDPM step to the bound +1:
    acting with the live weights gives exactly +1, acting with the EMA copy (untouched) does not."""
    actor = _resample(act_with=act_with, num_samples=3, timesteps=5)
    out = actor.model.denoiser.net[-1]
    with torch.no_grad():
        out.weight.zero_()
        out.bias.fill_(-50.0)
    noise = {k: v.draw(torch.Generator().manual_seed(0), torch.device("cpu")) for k, v in actor.act_noise(4).items()}
    acts = actor.act(torch.zeros(4, 2), _MemberCritic(), noise)
    assert torch.equal(acts, torch.ones(4, 2)) == (act_with == "live")
    nxt = actor.next_actions(torch.zeros(4, 2), {k: v.draw(torch.Generator().manual_seed(0), torch.device("cpu"))
                                                 for k, v in actor.next_action_noise(4).items()})
    assert not torch.equal(nxt, torch.ones(4, 2)), "next actions always come from the EMA copy"


@pytest.mark.parametrize("key, value, match", [("ema_every", 0, "ema_every"), ("ema_start", -1, "ema_start"),
                                               ("act_with", "target", r"act_with.*Valid choices: ema, live")])
def test_ema_options_are_validated(key: str, value: object, match: str) -> None:
    with pytest.raises(OfflineRLError, match=match):
        DiffusionResampleConfig(**{key: value})


# --------------------------------------------------------------------------- DPM-Solver options


@pytest.mark.parametrize("solver, order, spacing, t_end", [("multistep", 3, "logsnr", 0.0),
                                                           ("singlestep", 3, "time_uniform", 1e-3),
                                                           ("singlestep", 2, "logsnr", 0.0)])
def test_actor_samples_with_the_configured_solver(solver: str, order: int, spacing: str, t_end: float) -> None:
    from offrl.generative.diffusion import sample_dpm_solver, sample_dpm_solver_singlestep

    actor = _edp(solver=solver, solver_order=order, solver_spacing=spacing, solver_t_end=t_end, solver_steps=6)
    obs, x_T = torch.zeros(5, 2), torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    solve = sample_dpm_solver if solver == "multistep" else sample_dpm_solver_singlestep
    expected = solve(actor.ema.module, obs, steps=6, order=order, noise={"x_T": x_T},
                     skip_type={"logsnr": "logSNR", "time_uniform": "time_uniform"}[spacing], t_end=t_end or None)
    torch.testing.assert_close(actor.sample(obs, {"x_T": x_T}), expected)


@pytest.mark.parametrize("key, value, match", [("solver", "adaptive", r"actor\.solver.*multistep, singlestep"),
                                               ("solver_spacing", "quadratic", r"actor\.solver_spacing"),
                                               ("solver_order", 4, r"actor\.solver_order"),
                                               ("solver_t_end", 1.0, r"actor\.solver_t_end")])
def test_solver_options_are_validated(key: str, value: object, match: str) -> None:
    with pytest.raises(OfflineRLError, match=match):
        EDPConfig(**{key: value})


# --------------------------------------------------------------------------- ε-network options


def test_idql_released_network_shapes() -> None:
    """IDQL's exported learner: swish, learnable Fourier features of size 128, time MLP 128 → 256 → swish → 256."""
    import offrl
    from offrl.generative.diffusion import LearnableFourierFeatures

    cfg = offrl.make_config(preset="idql-released")
    a = cfg.actor_cfg
    assert (a.activation, a.time_embedding, a.time_dim, tuple(a.time_mlp)) == ("swish", "fourier", 128, (256, 256))
    actor = DiffusionResampleActor(a, 11, 3, 100)
    net = actor.model.denoiser
    tm = net.time_mlp
    assert isinstance(tm[0], LearnableFourierFeatures) and tm[0].weight.shape == (64, 1)  # 128 features = cos, sin
    assert [type(m).__name__ for m in tm] == ["LearnableFourierFeatures", "Linear", "SiLU", "Linear"]
    assert (tm[1].in_features, tm[1].out_features, tm[3].out_features) == (128, 256, 256)
    assert net.inp.in_features == 3 + 11 + 256
    assert all(type(b.body[2]).__name__ == "SiLU" for b in net.blocks) and type(net.out[0]).__name__ == "SiLU"
    assert net(torch.zeros(4, 3), torch.tensor([0, 1, 2, 4]), torch.zeros(4, 11)).shape == (4, 3)


def test_default_networks_keep_their_time_embeddings() -> None:
    """auto: ln-resnet Fourier 64 → (128, 128) with Mish, mlp sinusoidal 16 → 32 → 16 (EDP)."""
    ln = _resample(network="ln-resnet").model.denoiser.time_mlp
    assert type(ln[0]).__name__ == "LearnableFourierFeatures" and ln[0].weight.shape == (32, 1)
    assert (ln[1].out_features, ln[3].out_features, type(ln[2]).__name__) == (128, 128, "Mish")
    mlp = _edp().model.denoiser.time_mlp
    assert type(mlp[0]).__name__ == "SinusoidalEmbedding"
    assert (mlp[1].in_features, mlp[1].out_features, mlp[3].out_features) == (16, 32, 16)
    swapped = _edp(time_embedding="fourier", time_dim=8, time_mlp=(12,)).model.denoiser
    assert [type(m).__name__ for m in swapped.time_mlp] == ["LearnableFourierFeatures", "Linear"]
    assert swapped.net[0].in_features == 2 + 3 + 12


@pytest.mark.parametrize("key, value, match", [("activation", "sigmoid", r"actor\.activation"),
                                               ("time_embedding", "learned", r"actor\.time_embedding"),
                                               ("time_dim", 7, r"actor\.time_dim"),
                                               ("time_mlp", (0,), r"actor\.time_mlp")])
def test_network_options_are_validated(key: str, value: object, match: str) -> None:
    with pytest.raises(OfflineRLError, match=match):
        DiffusionResampleConfig(**{key: value})


def test_edp_preset_follows_edps_code() -> None:
    import offrl

    cfg = offrl.make_config(preset="edp-iql-locomotion")
    c, a = cfg.critic_cfg, cfg.actor_cfg
    assert (tuple(c.hidden_dims), c.activation, c.max_grad_norm) == ((256, 256, 256), "mish", 9.0)
    assert (a.solver, a.solver_order, a.solver_spacing, a.solver_t_end, a.solver_steps) == (
        "singlestep", 3, "time_uniform", 1e-3, 15)
    assert (a.ema_rate, a.ema_every, a.ema_start, a.act_with) == (0.005, 5, 1000, "live")
    assert (a.bc_reduction, a.max_grad_norm, a.q_agg) == ("mean", 9.0, "min")
    assert cfg.data.reward == "none"  # EDP's trainer leaves locomotion rewards raw (norm_reward=False, scale 1)
    critic = offrl.critics.CRITICS.get(cfg.critic)(c, 4, 2)
    assert [type(m).__name__ for m in critic.v_net.modules()].count("Linear") == 4  # 3 hidden + output
    assert type(critic.v_net.act).__name__ == "Mish"
