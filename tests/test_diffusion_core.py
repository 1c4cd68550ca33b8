"""The shared diffusion core: schedules, denoisers, DDPM loss/sampling, DPM-Solver, EMA.

The mixture tests train one small model (MLP 3×128, linear schedule T = 100,
3000 Adam steps, ~7 s on one core) on four separated Gaussians with unequal
weights and check that both samplers reproduce the modes and their weights,
where a single Gaussian fit cannot.
"""
from __future__ import annotations

import math

import einops
import pytest
import torch
from torch import Tensor, nn

from offrl.diffusion import (
    EMA,
    DiscreteVPTime,
    GaussianDiffusion,
    LNResNetDenoiser,
    MLPDenoiser,
    cosine_schedule,
    linear_schedule,
    make_denoiser,
    make_schedule,
    one_step_x0,
    repeat_states,
    sample_dpm_solver,
    sample_dpm_solver_singlestep,
    vp_schedule,
)
from offrl.generative.diffusion.solvers import singlestep_orders
from offrl.errors import ConfigError

# --------------------------------------------------------------------------- schedules


def test_vp_schedule_reproduces_idql_alpha_bars() -> None:
    s = vp_schedule(5)
    expected = torch.tensor([0.804, 0.435, 0.159, 0.039, 0.0064])
    assert s.alpha_bars.dtype == torch.float32 and s.T == 5
    torch.testing.assert_close(s.alpha_bars, expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(s.alphas, 0))


def test_linear_schedule_is_scaled_with_T_so_short_chains_reach_noise() -> None:
    scaled = linear_schedule(5).alpha_bars[-1].item()
    unscaled = linear_schedule(5, scale_with_T=False).alpha_bars[-1].item()  # IDQL's 'linear'
    assert scaled < 0.05 and unscaled > 0.9, f"ᾱ_T scaled={scaled:.3g}, unscaled={unscaled:.3g}"
    assert linear_schedule(5).betas.max() <= torch.tensor(0.999)  # β clipped below 1
    # At T = 1000 the scale is 1: DDPM's original 1e-4 → 2e-2.
    b = make_schedule("linear", 1000).betas
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("name", ["vp", "linear", "cosine"])
@pytest.mark.parametrize("T", [1, 2, 5, 20, 1000])
def test_schedules_are_valid_for_any_T(name: str, T: int) -> None:
    s = make_schedule(name, T)
    assert s.betas.shape == s.alpha_bars.shape == (T,)
    assert s.alpha_bars.dtype == torch.float32
    assert bool(((s.betas > 0) & (s.betas <= 0.999)).all())
    assert bool(((s.alpha_bars > 0) & (s.alpha_bars < 1)).all())
    assert bool((s.alpha_bars[1:] < s.alpha_bars[:-1]).all()), "ᾱ must decrease strictly"


