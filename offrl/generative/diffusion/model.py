"""A conditional Gaussian diffusion model over actions: DDPM loss, one-step â⁰, DDPM sampling.

Shared by IDQL (Hansen-Estruch et al. 2023: pure behaviour cloning, ancestral
sampling) and EDP (Kang et al. 2023: the noise loss plus a guide term on the
one-step reconstruction â⁰); docs/algorithms.md summarises both. Steps are
0-based: index k holds step k + 1 of the schedule, so ᾱ_k is ``alpha_bars[k]``.

Capture-friendly: no host syncs, static shapes, and randomness passed in
explicitly (a dict of noise tensors declared by :meth:`GaussianDiffusion.train_noise`
and :meth:`GaussianDiffusion.sample_noise`), so a seed trained beside others
draws exactly what it would draw alone. For direct use, a ``generator`` may be
given instead and the noise is drawn from it.
"""
from __future__ import annotations

from typing import NamedTuple

import einops
import torch
from torch import Tensor, nn

from offrl.component import NoiseSpec, NoiseTensors, Noise, draw_noise
from offrl.generative.diffusion.schedules import NoiseSchedule
from offrl.errors import ConfigError


class DiffusionTerms(NamedTuple):
    """One forward pass of the noise loss, with the pieces EDP's guide term needs."""

    loss: Tensor  # [B] ‖ε − ε̂‖² summed over action dims (EDP's actor averages eps/eps_hat itself)
    a_k: Tensor  # [B, A] noised dataset action √ᾱ_k a + √(1 − ᾱ_k) ε
    k: Tensor  # [B] long, 0-based step
    eps: Tensor  # [B, A] true noise ε
    eps_hat: Tensor  # [B, A] ε_θ(a_k, k, s)
    a0_hat: Tensor  # [B, A] one-step reconstruction â⁰, clipped to the bounds


def one_step_x0(
    x_k: Tensor, k: Tensor, eps_hat: Tensor, alpha_bars: Tensor, clip_value: float | None = 1.0
) -> Tensor:
    """EDP's one-step action approximation â⁰ = a_k/√ᾱ_k − √(1/ᾱ_k − 1)·ε̂, clipped to ±clip_value.

    Inverts a_k = √ᾱ_k a⁰ + √(1 − ᾱ_k) ε with ε̂ in place of ε; exact when ε̂ = ε.
    """
    alpha_bar = alpha_bars[k].unsqueeze(-1)  # ᾱ_k, [B, 1]
    a0_hat = x_k * alpha_bar.rsqrt() - (1.0 / alpha_bar - 1.0).sqrt() * eps_hat
    return a0_hat if clip_value is None else a0_hat.clamp(-clip_value, clip_value)


def repeat_states(obs: Tensor, n: int) -> Tensor:
    """[B, O] → [B·N, O] with each state repeated n times consecutively, layout ``(b n)``.

    Row b·n + j is state b, so N candidates per state come back as
    ``einops.rearrange(actions, "(b n) a -> b n a", n=n)``.
    """
    return einops.repeat(obs, "b o -> (b n) o", n=n)


