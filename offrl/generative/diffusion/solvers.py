"""DPM-Solver (Lu et al. 2022): few-step sampling of a long discrete VP diffusion (EDP, Kang et al. 2023).

EDP trains with T = 1000 steps but samples with 15 model calls. The sampler
solves the probability-flow ODE in the half-log-SNR λ_t = log(α_t/σ_t), where
α_t = √ᾱ_t and σ_t = √(1 − α_t²). Its exact solution from s to t is

    x_t = (α_t/α_s) x_s − α_t ∫_{λ_s}^{λ_t} e^{−λ} ε_θ(x_λ, λ) dλ,

and a k-th order solver Taylor-expands ε_θ in λ around the last point. With
h = λ_t − λ_s, φ₁ = e^h − 1, φ₂ = φ₁/h − 1, φ₃ = φ₂/h − ½, the update is

    x_t = (α_t/α_s) x_s − σ_t φ₁ ε − σ_t φ₂ · h ε' − σ_t φ₃ · h² ε'',

with the derivatives estimated from the previous model outputs (multistep,
:func:`sample_dpm_solver`: one model call per step, so ``steps`` steps cost
exactly ``steps`` calls) or from extra model calls inside each step
(singlestep, :func:`sample_dpm_solver_singlestep`, DPM-Solver's
"DPM-Solver-fast", which EDP's code uses: order 3, time-uniform steps,
t_end = 10⁻³; ``steps`` calls in all, split into steps of order 3, 2 and 1).

Discrete time (DPM-Solver's ``NoiseScheduleVP('discrete')``): step n = 0..N−1
of the schedule sits at t_n = (n + 1)/N and log α_t is the piecewise-linear
interpolation of ½ log ᾱ over those points; the network is called at the
fractional step N·t − 1. Sampling runs from t = 1 (step N − 1) to t = 1/N
(step 0).
"""
from __future__ import annotations

import torch
from torch import Tensor

from offrl.component import Noise, NoiseSpec, draw_noise
from offrl.generative.diffusion.model import GaussianDiffusion
from offrl.errors import ConfigError

SKIP_TYPES = ("time_uniform", "logSNR")


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp increasing, fp) at x; end segments extrapolate."""
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.shape[0] - 1)
    # torch.take, not xp[i]: indexing with a 0-dim tensor reads it back to the host
    x0, x1, y0, y1 = xp.take(i - 1), xp.take(i), fp.take(i - 1), fp.take(i)
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


class DiscreteVPTime:
    """Continuous-time view t ∈ [1/N, 1] of a discrete VP schedule with ᾱ_0..ᾱ_{N−1}."""

    def __init__(self, alpha_bars: Tensor) -> None:
        self.N = int(alpha_bars.shape[0])
        if self.N < 2:
            raise ConfigError(f"DPM-Solver needs a schedule with T >= 2 steps, got T={self.N}.")
        self.t_grid = torch.arange(1, self.N + 1, device=alpha_bars.device) / self.N  # t_n
        self.log_alpha_grid = 0.5 * alpha_bars.log()  # log α_{t_n} = ½ log ᾱ_n, decreasing

    def log_alpha(self, t: Tensor) -> Tensor:
        """log α_t by interpolation of ½ log ᾱ."""
        return _interp(t, self.t_grid, self.log_alpha_grid)

    def sigma(self, t: Tensor) -> Tensor:
        """σ_t = √(1 − α_t²)."""
        return (-torch.expm1(2.0 * self.log_alpha(t))).sqrt()

    def lambda_(self, t: Tensor) -> Tensor:
        """λ_t = log α_t − log σ_t."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))

    def inverse_lambda(self, lam: Tensor) -> Tensor:
        """t with λ_t = lam: log α = −½ log(1 + e^{−2λ}), then invert the interpolation."""
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)
        return _interp(log_alpha, self.log_alpha_grid.flip(0), self.t_grid.flip(0))

    def model_step(self, t: Tensor) -> Tensor:
        """The (fractional) 0-based step index the network sees at time t: N·t − 1."""
        return self.N * t - 1.0

    def time_grid(self, steps: int, skip_type: str = "time_uniform", t_end: float | None = None) -> Tensor:
        """steps + 1 decreasing times from 1 to ``t_end`` (default 1/N), uniform in t or in λ."""
        t_T = self.t_grid[-1]
        t_0 = self.t_grid[0] if t_end is None else torch.full_like(t_T, t_end)
        if skip_type == "time_uniform":
            return torch.linspace(1.0, 0.0, steps + 1, device=t_T.device) * (t_T - t_0) + t_0
        if skip_type == "logSNR":
            lam_T, lam_0 = self.lambda_(t_T), self.lambda_(t_0)
            lam = torch.linspace(1.0, 0.0, steps + 1, device=t_T.device) * (lam_T - lam_0) + lam_0
            return self.inverse_lambda(lam)
        raise ConfigError(
            f"Unknown DPM-Solver skip_type '{skip_type}'. Valid choices: {', '.join(SKIP_TYPES)}."
        )


