"""What the diffusion actors share: a conditional DDPM over actions, its EMA copy,
batched candidate sampling and critic-based selection among candidates.

Acting: repeat each state N times (layout ``(b n)``), draw N candidates with
the EMA model in one forward pass per denoising step (DDPM, or DPM-Solver for
long schedules), then pick one per state with the critic's selection rule
(``argmax`` | ``implicit`` | ``softmax``, see :mod:`offrl.critics.selection`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.gaussian_awr import cosine_scheduler
from offrl.component import make_adam
from offrl.critics.base import CriticView
from offrl.critics.selection import RULES, sample_candidates
from offrl.diffusion import EMA, GaussianDiffusion, make_denoiser, make_schedule, repeat_states, sample_dpm_solver
from offrl.errors import ConfigError, unknown

SAMPLERS = ("ddpm", "dpm-solver")


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DiffusionPolicyConfig(ActorConfig):
    network: str = field(default="ln-resnet", metadata=_h("ε-network: ln-resnet (IDQL) | mlp (EDP/Diffusion-QL)"))
    hidden: int = field(default=256, metadata=_h("Width of the ε-network"))
    depth: int = field(default=3, metadata=_h("Residual blocks (ln-resnet) or hidden layers (mlp)"))
    dropout: float = field(default=0.1, metadata=_h("Dropout in ln-resnet blocks"))
    schedule: str = field(default="vp", metadata=_h("Noise schedule: vp | linear | cosine"))
    timesteps: int = field(default=5, metadata=_h("Diffusion steps T"))
    sampler: str = field(default="ddpm", metadata=_h("ddpm (ancestral, every step) | dpm-solver (few steps)"))
    solver_steps: int = field(default=15, metadata=_h("DPM-Solver model calls (sampler=dpm-solver)"))
    lr: float = field(default=3e-4, metadata=_h("Learning rate"))
    weight_decay: float = field(default=0.0, metadata=_h("AdamW weight decay (IDQL's released code: 1e-4)"))
    cosine_decay: bool = field(default=True, metadata=_h("Cosine-decay the LR to 0 over training"))
    ema_rate: float = field(default=0.001, metadata=_h("EMA rate per update: θ̄ ← θ̄ + rate·(θ − θ̄); sampling uses θ̄"))
    num_samples: int = field(default=64, metadata=_h("Candidates N sampled per state when acting"))
    selection: str = field(default="argmax", metadata=_h("Candidate selection: argmax | implicit | softmax"))
    temperature: float = field(default=1.0, metadata=_h("Softmax temperature (selection=softmax)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selection not in RULES:
            raise unknown("selection rule (actor.selection)", self.selection, RULES)
        if self.sampler not in SAMPLERS:
            raise unknown("sampler (actor.sampler)", self.sampler, SAMPLERS)
        for n in ("num_samples", "timesteps", "solver_steps", "hidden", "depth"):
            if getattr(self, n) <= 0:
                raise ConfigError(f"actor.{n} must be positive, got {getattr(self, n)!r}")
        if not 0.0 < self.ema_rate <= 1.0:
            raise ConfigError(f"actor.ema_rate must be in (0, 1], got {self.ema_rate}")
        if self.temperature <= 0:
            raise ConfigError(f"actor.temperature must be positive, got {self.temperature}")


class DiffusionPolicyActor(Actor):
    """Base of ``diffusion-resample`` and ``edp``: model, EMA, optimiser, acting."""

    Config = DiffusionPolicyConfig
    cfg: DiffusionPolicyConfig

    def __init__(self, cfg: DiffusionPolicyConfig, obs_dim: int, act_dim: int, total_updates: int,
                 device: torch.device) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates, device)
        kwargs: dict[str, Any] = {"hidden": cfg.hidden}
        if cfg.network == "ln-resnet":
            kwargs.update(n_blocks=cfg.depth, dropout=cfg.dropout)
        elif cfg.network == "mlp":
            kwargs.update(n_layers=cfg.depth)
        denoiser = make_denoiser(cfg.network, obs_dim, act_dim, **kwargs)
        self.model = GaussianDiffusion(denoiser, make_schedule(cfg.schedule, cfg.timesteps), act_dim=act_dim)
        self.to(device)
        self.ema = EMA(self.model, rate=cfg.ema_rate)
        opt = make_adam(self.model.parameters(), cfg.lr, cfg.weight_decay, device=device)
        self.optimizers = {"actor": opt}
        self.schedulers = {"actor": cosine_scheduler(opt, total_updates, cfg.cosine_decay)}

    def optimise(self, loss: torch.Tensor) -> None:
        opt = self.optimizers["actor"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.schedulers["actor"].step()
        self.ema.update(self.model)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One action per row of ``obs`` from the EMA model."""
        model = self.ema.module
        if self.cfg.sampler == "dpm-solver":
            return sample_dpm_solver(model, obs, steps=self.cfg.solver_steps, generator=generator)
        return model.sample_ddpm(obs, generator=generator)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, generator: torch.Generator) -> torch.Tensor:
        n = self.cfg.num_samples
        candidates = self.sample(repeat_states(obs, n), generator)  # [(b n), A]
        return sample_candidates(critic, obs, candidates, self.cfg.selection, generator,
                                 self.cfg.temperature, num_candidates=n)

    def training_state(self) -> dict[str, Any]:
        state = super().training_state()
        state["ema"] = self.ema.state_dict()
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        super().load_training_state(state)
        self.ema.load_state_dict(state["ema"])