class GaussianDiffusion(nn.Module):
    """ε-prediction DDPM p_θ(a | s) over actions in [−clip_value, clip_value]^A.

    ``forward(x_t, t, obs)`` is the denoiser ε_θ, so a wrapper that counts or
    compiles model calls can wrap this module or its ``denoiser``.
    """

    betas: Tensor
    alphas: Tensor
    alpha_bars: Tensor

    def __init__(
        self,
        denoiser: nn.Module,
        schedule: NoiseSchedule,
        act_dim: int | None = None,
        clip_value: float | None = 1.0,
    ) -> None:
        super().__init__()
        act_dim = act_dim if act_dim is not None else getattr(denoiser, "act_dim", None)
        if act_dim is None:
            raise ConfigError("GaussianDiffusion needs act_dim (the denoiser does not define it).")
        if clip_value is not None and not clip_value > 0:
            raise ConfigError(f"clip_value must be positive or None, got {clip_value!r}.")
        self.denoiser = denoiser
        self.act_dim = int(act_dim)
        self.clip_value = clip_value
        self.T = schedule.T
        self.schedule_name = schedule.name
        # constants of the model (non-persistent: shared by every seed, rebuilt from the config)
        self.register_buffer("betas", schedule.betas.clone(), persistent=False)  # β_t
        self.register_buffer("alphas", schedule.alphas.clone(), persistent=False)  # α_t = 1 − β_t
        self.register_buffer("alpha_bars", schedule.alpha_bars.clone(), persistent=False)  # ᾱ_t

    @property
    def schedule(self) -> NoiseSchedule:
        """The schedule, on this module's device."""
        return NoiseSchedule(self.schedule_name, self.betas, self.alphas, self.alpha_bars)

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor, noise: NoiseTensors | None = None) -> Tensor:
        """ε_θ(x_t, t, s) (``noise``: the denoiser's dropout uniforms, training only)."""
        return self.denoiser(x_t, t, obs, noise)

    def _clip(self, x: Tensor) -> Tensor:
        return x if self.clip_value is None else x.clamp(-self.clip_value, self.clip_value)

    # ----------------------------------------------------------------- training
    def q_sample(self, a0: Tensor, k: Tensor, eps: Tensor) -> Tensor:
        """Forward process a_k = √ᾱ_k a⁰ + √(1 − ᾱ_k) ε."""
        alpha_bar = self.alpha_bars[k].unsqueeze(-1)
        return alpha_bar.sqrt() * a0 + (1.0 - alpha_bar).sqrt() * eps

    def train_noise(self, batch_size: int) -> NoiseSpec:
        """What one training forward pass draws: the step k, the noise ε and dropout uniforms."""
        return {"k": Noise.randint(self.T, batch_size), "eps": Noise.normal(batch_size, self.act_dim),
                **self.denoiser.noise(batch_size)}

    def loss_terms(
        self, actions: Tensor, obs: Tensor, noise: NoiseTensors | None = None,
        generator: torch.Generator | None = None,
    ) -> DiffusionTerms:
        """Noise loss ‖ε − ε_θ(a_k, k, s)‖² with k ~ U{0..T−1}, ε ~ N(0, I), and EDP's â⁰."""
        if noise is None:
            noise = draw_noise(self.train_noise(actions.shape[0]), generator, actions.device)
        k, eps = noise["k"], noise["eps"].to(actions.dtype)
        a_k = self.q_sample(actions, k, eps)
        eps_hat = self.denoiser(a_k, k, obs, noise)
        loss = (eps - eps_hat).square().sum(-1)
        a0_hat = one_step_x0(a_k, k, eps_hat, self.alpha_bars, self.clip_value)
        return DiffusionTerms(loss, a_k, k, eps, eps_hat, a0_hat)

    def loss(
        self, actions: Tensor, obs: Tensor, noise: NoiseTensors | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-sample DDPM loss [B]: E_{t,ε} ‖ε − ε_θ(√ᾱ_t a + √(1−ᾱ_t) ε, t, s)‖² (IDQL)."""
        return self.loss_terms(actions, obs, noise, generator).loss

    def one_step_x0(self, x_k: Tensor, k: Tensor, eps_hat: Tensor) -> Tensor:
        """â⁰ from (a_k, k, ε̂) with this model's schedule and bounds (see :func:`one_step_x0`)."""
        return one_step_x0(x_k, k, eps_hat, self.alpha_bars, self.clip_value)

    # ----------------------------------------------------------------- sampling
    def sample_noise(self, batch_size: int) -> NoiseSpec:
        """What :meth:`sample_ddpm` draws for ``batch_size`` rows: x_T and one z per step."""
        return {"x_T": Noise.normal(batch_size, self.act_dim), "z": Noise.normal(self.T, batch_size, self.act_dim)}

    @torch.no_grad()
    def sample_ddpm(self, obs: Tensor, noise: NoiseTensors | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
        """Ancestral DDPM a ~ p_θ(· | s): one action per row of ``obs`` [B, O] → [B, A].

        x_T ~ N(0, I); for t = T..1:
        x_{t−1} = 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t, s)) + √β_t · z,  z ~ N(0, I),
        without noise at the last step and clipped to the bounds after every
        step (IDQL's sampler). For N candidates per state pass
        ``repeat_states(obs, N)``. No gradient flows through the chain, and no
        dropout is applied.
        """
        B = obs.shape[0]
        if noise is None:
            noise = draw_noise(self.sample_noise(B), generator, obs.device)
        x = noise["x_T"].to(obs.dtype)  # x_T
        for t in range(self.T - 1, -1, -1):  # static Python loop: T forwards over the batch
            step = torch.full((B,), t, dtype=torch.long, device=obs.device)
            eps_hat = self.denoiser(x, step, obs)
            beta, alpha, alpha_bar = self.betas[t], self.alphas[t], self.alpha_bars[t]
            x = (x - beta / (1.0 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()  # posterior mean
            if t > 0:  # the step index, not data: no noise at the last step
                x = x + beta.sqrt() * noise["z"][t].to(x.dtype)  # variance β_t
            x = self._clip(x)
        return x
