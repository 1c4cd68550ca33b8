"""Shared diffusion core for the diffusion actors (IDQL resampling, EDP).

- :mod:`schedules`: β/ᾱ schedules ('vp', 'linear', 'cosine').
- :mod:`networks`: ε-prediction networks ('ln-resnet', 'mlp').
- :mod:`model`: :class:`GaussianDiffusion` (noise loss, EDP's one-step â⁰, DDPM sampling).
- :mod:`solvers`: DPM-Solver (multistep, and EDP's singlestep) for few-step sampling of long schedules.
- :mod:`ema`: the EMA copy the actors sample with.
"""
from offrl.generative.diffusion.ema import EMA
from offrl.generative.diffusion.model import DiffusionTerms, GaussianDiffusion, one_step_x0, repeat_states
from offrl.generative.diffusion.networks import (
    DENOISERS,
    LearnableFourierFeatures,
    LNResNetDenoiser,
    MLPDenoiser,
    SinusoidalEmbedding,
    make_denoiser,
)
from offrl.generative.diffusion.schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_schedule,
    linear_schedule,
    make_schedule,
    vp_schedule,
)
from offrl.generative.diffusion.solvers import DiscreteVPTime, sample_dpm_solver, sample_dpm_solver_singlestep

__all__ = [
    "DENOISERS",
    "EMA",
    "SCHEDULES",
    "DiffusionTerms",
    "DiscreteVPTime",
    "GaussianDiffusion",
    "LNResNetDenoiser",
    "LearnableFourierFeatures",
    "MLPDenoiser",
    "NoiseSchedule",
    "SinusoidalEmbedding",
    "cosine_schedule",
    "linear_schedule",
    "make_denoiser",
    "make_schedule",
    "one_step_x0",
    "repeat_states",
    "sample_dpm_solver",
    "sample_dpm_solver_singlestep",
    "vp_schedule",
]