def test_cosine_schedule_is_the_cosine_curve() -> None:
    T, s_ = 20, 0.008
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    f = lambda x: torch.cos((x + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    expected = (f(t) / f(torch.zeros(1, dtype=torch.float64))).float()
    got = cosine_schedule(T).alpha_bars
    torch.testing.assert_close(got[:-1], expected[:-1], atol=1e-6, rtol=1e-5)  # last β is clipped
    assert got[-1] > 0


@pytest.mark.parametrize(
    ("name", "T", "needle"),
    [("cosin", 5, "'cosin'"), ("sigmoid", 5, "'sigmoid'"), ("vp", 0, "T=0"), ("linear", -3, "T=-3"),
     ("vp", 2.5, "T=2.5")],
)
def test_make_schedule_rejects_bad_values(name: str, T: int, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_schedule(name, T)
    msg = str(info.value)
    assert needle in msg
    if needle.startswith("'"):
        assert "cosine, linear, vp" in msg


def test_make_denoiser_rejects_bad_name_and_option() -> None:
    with pytest.raises(ConfigError, match="'resnet'.*ln-resnet, mlp"):
        make_denoiser("resnet", 3, 2)
    with pytest.raises(ConfigError, match="hidden_dim"):
        make_denoiser("mlp", 3, 2, hidden_dim=64)
    assert isinstance(make_denoiser("ln-resnet", 3, 2, hidden=16, n_blocks=1), LNResNetDenoiser)


# --------------------------------------------------------------------------- model pieces


@pytest.mark.parametrize(("name", "T", "min_alpha_bar"), [("vp", 5, 0.0), ("linear", 1000, 1e-2)])
def test_one_step_x0_inverts_the_forward_process(name: str, T: int, min_alpha_bar: float) -> None:
    """â⁰ = a_k/√ᾱ_k − √(1/ᾱ_k − 1)·ε is a⁰ when ε̂ = ε (float32 cancellation limits tiny ᾱ)."""
    s = make_schedule(name, T)
    g = torch.Generator().manual_seed(0)
    a0 = torch.rand(4096, 3, generator=g) * 1.8 - 0.9  # in bounds: clipping is a no-op
    eps = torch.randn(4096, 3, generator=g)
    k = torch.randint(0, T, (4096,), generator=g)
    k = k[s.alpha_bars[k] >= min_alpha_bar]
    a0, eps = a0[: len(k)], eps[: len(k)]
    model = GaussianDiffusion(MLPDenoiser(1, 3, hidden=8, n_layers=1), s)
    a_k = model.q_sample(a0, k, eps)
    torch.testing.assert_close(one_step_x0(a_k, k, eps, s.alpha_bars), a0, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.one_step_x0(a_k, k, eps), a0, atol=1e-5, rtol=0)
    # Out-of-bound reconstructions are clipped to ±clip_value, or not at all with None.
    wrong = -torch.ones_like(eps) * 3
    assert model.one_step_x0(a_k, k, wrong).abs().max() <= 1.0
    assert one_step_x0(a_k, k, wrong, s.alpha_bars, clip_value=None).abs().max() > 1.0


def test_loss_terms_are_consistent_and_seeded() -> None:
    torch.manual_seed(0)
    model = GaussianDiffusion(MLPDenoiser(4, 2, hidden=16, n_layers=2), make_schedule("vp", 5))
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(512, 2, generator=g) * 2 - 1
    obs = torch.randn(512, 4, generator=g)
    terms = model.loss_terms(actions, obs, generator=torch.Generator().manual_seed(1))
    assert terms.loss.shape == (512,) and terms.k.dtype == torch.long
    assert set(terms.k.tolist()) == set(range(5)), "k must cover every step"
    torch.testing.assert_close(terms.a_k, model.q_sample(actions, terms.k, terms.eps))
    torch.testing.assert_close(terms.eps_hat, model(terms.a_k, terms.k, obs))
    torch.testing.assert_close(terms.loss, (terms.eps - terms.eps_hat).square().sum(-1))
    torch.testing.assert_close(terms.a0_hat, model.one_step_x0(terms.a_k, terms.k, terms.eps_hat))
    same = model.loss(actions, obs, generator=torch.Generator().manual_seed(1))
    other = model.loss(actions, obs, generator=torch.Generator().manual_seed(2))
    assert torch.equal(same, terms.loss) and not torch.equal(same, other)
    same.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "denoiser",
    [
        lambda: LNResNetDenoiser(17, 6, hidden=256, n_blocks=3, expansion=4, dropout=0.1),
        lambda: MLPDenoiser(17, 6, hidden=256, n_layers=3),
    ],
    ids=["ln-resnet-paper", "mlp-paper"],
)
def test_paper_sized_denoisers_forward_backward(denoiser) -> None:
    torch.manual_seed(0)
    net = denoiser()
    x, obs = torch.randn(32, 6), torch.randn(32, 17)
    t = torch.randint(0, 1000, (32,))
    out = net(x, t, obs)
    assert out.shape == (32, 6)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    # Fractional steps (DPM-Solver) are accepted; dropout acts only with explicit uniforms, which decide the mask.
    assert net(x, t.float() + 0.5, obs).shape == (32, 6)
    assert torch.equal(net(x, t, obs), net(x, t, obs))
    spec = net.noise(32)
    if isinstance(net, LNResNetDenoiser):
        assert sorted(spec) == ["dropout0", "dropout1", "dropout2"]
        u = {k: torch.rand(n.shape, generator=torch.Generator().manual_seed(1)) for k, n in spec.items()}
        v = {k: torch.rand(n.shape, generator=torch.Generator().manual_seed(2)) for k, n in spec.items()}
        assert torch.equal(net(x, t, obs, u), net(x, t, obs, u)), "same uniforms, same mask"
        assert not torch.equal(net(x, t, obs, u), net(x, t, obs)), "dropout 0.1 must be active"
        assert not torch.equal(net(x, t, obs, u), net(x, t, obs, v))
    else:
        assert spec == {}


def test_repeat_states_layout_is_b_n() -> None:
    obs = torch.arange(6.0).reshape(3, 2)
    rep = repeat_states(obs, 4)
    assert rep.shape == (12, 2)
    for b in range(3):
        for j in range(4):
            assert torch.equal(rep[b * 4 + j], obs[b])
    back = einops.rearrange(rep, "(b n) o -> b n o", n=4)
    assert torch.equal(back[:, 0], obs) and torch.equal(back[:, 3], obs)


def test_sampling_is_deterministic_under_a_seed_and_in_bounds() -> None:
    torch.manual_seed(0)
    model = GaussianDiffusion(MLPDenoiser(3, 2, hidden=32, n_layers=2), make_schedule("linear", 50))
    model.eval()
    obs = repeat_states(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), 8)
    def dpm(o: Tensor, generator: torch.Generator) -> Tensor:
        return sample_dpm_solver(model, o, steps=10, order=3, generator=generator)

    for sample in (model.sample_ddpm, dpm):
        a = sample(obs, generator=torch.Generator().manual_seed(7))
        b = sample(obs, generator=torch.Generator().manual_seed(7))
        c = sample(obs, generator=torch.Generator().manual_seed(8))
        assert a.shape == (32, 2) and a.abs().max() <= 1.0
        assert torch.equal(a, b) and not torch.equal(a, c)
    # The EMA copy (eval mode, frozen) samples the same way.
    ema_samples = EMA(model).module.sample_ddpm(obs, generator=torch.Generator().manual_seed(7))
    direct = model.sample_ddpm(obs, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ema_samples, direct)


# --------------------------------------------------------------------------- DPM-Solver


class _CountingDenoiser(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls, self.act_dim = inner, 0, inner.act_dim

    def noise(self, batch_size: int) -> dict:
        return {}

    def forward(self, x: Tensor, t: Tensor, obs: Tensor, noise: dict | None = None) -> Tensor:
        self.calls += 1
        return self.inner(x, t, obs)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 5, 15])