def dpm_solver_noise(batch_size: int, act_dim: int) -> NoiseSpec:
    """What :func:`sample_dpm_solver` draws: only x_T."""
    return {"x_T": Noise.normal(batch_size, act_dim)}


@torch.no_grad()
def sample_dpm_solver(
    model: GaussianDiffusion,
    obs: Tensor,
    steps: int = 15,
    order: int = 3,
    generator: torch.Generator | None = None,
    skip_type: str = "logSNR",
    noise: dict[str, Tensor] | None = None,
    clip_denoised: bool = True,
    denoise_to_zero: bool = False,
    t_end: float | None = None,
) -> Tensor:
    """Multistep DPM-Solver sample a ~ p_θ(· | s), one per row of ``obs`` [B, O] → [B, A].

    ``steps`` model calls (one per step; orders ramp up 1, 2, 3 over the first
    steps, and ramp down at the end when steps < 10, as DPM-Solver does).
    The only randomness is x_T (``noise["x_T"]``, or drawn from ``generator``).
    ``clip_denoised`` clips the data prediction x̂⁰ = (x_t − σ_t ε̂)/α_t to the
    bounds at every call and re-derives ε̂ from it (EDP's "noise clipping").
    The output is x at t = ``t_end`` (default 1/N, the noise level of step 0),
    clipped to the bounds; ``denoise_to_zero`` spends one more call to return
    x̂⁰ there. Call on an eval-mode model (dropout off).
    """
    _check_args(steps, order, t_end)
    ns = DiscreteVPTime(model.alpha_bars)
    ts = ns.time_grid(steps, skip_type, t_end)  # t_0 > ... > t_M, M = steps
    lam, log_alpha, sigma = ns.lambda_(ts), ns.log_alpha(ts), ns.sigma(ts)
    alpha = log_alpha.exp()
    clip = model.clip_value
    B = obs.shape[0]

    def eps_model(x: Tensor, i: int) -> Tensor:
        """ε̂ at grid time ts[i], optionally consistent with a clipped x̂⁰."""
        step = ns.model_step(ts[i]).expand(B)
        eps = model(x, step, obs)
        if clip_denoised and clip is not None:
            x0 = ((x - sigma[i] * eps) / alpha[i]).clamp(-clip, clip)  # x̂⁰
            eps = (x - alpha[i] * x0) / sigma[i]
        return eps

    if noise is None:
        noise = draw_noise(dpm_solver_noise(B, model.act_dim), generator, obs.device)
    x = noise["x_T"].to(obs.dtype)
    eps_prev: list[Tensor] = []  # ε̂ at the last up to 3 grid points, newest last
    for i in range(steps):
        eps_prev = (eps_prev + [eps_model(x, i)])[-3:]
        k = min(order, i + 1)
        if steps < 10:
            k = min(k, steps - i)
        h = lam[i + 1] - lam[i]
        phi1 = torch.expm1(h)
        phi2 = phi1 / h - 1.0
        phi3 = phi2 / h - 0.5
        # first order (DDIM): x_t = (α_t/α_s) x_s − σ_t φ₁ ε̂
        x_next = (log_alpha[i + 1] - log_alpha[i]).exp() * x - sigma[i + 1] * phi1 * eps_prev[-1]
        if k >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1_0 = (eps_prev[-1] - eps_prev[-2]) / r0  # ≈ h ε'
            if k == 2:
                x_next = x_next - sigma[i + 1] * phi2 * d1_0
            else:
                r1 = (lam[i - 1] - lam[i - 2]) / h
                d1_1 = (eps_prev[-2] - eps_prev[-3]) / r1
                d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)  # ≈ h ε' to second order
                d2 = 2.0 * (d1_0 - d1_1) / (r0 + r1)  # ≈ h² ε''
                x_next = x_next - sigma[i + 1] * (phi2 * d1 + phi3 * d2)
        x = x_next
    if denoise_to_zero:
        x = (x - sigma[steps] * eps_model(x, steps)) / alpha[steps]  # x̂⁰ at t = 1/N
    return x if clip is None else x.clamp(-clip, clip)


