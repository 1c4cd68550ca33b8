"""What the diffusion actors share: a conditional DDPM over actions, its EMA copy,
batched candidate sampling and critic-based selection among candidates.

Acting: repeat each state N times (layout ``(b n)``), draw N candidates with
the EMA model (or the live one, ``act_with=live`` as EDP does) in one forward
pass per denoising step (DDPM, or DPM-Solver — multistep, or EDP's singlestep
— for long schedules), then pick one per state with the critic's selection
rule (``argmax`` | ``implicit`` | ``softmax``, see
:mod:`offrl.critics.selection`; Q aggregated over the ensemble by ``q_agg``).

Next actions for a critic (``td3``'s backup, the V estimate of critics
without V): one sample per state from the EMA model with the acting sampler,
without candidate selection — a sample of the behaviour model, cheap and
critic-free. (Backing up through the selected policy would run N candidates
and the critic inside the critic's own target.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from einops import rearrange

from offrl.actors.base import Actor, ActorConfig
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView, check_q_agg
from offrl.critics.selection import RULES, sample_candidates, selection_noise
from offrl.generative.diffusion import (
    EMA,
    GaussianDiffusion,
    make_denoiser,
    make_schedule,
    repeat_states,
    sample_dpm_solver,
    sample_dpm_solver_singlestep,
)
from offrl.generative.diffusion.networks import TIME_EMBEDDINGS
from offrl.generative.diffusion.solvers import dpm_solver_noise
from offrl.nets import ACTIVATIONS, init_weights_
from offrl.errors import ConfigError, unknown
from offrl.validation import COUNT, DROPOUT, NON_NEGATIVE, POSITIVE, RATE, Range

SAMPLERS = ("ddpm", "dpm-solver")
SOLVERS = ("multistep", "singlestep")
#: DPM-Solver step spacings, config name -> the solver's skip_type.
SPACINGS = {"logsnr": "logSNR", "time_uniform": "time_uniform"}
#: Which weights act in evaluation: the EMA copy (IDQL, Diffusion-QL) or the live ones (EDP).
ACT_WITH = ("ema", "live")


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DiffusionPolicyConfig(ActorConfig):
    network: str = field(default="ln-resnet", metadata=_h("ε-network: ln-resnet (IDQL) | mlp (EDP/Diffusion-QL)"))
    hidden: int = field(default=256, metadata=_h("Width of the ε-network"))
    depth: int = field(default=3, metadata=_h("Residual blocks (ln-resnet) or hidden layers (mlp)"))
    dropout: float = field(default=0.1, metadata=_h("Dropout in ln-resnet blocks"))
    activation: str = field(default="mish", metadata=_h("Activation of the ε-network (IDQL's released code: swish)"))
    time_embedding: str = field(
        default="auto",
        metadata=_h("Time features: fourier (learnable, IDQL) | sinusoidal (EDP) | auto (the network's own)"),
    )
    time_dim: int = field(default=0, metadata=_h("Size of the time features; 0 = the network's (ln-resnet 64, mlp 16)"))
    time_mlp: tuple[int, ...] = field(
        default=(),
        metadata=_h("Widths of the time MLP after the features; () = the network's (ln-resnet (128, 128), "
                    "mlp (2·time_dim, time_dim))"),
    )
    schedule: str = field(default="vp", metadata=_h("Noise schedule: vp | linear | cosine"))
    timesteps: int = field(default=5, metadata=_h("Diffusion steps T"))
    sampler: str = field(default="ddpm", metadata=_h("ddpm (ancestral, every step) | dpm-solver (few steps)"))
    solver_steps: int = field(default=15, metadata=_h("DPM-Solver model calls (sampler=dpm-solver)"))
    solver: str = field(default="multistep", metadata=_h("DPM-Solver variant: multistep | singlestep (EDP's code)"))
    solver_order: int = field(default=3, metadata=_h("DPM-Solver order: 1 (DDIM) | 2 | 3"))
    solver_spacing: str = field(default="logsnr", metadata=_h("DPM-Solver step spacing: logsnr | time_uniform (EDP)"))
    solver_t_end: float = field(
        default=0.0, metadata=_h("DPM-Solver end time in (0, 1); 0 = 1/T, the first step's noise level (EDP: 1e-3)")
    )
    lr: float = field(default=3e-4, metadata=_h("Learning rate"))
    weight_decay: float = field(default=0.0, metadata=_h("AdamW weight decay (IDQL's released code: 1e-4)"))
    cosine_decay: bool = field(default=True, metadata=_h("Cosine-decay the LR to 0 over training"))
    ema_rate: float = field(default=0.001, metadata=_h("EMA rate per update: θ̄ ← θ̄ + rate·(θ − θ̄)"))
    ema_every: int = field(default=1, metadata=_h("Update the EMA on every k-th actor update only (EDP: 5)"))
    ema_start: int = field(
        default=0, metadata=_h("Up to this actor update the EMA copies the live weights (EDP: 1000)")
    )
    act_with: str = field(
        default="ema", metadata=_h("Weights that act in evaluation: ema (IDQL) | live (EDP); next actions use the EMA")
    )
    num_samples: int = field(default=64, metadata=_h("Candidates N sampled per state when acting"))
    selection: str = field(default="argmax", metadata=_h("Candidate selection: argmax | implicit | softmax"))
    temperature: float = field(default=1.0, metadata=_h("Softmax temperature (selection=softmax)"))
    q_agg: str = field(
        default="min",
        metadata=_h("Q over the critic ensemble wherever the actor reads Q (selection; EDP's q-gradient guide): "
                    "min | mean | q1 | random (one member per state when selecting, per update in a loss)"),
    )

    RANGES: ClassVar[dict[str, Range]] = {
        **ActorConfig.RANGES, "hidden": COUNT, "depth": COUNT, "dropout": DROPOUT, "time_dim": Range(0),
        "time_mlp": COUNT, "timesteps": COUNT, "solver_steps": COUNT, "solver_order": Range(1, 3),
        "solver_t_end": Range(0.0, 1.0, hi_open=True), "lr": POSITIVE, "weight_decay": NON_NEGATIVE,
        "ema_rate": RATE, "ema_every": COUNT, "ema_start": Range(0), "num_samples": COUNT, "temperature": POSITIVE,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_q_agg(self.q_agg, "actor.q_agg")
        if self.selection not in RULES:
            raise unknown("selection rule (actor.selection)", self.selection, RULES)
        if self.sampler not in SAMPLERS:
            raise unknown("sampler (actor.sampler)", self.sampler, SAMPLERS)
        if self.activation not in ACTIVATIONS:
            raise unknown("activation (actor.activation)", self.activation, ACTIVATIONS)
        if self.time_embedding not in ("auto", *TIME_EMBEDDINGS):
            raise unknown("time embedding (actor.time_embedding)", self.time_embedding, ("auto", *TIME_EMBEDDINGS))
        if self.time_dim < 0 or self.time_dim % 2:
            raise ConfigError(f"actor.time_dim must be even and >= 0 (0 = the network's), got {self.time_dim!r}")
        if self.solver not in SOLVERS:
            raise unknown("DPM-Solver variant (actor.solver)", self.solver, SOLVERS)
        if self.solver_spacing not in SPACINGS:
            raise unknown("DPM-Solver spacing (actor.solver_spacing)", self.solver_spacing, SPACINGS)
        if self.act_with not in ACT_WITH:
            raise unknown("acting weights (actor.act_with)", self.act_with, ACT_WITH)


class DiffusionPolicyActor(Actor):
    """Base of ``diffusion-resample`` and ``edp``: model, EMA, acting. Subclasses define ``loss``."""

    exploration = "sample"  # acting samples the policy (fresh noise): online collection acts the same way

    Config = DiffusionPolicyConfig
    cfg: DiffusionPolicyConfig

    def __init__(self, cfg: DiffusionPolicyConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        kwargs: dict[str, Any] = {"hidden": cfg.hidden, "act": ACTIVATIONS[cfg.activation]}
        if cfg.time_embedding != "auto":
            kwargs["time_embedding"] = cfg.time_embedding
        if cfg.time_dim:
            kwargs["time_dim"] = cfg.time_dim
        if cfg.time_mlp:
            kwargs["time_mlp"] = tuple(cfg.time_mlp)
        if cfg.network == "ln-resnet":
            kwargs.update(n_blocks=cfg.depth, dropout=cfg.dropout)
        elif cfg.network == "mlp":
            kwargs.update(n_layers=cfg.depth)
        denoiser = make_denoiser(cfg.network, obs_dim, act_dim, **kwargs)
        self.model = GaussianDiffusion(denoiser, make_schedule(cfg.schedule, cfg.timesteps), act_dim=act_dim)
        init_weights_(self.model, cfg.init, role="field")
        self.ema = EMA(self.model, rate=cfg.ema_rate, every=cfg.ema_every, start=cfg.ema_start)

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        return self.model.train_noise(batch_size)

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """The EMA's cadenced update (``ema_every``, ``ema_start``), driven by the device update count."""
        self.ema.step(self.model, step)

    # --- acting ---------------------------------------------------------------------------------
    def sample_noise(self, rows: int) -> NoiseSpec:
        """What :meth:`sample` draws for ``rows`` actions."""
        if self.cfg.sampler == "dpm-solver":
            return dpm_solver_noise(rows, self.act_dim)
        return self.model.sample_noise(rows)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, noise: NoiseTensors, live: bool = False) -> torch.Tensor:
        """One action per row of ``obs`` from the EMA model (``live``: from the live weights)."""
        model = self.model if live else self.ema.module
        c = self.cfg
        if c.sampler == "dpm-solver":
            solve = sample_dpm_solver if c.solver == "multistep" else sample_dpm_solver_singlestep
            return solve(model, obs, steps=c.solver_steps, order=c.solver_order, noise=noise,
                         skip_type=SPACINGS[c.solver_spacing], t_end=c.solver_t_end or None)
        return model.sample_ddpm(obs, noise)

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        """:meth:`sample_noise` with the batch on dim 0 (DDPM's per-step z declared as [B, T, A])."""
        spec = self.sample_noise(batch_size)
        if "z" in spec:
            spec["z"] = Noise.normal(batch_size, *spec["z"].shape[:1], *spec["z"].shape[2:])
        return spec

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """One EMA-model sample per state (no selection)."""
        if "z" in noise:
            noise = {**noise, "z": rearrange(noise["z"], "b t a -> t b a")}
        return self.sample(obs, noise)

    def act_noise(self, batch_size: int) -> NoiseSpec:
        return {**self.sample_noise(batch_size * self.cfg.num_samples), **selection_noise(batch_size, self.cfg.q_agg)}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        n = self.cfg.num_samples
        candidates = self.sample(repeat_states(obs, n), noise, live=self.cfg.act_with == "live")  # [(b n), A]
        return sample_candidates(critic, obs, candidates, self.cfg.selection, noise["select"],
                                 self.cfg.temperature, num_candidates=n, q_agg=self.cfg.q_agg,
                                 q_member=noise.get("q_member"))