@pytest.mark.parametrize("skip_type", ["logSNR", "time_uniform"])
def test_dpm_solver_makes_exactly_steps_model_calls(order: int, steps: int, skip_type: str) -> None:
    torch.manual_seed(0)
    counter = _CountingDenoiser(MLPDenoiser(3, 2, hidden=16, n_layers=1))
    model = GaussianDiffusion(counter, make_schedule("linear", 1000)).eval()
    out = sample_dpm_solver(model, torch.zeros(7, 3), steps=steps, order=order,
                            skip_type=skip_type, generator=torch.Generator().manual_seed(0))
    assert counter.calls == steps and out.shape == (7, 2) and torch.isfinite(out).all()
    counter.calls = 0
    sample_dpm_solver(model, torch.zeros(7, 3), steps=steps, order=order, denoise_to_zero=True)
    assert counter.calls == steps + 1


def test_dpm_solver_rejects_bad_arguments() -> None:
    model = GaussianDiffusion(MLPDenoiser(1, 1, hidden=8, n_layers=1), make_schedule("vp", 5))
    with pytest.raises(ConfigError, match="order"):
        sample_dpm_solver(model, torch.zeros(2, 1), order=4)
    with pytest.raises(ConfigError, match="steps"):
        sample_dpm_solver(model, torch.zeros(2, 1), steps=0)
    with pytest.raises(ConfigError, match="'uniform'"):
        sample_dpm_solver(model, torch.zeros(2, 1), skip_type="uniform")


class _GaussianOracle(nn.Module):
    """Exact ε for data N(0, s²I): ε*(x, t) = σ_t x/(α_t² s² + σ_t²)."""

    def __init__(self, ns: DiscreteVPTime, s: float) -> None:
        super().__init__()
        self.ns, self.s, self.act_dim = ns, s, 2

    def noise(self, batch_size: int) -> dict:
        return {}

    def forward(self, x: Tensor, t: Tensor, obs: Tensor, noise: dict | None = None) -> Tensor:
        tc = (t.to(x.dtype) + 1) / self.ns.N  # back from the network's step to solver time
        alpha, sigma = self.ns.log_alpha(tc).exp()[:, None], self.ns.sigma(tc)[:, None]
        return sigma * x / (alpha**2 * self.s**2 + sigma**2)


