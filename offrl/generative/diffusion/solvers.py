"""DPM-Solver (Lu et al. 2022): few-step sampling of a long discrete VP diffusion (EDP, §3.3).

EDP trains with T = 1000 steps but samples with 15 model calls. The sampler
solves the probability-flow ODE in the half-log-SNR λ_t = log(α_t/σ_t), where
α_t = √ᾱ_t and σ_t = √(1 − α_t²). Its exact solution from s to t is

    x_t = (α_t/α_s) x_s − α_t ∫_{λ_s}^{λ_t} e^{−λ} ε_θ(x_λ, λ) dλ,

and a k-th order solver Taylor-expands ε_θ in λ around the last point. With
h = λ_t − λ_s, φ₁ = e^h − 1, φ₂ = φ₁/h − 1, φ₃ = φ₂/h − ½, the update is

    x_t = (α_t/α_s) x_s − σ_t φ₁ ε − σ_t φ₂ · h ε' − σ_t φ₃ · h² ε'',

with the derivatives estimated from the previous model outputs (multistep:
one model call per step, so ``steps`` steps cost exactly ``steps`` calls).

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

    def time_grid(self, steps: int, skip_type: str = "time_uniform") -> Tensor:
        """steps + 1 decreasing times from 1 to 1/N, uniform in t or in λ."""
        t_T = self.t_grid[-1]
        t_0 = self.t_grid[0]
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
) -> Tensor:
    """Multistep DPM-Solver sample a ~ p_θ(· | s), one per row of ``obs`` [B, O] → [B, A].

    ``steps`` model calls (one per step; orders ramp up 1, 2, 3 over the first
    steps, and ramp down at the end when steps < 10, as DPM-Solver does).
    The only randomness is x_T (``noise["x_T"]``, or drawn from ``generator``).
    ``clip_denoised`` clips the data prediction x̂⁰ = (x_t − σ_t ε̂)/α_t to the
    bounds at every call and re-derives ε̂ from it (EDP's "noise clipping").
    The output is x at t = 1/N (noise level of step 0), clipped to the
    bounds; ``denoise_to_zero`` spends one more call to return x̂⁰ there.
    Call on an eval-mode model (dropout off).
    """
    if steps < 1:
        raise ConfigError(f"DPM-Solver needs steps >= 1, got {steps}.")
    if order not in (1, 2, 3):
        raise ConfigError(f"DPM-Solver order must be 1, 2 or 3, got {order}.")
    ns = DiscreteVPTime(model.alpha_bars)
    ts = ns.time_grid(steps, skip_type)  # t_0 > ... > t_M, M = steps
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