def _check_args(steps: int, order: int, t_end: float | None) -> None:
    if steps < 1:
        raise ConfigError(f"DPM-Solver needs steps >= 1, got {steps}.")
    if order not in (1, 2, 3):
        raise ConfigError(f"DPM-Solver order must be 1, 2 or 3, got {order}.")
    if t_end is not None and not 0.0 < t_end < 1.0:
        raise ConfigError(f"DPM-Solver t_end must lie in (0, 1), got {t_end}.")


def singlestep_orders(steps: int, order: int) -> list[int]:
    """The order of each step of DPM-Solver-fast, summing to ``steps`` model calls.

    Order 3: K = steps // 3 + 1 steps, all of order 3 but the last one or two
    ([3, …, 3, 2, 1] when 3 | steps, [3, …, 3, 1] or [3, …, 3, 2] otherwise);
    order 2: [2, …, 2] (+ [1] for odd steps); order 1: ``steps`` DDIM steps.
    """
    if order == 3:
        k = steps // 3 + 1
        tail = {0: [2, 1], 1: [1], 2: [2]}[steps % 3]
        return [3] * (k - len(tail)) + tail
    if order == 2:
        return [2] * (steps // 2) + [1] * (steps % 2)
    return [1] * steps


@torch.no_grad()
def sample_dpm_solver_singlestep(
    model: GaussianDiffusion,
    obs: Tensor,
    steps: int = 15,
    order: int = 3,
    generator: torch.Generator | None = None,
    skip_type: str = "time_uniform",
    noise: dict[str, Tensor] | None = None,
    clip_denoised: bool = True,
    denoise_to_zero: bool = False,
    t_end: float | None = None,
) -> Tensor:
    """Singlestep DPM-Solver ("DPM-Solver-fast", EDP's sampler) a ~ p_θ(· | s), one per row of ``obs``.

    ``steps`` model calls in all, split by :func:`singlestep_orders`. Step
    boundaries: for ``time_uniform`` the ``steps``-point uniform time grid taken
    at the cumulative orders, for ``logSNR`` one point per step uniform in λ;
    inside a step of order k the intermediate points split it into k equal
    parts of the same spacing, at λ_s + r·h. A step from s to t, h = λ_t − λ_s
    (noise prediction, DPM-Solver's ``dpm_solver`` update):

        order 1:  x_t = (α_t/α_s) x_s − σ_t (e^h − 1) ε_s
        order 2:  u   = (α_{s1}/α_s) x_s − σ_{s1} (e^{r₁h} − 1) ε_s,  ε_{s1} = ε_θ(u, s1)
                  x_t = (α_t/α_s) x_s − σ_t (e^h − 1) ε_s − σ_t (e^h − 1)/(2r₁) · (ε_{s1} − ε_s)
        order 3:  u₁  = (α_{s1}/α_s) x_s − σ_{s1} (e^{r₁h} − 1) ε_s,  ε_{s1} = ε_θ(u₁, s1)
                  u₂  = (α_{s2}/α_s) x_s − σ_{s2} (e^{r₂h} − 1) ε_s
                        − (r₂/r₁) σ_{s2} φ₂(r₂h) (ε_{s1} − ε_s),  ε_{s2} = ε_θ(u₂, s2)
                  x_t = (α_t/α_s) x_s − σ_t (e^h − 1) ε_s − (1/r₂) σ_t φ₂(h) (ε_{s2} − ε_s)

    with φ₂(z) = (e^z − 1)/z − 1. ``noise``, ``clip_denoised``,
    ``denoise_to_zero`` and ``t_end`` (default 1/N; EDP: 10⁻³, which is 1/N for
    T = 1000) as in :func:`sample_dpm_solver`.
    """
    _check_args(steps, order, t_end)
    ns = DiscreteVPTime(model.alpha_bars)
    orders = singlestep_orders(steps, order)
    if skip_type == "logSNR":
        outer = ns.time_grid(len(orders), skip_type, t_end)
    else:
        grid = ns.time_grid(steps, skip_type, t_end)
        bounds = [sum(orders[:i]) for i in range(len(orders) + 1)]  # Python ints: no host-to-device copy
        outer = torch.stack([grid[j] for j in bounds])
    clip = model.clip_value
    B = obs.shape[0]

    def coeffs(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log α_t, σ_t, λ_t)."""
        return ns.log_alpha(t), ns.sigma(t), ns.lambda_(t)

    def eps_model(x: Tensor, t: Tensor) -> Tensor:
        """ε̂ at time t, optionally consistent with a clipped x̂⁰ (EDP's noise clipping)."""
        eps = model(x, ns.model_step(t).expand(B), obs)
        if clip_denoised and clip is not None:
            log_alpha, sigma, _ = coeffs(t)
            x0 = ((x - sigma * eps) / log_alpha.exp()).clamp(-clip, clip)  # x̂⁰
            eps = (x - log_alpha.exp() * x0) / sigma
        return eps

    def phi2(z: Tensor) -> Tensor:
        return torch.expm1(z) / z - 1.0

    if noise is None:
        noise = draw_noise(dpm_solver_noise(B, model.act_dim), generator, obs.device)
    x = noise["x_T"].to(obs.dtype)
    for i, k in enumerate(orders):  # static Python loop: the orders depend on the config only
        s, t = outer[i], outer[i + 1]
        inner = _inner_times(ns, s, t, k, skip_type)
        la_s, _, lam_s = coeffs(s)
        la_t, sigma_t, lam_t = coeffs(t)
        h = lam_t - lam_s
        eps_s = eps_model(x, s)
        x_t = (la_t - la_s).exp() * x - sigma_t * torch.expm1(h) * eps_s  # DDIM
        if k >= 2:
            s1 = inner[1]
            la_1, sigma_1, lam_1 = coeffs(s1)
            r1 = (lam_1 - lam_s) / h
            u1 = (la_1 - la_s).exp() * x - sigma_1 * torch.expm1(r1 * h) * eps_s
            d1 = eps_model(u1, s1) - eps_s  # ε_{s1} − ε_s
            if k == 2:
                x_t = x_t - sigma_t * torch.expm1(h) / (2.0 * r1) * d1
            else:
                s2 = inner[2]
                la_2, sigma_2, lam_2 = coeffs(s2)
                r2 = (lam_2 - lam_s) / h
                u2 = ((la_2 - la_s).exp() * x - sigma_2 * torch.expm1(r2 * h) * eps_s
                      - r2 / r1 * sigma_2 * phi2(r2 * h) * d1)
                d2 = eps_model(u2, s2) - eps_s  # ε_{s2} − ε_s
                x_t = x_t - sigma_t * phi2(h) / r2 * d2
        x = x_t
    if denoise_to_zero:
        la_0, sigma_0, _ = coeffs(outer[-1])
        x = (x - sigma_0 * eps_model(x, outer[-1])) / la_0.exp()  # x̂⁰ at t_end
    return x if clip is None else x.clamp(-clip, clip)


def _inner_times(ns: DiscreteVPTime, s: Tensor, t: Tensor, k: int, skip_type: str) -> Tensor:
    """k + 1 times from s to t splitting one singlestep step into k equal parts, uniform in t or in λ."""
    frac = torch.linspace(0.0, 1.0, k + 1, device=s.device)
    if skip_type == "time_uniform":
        return s + frac * (t - s)
    lam_s, lam_t = ns.lambda_(s), ns.lambda_(t)
    return ns.inverse_lambda(lam_s + frac * (lam_t - lam_s))