def test_dpm_solver_error_falls_with_order_on_an_exact_gaussian_model() -> None:
    """With the exact ε of Gaussian data the probability-flow ODE has the closed form
    x_t ∝ √(α_t² s² + σ_t²); higher orders must land closer to it."""
    s, schedule = 0.5, make_schedule("linear", 1000)
    ns = DiscreteVPTime(schedule.alpha_bars)
    model = GaussianDiffusion(_GaussianOracle(ns, s), schedule, clip_value=None)
    obs = torch.zeros(256, 1)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    scale = lambda t: (ns.log_alpha(t).exp() ** 2 * s**2 + ns.sigma(t) ** 2).sqrt()  # noqa: E731
    exact = x_T * scale(ns.t_grid[0]) / scale(ns.t_grid[-1])
    errors = [
        (sample_dpm_solver(model, obs, 20, order, generator=torch.Generator().manual_seed(0))
         - exact).abs().max().item()
        for order in (1, 2, 3)
    ]
    assert errors[2] < errors[1] / 5 and errors[1] < errors[0] / 3, f"errors, order 1-3: {errors}"
    assert errors[2] < 6e-3, errors


def _gaussian_ode_case(s: float = 0.5) -> tuple[GaussianDiffusion, DiscreteVPTime, Tensor, Tensor, Tensor]:
    """(model with the exact ε of N(0, s²I), its time view, obs, x_T, the exact ODE endpoint at t = 1/N)."""
    schedule = make_schedule("linear", 1000)
    ns = DiscreteVPTime(schedule.alpha_bars)
    model = GaussianDiffusion(_GaussianOracle(ns, s), schedule, clip_value=None)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    scale = lambda t: (ns.log_alpha(t).exp() ** 2 * s**2 + ns.sigma(t) ** 2).sqrt()  # noqa: E731
    return model, ns, torch.zeros(256, 1), x_T, x_T * scale(ns.t_grid[0]) / scale(ns.t_grid[-1])


@pytest.mark.parametrize("steps, order, orders", [(15, 3, [3, 3, 3, 3, 2, 1]), (16, 3, [3, 3, 3, 3, 3, 1]),
                                                  (17, 3, [3, 3, 3, 3, 3, 2]), (7, 2, [2, 2, 2, 1]), (4, 1, [1] * 4)])
