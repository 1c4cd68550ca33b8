"""Actor ``gaussian-awr`` (IQL): advantage-weighted regression with a Gaussian policy.

π(a|s) = N(tanh(μ_θ(s)), diag(exp(2 log σ))) with a state-independent log σ
(init 0, clipped to [−5, 2]); the distribution itself is not squashed.
Loss: −mean[min(exp(β · (min Q̄ − V)), 100) · log π(a|s)], actor LR with
cosine decay to 0 over training. Evaluation acts with the mean.

FQL's IQL baseline (``seohongpark/fql`` agents/iql.py with utils/networks.py
``Actor``) differs in three places, each an option: the advantage reads the
*online* twin Q, min(Q1, Q2)(s, a) − V(s) (``q_source = online``; IQL's own
code reads the target Q̄), σ is the constant 1 (``const_std``: ``std =
fixed``), and the mean is the linear head's output, not squashed by tanh
(``tanh_mean = false``; actions are clipped to [−1, 1] when acting).

Next actions for a critic (``next_action``): the mean (what evaluation acts
with, default) or a sample a = mean + σε of the Gaussian.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView
from offrl.data.transitions import Batch
from offrl.critics.selection import Q_SOURCES
from offrl.errors import unknown
from offrl.nets import MLP, check_ln_position, init_weights_
from offrl.validation import COUNT, DROPOUT, NON_NEGATIVE, POSITIVE, Range, check_order

NEXT_ACTIONS = ("mean", "sample")
STDS = ("learned", "fixed")


@dataclass
class GaussianAWRConfig(ActorConfig):
    hidden_dims: tuple[int, ...] = field(default=(256, 256), metadata={"help": "Hidden widths of the policy MLP"})
    activation: str = field(default="relu", metadata={"help": "Activation of the policy MLP"})
    dropout: float = field(default=0.0, metadata={"help": "Dropout in the policy MLP (0.1 for Kitchen/Adroit)"})
    lr: float = field(default=3e-4, metadata={"help": "Adam learning rate"})
    cosine_decay: bool = field(default=True, metadata={"help": "Cosine-decay the LR to 0 over training (IQL)"})
    beta: float = field(default=3.0, metadata={"help": "Inverse temperature β: 3 locomotion, 10 AntMaze, 0.5 Kitchen/Adroit"})
    max_weight: float = field(default=100.0, metadata={"help": "Clip of the exp(β·A) weights"})
    log_std_min: float = field(default=-5.0, metadata={"help": "Lower clip of log σ"})
    log_std_max: float = field(default=2.0, metadata={"help": "Upper clip of log σ"})
    next_action: str = field(
        default="mean", metadata={"help": "Next actions a critic backs up through / averages V over: mean | sample"}
    )
    q_source: str = field(
        default="target", metadata={"help": "Q of the advantage min Q(s, a) − V(s): target (IQL's code) | online "
                                            "(FQL's IQL)"})
    std: str = field(default="learned", metadata={"help": "σ: learned (a state-independent log σ, IQL) | fixed "
                                                         "(σ = 1, FQL's const_std)"})
    tanh_mean: bool = field(default=True, metadata={"help": "Squash the mean with tanh (IQL); false: the linear "
                                                           "head's output (FQL's IQL)"})
    layer_norm: bool = field(default=False, metadata={"help": "LayerNorm in the policy MLP's hidden layers"})
    layer_norm_position: str = field(default="before-activation",
                                     metadata={"help": "before-activation | after-activation (FQL's code)"})

    RANGES: ClassVar[dict[str, Range]] = {
        **ActorConfig.RANGES, "hidden_dims": COUNT, "dropout": DROPOUT, "lr": POSITIVE, "beta": NON_NEGATIVE,
        "max_weight": Range(0.0, lo_open=True, inf=True), "log_std_min": Range(-20.0, 20.0),
        "log_std_max": Range(-20.0, 20.0),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_order(self, "actor", "log_std_min", "log_std_max")
        if self.next_action not in NEXT_ACTIONS:
            raise unknown("next action (actor.next_action)", self.next_action, NEXT_ACTIONS)
        if self.q_source not in Q_SOURCES:
            raise unknown("Q source (actor.q_source)", self.q_source, Q_SOURCES)
        if self.std not in STDS:
            raise unknown("standard deviation (actor.std)", self.std, STDS)
        check_ln_position(self.layer_norm_position, "actor.layer_norm_position")


def awr_weights(adv: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """min(exp(β·A), max_weight), computed without overflow for large β·A."""
    return torch.exp(torch.clamp(beta * adv, max=math.log(max_weight)))


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag σ²) summed over the last axis (σ = exp(log_std))."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


@ACTORS.register("gaussian-awr", "IQL's advantage-weighted Gaussian (weighted behaviour cloning)")
class GaussianAWRActor(Actor):
    Config = GaussianAWRConfig
    cfg: GaussianAWRConfig

    def __init__(self, cfg: GaussianAWRConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        self.mean_net = MLP(obs_dim, cfg.hidden_dims, act_dim, cfg.activation, dropout=cfg.dropout,
                            layer_norm=cfg.layer_norm, layer_norm_position=cfg.layer_norm_position)
        init_weights_(self.mean_net, cfg.init, role="policy")
        if cfg.std == "learned":
            self.log_std = nn.Parameter(torch.zeros(act_dim))
        else:  # σ = 1: a constant, shared by every seed (not trained, not checkpointed)
            self.register_buffer("log_std", torch.zeros(act_dim), persistent=False)

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        return self.mean_net.noise(batch_size)  # dropout masks, when dropout > 0

    def mean(self, obs: torch.Tensor, noise: NoiseTensors | None = None) -> torch.Tensor:
        out = self.mean_net(obs, noise)
        return torch.tanh(out) if self.cfg.tanh_mean else out

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor, noise: NoiseTensors | None = None) -> torch.Tensor:
        """log π(a|s) = log N(a; tanh(μ_θ(s)), σ²), σ = exp(clip(log σ, [min, max])) (σ = 1 with std=fixed)."""
        log_std = torch.clamp(self.log_std, self.cfg.log_std_min, self.cfg.log_std_max)
        return gaussian_log_prob(act, self.mean(obs, noise), log_std)

    def advantage(self, obs: torch.Tensor, act: torch.Tensor, critic: CriticView) -> torch.Tensor:
        """A = min Q̄(s, a) − V(s), or min Q(s, a) − V(s) of the online Q (``q_source=online``); no gradient."""
        if self.cfg.q_source == "target":
            return critic.advantage(obs, act)
        with torch.no_grad():
            return critic.q_for_actor(obs, act) - critic.v(obs)

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L_π = −mean[min(exp(β·A(s, a)), w_max) · log π(a|s)],  A = min Q̄(s, a) − V(s)."""
        weights = awr_weights(self.advantage(batch.observations, batch.actions, critic), self.cfg.beta,
                              self.cfg.max_weight)
        log_prob = self.log_prob(batch.observations, batch.actions, noise)
        loss = -(weights * log_prob).mean()
        return loss, {"actor/loss": loss, "actor/weight_mean": weights.mean(), "actor/log_prob": log_prob.mean()}

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"eps": Noise.normal(batch_size, self.act_dim)} if self.cfg.next_action == "sample" else {}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """tanh(μ_θ(s)), or tanh(μ_θ(s)) + σ ε with ``next_action = sample``; clipped to [−1, 1]."""
        mean = self.mean(obs)
        if self.cfg.next_action == "sample":
            log_std = torch.clamp(self.log_std, self.cfg.log_std_min, self.cfg.log_std_max)
            mean = mean + torch.exp(log_std) * noise["eps"]
        return mean.clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        return self.mean(obs).clamp(-1.0, 1.0)

    exploration = "sample"  # online collection samples its own Gaussian, tanh(μ(s)) + σ ε (acting uses the mean)

    def explore_noise(self, batch_size: int) -> NoiseSpec:
        return {"eps": Noise.normal(batch_size, self.act_dim)}

    @torch.no_grad()
    def explore(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors, scale: float) -> torch.Tensor:
        log_std = torch.clamp(self.log_std, self.cfg.log_std_min, self.cfg.log_std_max)
        return (self.mean(obs) + torch.exp(log_std) * noise["eps"]).clamp(-1.0, 1.0)
