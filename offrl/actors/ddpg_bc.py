"""Actor ``ddpg-bc``: behaviour-constrained deterministic policy gradient (TD3+BC's actor loss).

A deterministic tanh policy μ(s) = tanh(MLP(s)) trained on

    L = mean_B[ −λ · Q(s, μ(s)) + ‖μ(s) − a‖² ],   λ = α / sg(mean_B |Q(s, μ(s))|),

with a the dataset action, Q = min_i Q_i the critic's current ensemble
(``critic.q_for_actor``: differentiable in the action, no gradient into the
critic). Conventions: by default (``bc_reduction = "sum"``) the squared error
is *summed* over action dimensions and averaged over the batch. Park et al.
2024 (as OGBench) weight the BC term instead, −Q/mean|Q| − α_P log π(a|s) with a
unit-variance Gaussian, which is this loss with α = 2 / α_P. TD3+BC (Fujimoto
& Gu 2021) *averages* over action dimensions (``F.mse_loss``): set
``bc_reduction = "mean"`` to reproduce it with its α = 2.5 (with "sum", its α
corresponds to α·A, A the action dimension). The normaliser is
floored at 1e-6 (as in OGBench) so Q ≡ 0 cannot divide by zero. α = 0 is plain
behaviour cloning; large α follows Q's action gradient off the data.

``policy = "gaussian"``: N(μ(s), σ²) with a learned state-independent log σ
(clipped like ``gaussian-awr``); the BC term becomes −2 log π(a|s) without its
constant, ‖(μ(s) − a)/σ‖² + 2 Σ log σ (identical to the deterministic loss at
σ = 1). Q is still evaluated at the mean, and the mean is used for acting.

The learning rate is constant by default: TD3+BC and Park et al.'s DDPG+BC use
no decay (``cosine_decay`` turns on IQL's cosine schedule).

Q in the loss is ``q_agg`` over the critic's online ensemble: ``min`` (default,
as Park et al. and ReBRAC), ``q1`` (TD3+BC uses Q1 only), ``mean``, or
``random`` (one member per update, drawn from declared noise).

Target policy (TD3): a frozen copy μ̄ of the mean network, Polyak-averaged
after every actor update (``target_update_rate``, TD3's τ = 0.005). It is
what :meth:`DDPGBCActor.next_actions` returns, the a' = μ̄(s') of a critic
that backs up through the policy (``td3``); with the policy delay
(``update_every`` = 2) it moves only when the actor does. IQL-family critics
never read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import copy

import torch
from torch import nn

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors, polyak_
from offrl.critics.base import CriticView, check_q_agg, q_for_actor
from offrl.data.transitions import Batch
from offrl.errors import unknown
from offrl.nets import MLP, check_ln_position, init_weights_
from offrl.validation import COUNT, NON_NEGATIVE, POSITIVE, RATE, Range, check_order

POLICIES = ("deterministic", "gaussian")
BC_REDUCTIONS = ("sum", "mean")
#: Floor of sg(mean|Q|) in λ = α / sg(mean|Q|).
Q_SCALE_EPS = 1e-6


@dataclass
class DDPGBCConfig(ActorConfig):
    hidden_dims: tuple[int, ...] = field(default=(256, 256), metadata={"help": "Hidden widths of the policy MLP"})
    activation: str = field(default="relu", metadata={"help": "Activation of the policy MLP"})
    lr: float = field(default=3e-4, metadata={"help": "Adam learning rate"})
    cosine_decay: bool = field(
        default=False,
        metadata={"help": "Cosine-decay the LR to 0 over training (off: TD3+BC and Park et al. use none)"},
    )
    alpha: float = field(
        default=2.5,
        metadata={"help": "α in λ = α / mean|Q|: weight of Q vs ‖μ(s) − a‖² (the key knob; 0 = pure BC)"},
    )
    bc_reduction: str = field(
        default="sum",
        metadata={"help": "Reduce ‖μ(s) − a‖² over action dims: sum (Park et al.) | mean (TD3+BC)"},
    )
    policy: str = field(
        default="deterministic",
        metadata={"help": "deterministic (tanh μ(s)) | gaussian (learned σ, acts with the mean)"},
    )
    log_std_min: float = field(default=-5.0, metadata={"help": "Lower clip of log σ (policy=gaussian)"})
    log_std_max: float = field(default=2.0, metadata={"help": "Upper clip of log σ (policy=gaussian)"})
    q_agg: str = field(
        default="min", metadata={"help": "Q in the loss over the critic ensemble: min | mean | q1 (TD3+BC) | random"}
    )
    target_update_rate: float = field(
        default=0.005,
        metadata={"help": "Polyak rate of the target policy μ̄ a td3 critic backs up through (TD3: 0.005)"},
    )
    layer_norm: bool = field(default=False, metadata={"help": "LayerNorm in the policy MLP's hidden layers "
                                                             "(ReBRAC's actor_ln: off)"})
    layer_norm_position: str = field(default="before-activation",
                                     metadata={"help": "before-activation | after-activation (ReBRAC's and FQL's "
                                                       "code)"})

    RANGES: ClassVar[dict[str, Range]] = {
        **ActorConfig.RANGES, "hidden_dims": COUNT, "lr": POSITIVE, "alpha": NON_NEGATIVE,
        "log_std_min": Range(-20.0, 20.0), "log_std_max": Range(-20.0, 20.0), "target_update_rate": RATE,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bc_reduction not in BC_REDUCTIONS:
            raise unknown("ddpg-bc BC reduction (actor.bc_reduction)", self.bc_reduction, BC_REDUCTIONS)
        if self.policy not in POLICIES:
            raise unknown("ddpg-bc policy (actor.policy)", self.policy, POLICIES)
        check_q_agg(self.q_agg, "actor.q_agg")
        check_ln_position(self.layer_norm_position, "actor.layer_norm_position")
        check_order(self, "actor", "log_std_min", "log_std_max")


@ACTORS.register("ddpg-bc", "Behaviour-constrained policy gradient: λ·Q(s, μ(s)) − ‖μ(s) − a‖² (TD3+BC)")
class DDPGBCActor(Actor):
    Config = DDPGBCConfig
    cfg: DDPGBCConfig

    def __init__(self, cfg: DDPGBCConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        self.mean_net = MLP(obs_dim, cfg.hidden_dims, act_dim, cfg.activation, layer_norm=cfg.layer_norm,
                            layer_norm_position=cfg.layer_norm_position)
        init_weights_(self.mean_net, cfg.init, role="policy")
        if cfg.policy == "gaussian":
            self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.mean_target = copy.deepcopy(self.mean_net).requires_grad_(False)  # μ̄, TD3's target policy

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        return {"q_member": Noise.uniform()} if self.cfg.q_agg == "random" else {}

    def mu(self, obs: torch.Tensor) -> torch.Tensor:
        """μ(s) = tanh(MLP(s)) ∈ (−1, 1)^A."""
        return torch.tanh(self.mean_net(obs))

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L = mean[−λ Q(s, μ(s)) + ‖μ(s) − a‖²], λ = α / sg(mean|Q|); returns (L, metrics)."""
        mu = self.mu(batch.observations)
        q = q_for_actor(critic, batch.observations, mu, self.cfg.q_agg, noise.get("q_member"))  # agg_i Q_i(s, μ(s))
        lam = self.cfg.alpha / q.detach().abs().mean().clamp_min(Q_SCALE_EPS)  # λ = α / sg(mean|Q|)
        sq_err = (mu - batch.actions) ** 2  # [B, A]
        if self.cfg.policy == "gaussian":
            log_std = torch.clamp(self.log_std, self.cfg.log_std_min, self.cfg.log_std_max)
            per_dim = sq_err * torch.exp(-2.0 * log_std) + 2.0 * log_std  # −2 log π(a|s) + const, per dim
        else:
            per_dim = sq_err  # ‖μ(s) − a‖², per dim
        bc = per_dim.sum(-1) if self.cfg.bc_reduction == "sum" else per_dim.mean(-1)
        loss = (-lam * q + bc).mean()
        return loss, {"actor/loss": loss, "actor/q": q.mean(), "actor/bc_mse": sq_err.sum(-1).mean(),
                      "actor/lambda": lam}

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """μ̄ ← μ̄ + ρ (μ − μ̄) after each actor update."""
        polyak_(self.mean_target.parameters(), self.mean_net.parameters(), self.cfg.target_update_rate)

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """a' = μ̄(s') = tanh(target MLP(s')), the target policy (TD3)."""
        return torch.tanh(self.mean_target(obs))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        return self.mu(obs).clamp(-1.0, 1.0)