def test_singlestep_orders_use_every_model_call(steps: int, order: int, orders: list[int]) -> None:
    assert singlestep_orders(steps, order) == orders and sum(orders) == steps


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 5, 15])
@pytest.mark.parametrize("skip_type", ["logSNR", "time_uniform"])
def test_singlestep_dpm_solver_makes_exactly_steps_model_calls(order: int, steps: int, skip_type: str) -> None:
    torch.manual_seed(0)
    counter = _CountingDenoiser(MLPDenoiser(3, 2, hidden=16, n_layers=1))
    model = GaussianDiffusion(counter, make_schedule("linear", 1000)).eval()
    out = sample_dpm_solver_singlestep(model, torch.zeros(7, 3), steps=steps, order=order, skip_type=skip_type,
                                       t_end=1e-3, generator=torch.Generator().manual_seed(0))
    assert counter.calls == steps and out.shape == (7, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("skip_type", ["time_uniform", "logSNR"])
def test_singlestep_order3_beats_ddim_on_an_exact_gaussian_model(skip_type: str) -> None:
    """EDP's sampler (singlestep, order 3, 15 calls, t_end = 10⁻³ = 1/N) against the closed-form ODE solution:
    within 0.1 everywhere and ≥ 3× closer than DDIM (order 1) with the same 15 calls; and it converges
    at third order (error ÷ > 8 when the calls double from 60 to 120)."""
    model, _, obs, x_T, exact = _gaussian_ode_case()

    def error(steps: int, order: int, skip: str = skip_type) -> float:
        out = sample_dpm_solver_singlestep(model, obs, steps, order, skip_type=skip, t_end=1e-3, noise={"x_T": x_T})
        return (out - exact).abs().max().item()

    ddim, third = error(15, 1), error(15, 3)
    assert third < 0.1 and third < ddim / 3, f"order 3: {third:.3g}, DDIM: {ddim:.3g}"
    assert error(60, 3, "logSNR") > 8 * error(120, 3, "logSNR")


class _MixtureOracle(nn.Module):
    """Exact ε of the four-mode mixture Σ w_m N(μ_m, s²I): ε* = −σ_t ∇log p_t,
    p_t = Σ w_m N(α_t μ_m, (α_t²s² + σ_t²)I)."""

    def __init__(self, ns: DiscreteVPTime) -> None:
        super().__init__()
        self.ns, self.act_dim = ns, 2

    def noise(self, batch_size: int) -> dict:
        return {}

    def forward(self, x: Tensor, t: Tensor, obs: Tensor, noise: dict | None = None) -> Tensor:
        tc = (t.to(x.dtype) + 1) / self.ns.N
        alpha, sigma = self.ns.log_alpha(tc).exp()[:, None], self.ns.sigma(tc)[:, None]
        var = alpha**2 * MODE_STD**2 + sigma**2  # [B, 1]
        d = x[:, None, :] - alpha[:, None, :] * MODES  # [B, M, 2]
        post = torch.softmax(WEIGHTS.log() - d.square().sum(-1) / (2 * var), dim=-1)  # p(m | x_t)
        return sigma * (post[..., None] * d).sum(1) / var


def test_singlestep_order3_reproduces_a_mixture_from_its_exact_score() -> None:
    """15 calls of EDP's sampler on the exact ε of a four-mode mixture: mode weights within 0.02, ≥ 93% of the
    samples within 0.2 of a mode, and at least as many as DDIM with the same calls."""
    schedule = make_schedule("linear", 1000)
    model = GaussianDiffusion(_MixtureOracle(DiscreteVPTime(schedule.alpha_bars)), schedule)
    obs = torch.zeros(4000, 1)

    def stats(order: int) -> tuple[Tensor, float, float]:
        return _mode_stats(sample_dpm_solver_singlestep(model, obs, 15, order, skip_type="time_uniform", t_end=1e-3,
                                                        generator=torch.Generator().manual_seed(0)))

    props, near, _ = stats(3)
    _, near_ddim, _ = stats(1)
    assert (props - WEIGHTS).abs().max() < 0.02, props
    assert near > 0.93 and near >= near_ddim, (near, near_ddim)


# --------------------------------------------------------------------------- mixture

MODES = torch.tensor([[0.6, 0.6], [-0.6, 0.6], [-0.6, -0.6], [0.6, -0.6]])
WEIGHTS = torch.tensor([0.4, 0.3, 0.2, 0.1])
MODE_STD = 0.05


def _mixture(n: int, g: torch.Generator) -> Tensor:
    idx = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return (MODES[idx] + MODE_STD * torch.randn(n, 2, generator=g)).clamp(-1, 1)


def _mode_stats(x: Tensor) -> tuple[Tensor, float, float]:
    """(share of samples nearest each mode, fraction within 0.2 of a mode, mean distance)."""
    d = torch.cdist(x, MODES)
    nearest = d.min(1).values
    props = torch.bincount(d.argmin(1), minlength=4).float() / len(x)
    return props, (nearest < 0.2).float().mean().item(), nearest.mean().item()


@pytest.fixture(scope="module")
def mixture_model() -> GaussianDiffusion:
    """MLP 3×128 on the linear schedule at T = 100, 3000 Adam steps with cosine decay."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    net = MLPDenoiser(1, 2, hidden=128, n_layers=3)
    model = GaussianDiffusion(net, make_schedule("linear", 100))
    steps, batch = 3000, 256
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    obs = torch.ones(batch, 1)  # constant state: an unconditional mixture
    for _ in range(steps):
        loss = model.loss(_mixture(batch, g), obs, generator=g).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr.step()
    return model.eval()


def test_diffusion_recovers_modes_and_weights_where_a_gaussian_cannot(
    mixture_model: GaussianDiffusion,
) -> None:
    n = 2000
    obs = torch.ones(n, 1)
    samples = mixture_model.sample_ddpm(obs, generator=torch.Generator().manual_seed(1))
    props, near, _ = _mode_stats(samples)
    assert (props - WEIGHTS).abs().max() < 0.07, f"mode shares {props.tolist()}"
    assert near > 0.9, f"only {near:.3f} of diffusion samples within 0.2 of a mode"

    g = torch.Generator().manual_seed(2)
    data = _mixture(10_000, g)
    chol = torch.linalg.cholesky(torch.cov(data.T))
    gauss = (data.mean(0) + torch.randn(n, 2, generator=g) @ chol.T).clamp(-1, 1)
    _, gauss_near, _ = _mode_stats(gauss)
    assert gauss_near < 0.5, f"{gauss_near:.3f} of Gaussian-fit samples near a mode"


def test_ddpm_and_dpm_solver_agree_in_distribution(mixture_model: GaussianDiffusion) -> None:
    """100 DDPM steps vs 15 DPM-Solver-3 calls on the same trained model."""
    obs = torch.ones(2000, 1)
    ddpm = mixture_model.sample_ddpm(obs, generator=torch.Generator().manual_seed(3))
    dpm = sample_dpm_solver(mixture_model, obs, steps=15, order=3,
                            generator=torch.Generator().manual_seed(3))
    p_ddpm, near_ddpm, dist_ddpm = _mode_stats(ddpm)
    p_dpm, near_dpm, dist_dpm = _mode_stats(dpm)
    assert (p_ddpm - p_dpm).abs().max() < 0.05, f"DDPM {p_ddpm.tolist()} vs DPM {p_dpm.tolist()}"
    assert (p_dpm - WEIGHTS).abs().max() < 0.07, p_dpm.tolist()
    assert near_dpm > 0.85 and near_ddpm > 0.85, (near_ddpm, near_dpm)
    assert abs(dist_ddpm - dist_dpm) < 0.03, f"mean distance to a mode: {dist_ddpm=} {dist_dpm=}"
    assert dpm.abs().max() <= 1.0


# --------------------------------------------------------------------------- EMA


class _WithBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("stat", torch.zeros(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def _fill(module: _WithBuffers, value: float, count: int) -> None:
    with torch.no_grad():
        for t in (module.lin.weight, module.lin.bias, module.stat):
            t.fill_(value)
        module.count.fill_(count)


def test_ema_update_arithmetic_and_state_dict() -> None:
    live = _WithBuffers()
    _fill(live, 2.0, 0)
    ema = EMA(live, rate=0.1)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    _fill(live, 5.0, 7)
    ema.update(live)  # θ̄ = 2 + 0.1·(5 − 2) = 2.3
    for t in (ema.module.lin.weight, ema.module.lin.bias, ema.module.stat):
        torch.testing.assert_close(t, torch.full_like(t, 2.3))
    assert ema.module.count.item() == 7, "integer buffers are copied, not averaged"
    for _ in range(9):  # after k = 10 updates towards 5: θ̄ = 5 + (1 − r)^k (2 − 5)
        ema.update(live)
    expected = 5.0 + 0.9**10 * (2.0 - 5.0)
    torch.testing.assert_close(ema.module.lin.weight, torch.full((2, 3), expected))
    assert live.lin.weight.requires_grad, "the live module is left alone"

    restored = EMA(_WithBuffers(), rate=0.5)
    restored.load_state_dict(ema.state_dict())
    for a, b in zip(restored.module.state_dict().values(), ema.module.state_dict().values()):
        assert torch.equal(a, b)
    target = _WithBuffers()
    ema.copy_to(target)
    torch.testing.assert_close(target.lin.bias, torch.full((2,), expected))
    with pytest.raises(ConfigError):
        EMA(live, rate=0.0)


def test_ema_cadence_from_the_step_count() -> None:
    """every = 2, start = 3: copies at n ≤ 3, then θ̄ moves by the rate when 2 | n (n = 4, 6), else not."""
    live = _WithBuffers()
    ema = EMA(live, rate=0.5, every=2, start=3)
    for n, value, expected in [(1, 1.0, 1.0), (3, -7.0, -7.0), (4, 1.0, -3.0), (5, 9.0, -3.0), (6, 9.0, 3.0)]:
        _fill(live, value, n)
        ema.step(live, torch.tensor(float(n)))
        torch.testing.assert_close(ema.module.lin.weight, torch.full((2, 3), expected))
        assert ema.module.count.item() == n
    torch.testing.assert_close(ema.rate_at(torch.tensor([3.0, 4.0, 5.0, 8.0])), torch.tensor([0.0, 0.5, 0.0, 0.5]))
    with pytest.raises(ConfigError, match="every"):
        EMA(live, every=0)
