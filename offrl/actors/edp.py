"""Actor ``edp`` (Efficient Diffusion Policies, Kang et al. 2023).

A long-schedule diffusion policy (T = 1000, linear schedule scaled with T,
EDP/Diffusion-QL MLP) trained without ever running the chain: from the noised
dataset action a_k of the same forward pass, the one-step approximation
â⁰ = a_k/√ᾱ_k − √(1/ᾱ_k − 1)·ε_θ(a_k, k, s), clipped to the bounds, feeds the
guide term. Policy loss = L_diffusion + guide, where L_diffusion is the noise
MSE ‖ε − ε_θ‖² *averaged* over action dimensions (``bc_reduction=mean``, EDP's
code: ``mean_flat``) while the guide's log-likelihood is *summed* over them;
``bc_reduction=sum`` sums both, which makes the guide A× weaker (A = action
dimension; for ``q-gradient`` an effective α of α/A):

- ``weighted`` (EDP's IQL variant; default for offrl's IQL-family critics):
  −mean[min(exp(β(Q̄ − V)), 100) · log N(a; â⁰, I)] = mean[w · ½‖a − â⁰‖²] + const;
- ``q-gradient`` (EDP's TD3 variant / Diffusion-QL's objective without
  back-propagating through the chain): −α · mean Q(s, â⁰) / sg(mean |Q(s, â⁰)|),
  Q = ``q_agg`` over the online ensemble (EDP's and Diffusion-QL's code: ``random``,
  one member per update; offrl's default ``min``).

EDP's headline locomotion numbers used a TD3-style critic trained on policy
actions, which offrl does not have; ``q-gradient`` on offrl's in-sample
critics is a new combination (see docs/diffusion.md).

Acting: DPM-Solver (15 model calls) draws N = 50 candidates per state,
selected by softmax over Q at temperature 1 (EDP's energy-based selection).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.actors.diffusion_policy import DiffusionPolicyActor, DiffusionPolicyConfig
from offrl.actors.gaussian_awr import awr_weights
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView, q_for_actor
from offrl.data.transitions import Batch
from offrl.errors import unknown
from offrl.validation import NON_NEGATIVE, Range

GUIDES = ("weighted", "q-gradient")
#: How the noise MSE is reduced over action dimensions: mean (EDP's ``mean_flat``) or sum.
BC_REDUCTIONS = ("mean", "sum")


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class EDPConfig(DiffusionPolicyConfig):
    network: str = field(default="mlp", metadata=_h("ε-network: mlp (EDP/Diffusion-QL) | ln-resnet (IDQL)"))
    dropout: float = field(default=0.0, metadata=_h("Dropout in ln-resnet blocks"))
    schedule: str = field(default="linear", metadata=_h("Noise schedule: linear (scaled with T) | vp | cosine"))
    timesteps: int = field(default=1000, metadata=_h("Diffusion steps T (EDP: 1000)"))
    sampler: str = field(default="dpm-solver", metadata=_h("dpm-solver (EDP) | ddpm"))
    cosine_decay: bool = field(default=False, metadata=_h("Cosine-decay the LR to 0 over training"))
    ema_rate: float = field(default=0.005, metadata=_h("EMA rate (Diffusion-QL's decay 0.995)"))
    num_samples: int = field(default=50, metadata=_h("Candidates N per state when acting (EDP code: 50)"))
    selection: str = field(default="softmax", metadata=_h("Candidate selection: softmax (EDP) | argmax | implicit"))
    guide: str = field(default="weighted", metadata=_h("Guide term: weighted (IQL-style) | q-gradient (TD3-style)"))
    beta: float = field(default=3.0, metadata=_h("β of the weighted guide: weights min(exp(β·A), max_weight)"))
    max_weight: float = field(default=100.0, metadata=_h("Clip of the weighted guide's weights"))
    alpha: float = field(default=2.0, metadata=_h("α of the q-gradient guide"))
    bc_reduction: str = field(
        default="mean",
        metadata=_h("Noise MSE over action dims: mean (EDP's code, mean_flat) | sum (guide A× weaker)"),
    )

    RANGES: ClassVar[dict[str, Range]] = {**DiffusionPolicyConfig.RANGES, "beta": NON_NEGATIVE,
                                          "max_weight": Range(0.0, lo_open=True, inf=True), "alpha": NON_NEGATIVE}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.guide not in GUIDES:
            raise unknown("guide (actor.guide)", self.guide, GUIDES)
        if self.bc_reduction not in BC_REDUCTIONS:
            raise unknown("BC reduction (actor.bc_reduction)", self.bc_reduction, BC_REDUCTIONS)


@ACTORS.register("edp", "EDP: diffusion policy trained with one-step action approximation + guide")
class EDPActor(DiffusionPolicyActor):
    Config = EDPConfig
    cfg: EDPConfig

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        spec = super().update_noise(batch_size, critic)
        if self.cfg.guide == "q-gradient" and self.cfg.q_agg == "random":
            spec["q_member"] = Noise.uniform()  # one Q member per update (EDP, Diffusion-QL)
        return spec

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L = L_diffusion + guide(â⁰), â⁰ the one-step reconstruction of the same forward pass."""
        obs, act = batch.observations, batch.actions
        terms = self.model.loss_terms(act, obs, noise)
        per_dim = (terms.eps - terms.eps_hat).square()  # [B, A]
        # L_diffusion = mean_b mean_a (ε − ε_θ)² (EDP's mean_flat) or mean_b Σ_a (ε − ε_θ)²
        diffusion = per_dim.mean() if self.cfg.bc_reduction == "mean" else per_dim.sum(-1).mean()
        if self.cfg.guide == "weighted":
            w = awr_weights(critic.advantage(obs, act), self.cfg.beta, self.cfg.max_weight)
            guide = (w * 0.5 * (act - terms.a0_hat).square().sum(-1)).mean()
        else:
            q = q_for_actor(critic, obs, terms.a0_hat, self.cfg.q_agg, noise.get("q_member"))  # agg_i Q_i(s, â⁰)
            guide = -self.cfg.alpha * q.mean() / q.abs().mean().detach().clamp_min(1e-6)
        loss = diffusion + guide
        return loss, {"actor/loss": loss, "actor/diffusion_loss": diffusion, "actor/guide": guide}
