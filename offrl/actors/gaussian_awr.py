"""Actor ``gaussian-awr`` (IQL): advantage-weighted regression with a Gaussian policy.

π(a|s) = N(tanh(μ_θ(s)), diag(exp(2 log σ))) with a state-independent log σ
(init 0, clipped to [−5, 2]); the distribution itself is not squashed.
Loss: −mean[min(exp(β · (min Q̄ − V)), 100) · log π(a|s)], actor LR with
cosine decay to 0 over training. Evaluation acts with the mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS
from offrl.component import make_adam
from offrl.critics.base import CriticView
from offrl.data.transitions import Batch
from offrl.nets import MLP


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


def awr_weights(adv: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """min(exp(β·A), max_weight), computed without overflow for large β·A."""
    return torch.exp(torch.clamp(beta * adv, max=math.log(max_weight)))


def cosine_scheduler(opt: torch.optim.Optimizer, total: int, enabled: bool) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay to 0 over ``total`` updates (constant if disabled)."""
    if not enabled:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))


@ACTORS.register("gaussian-awr", "IQL's advantage-weighted Gaussian (weighted behaviour cloning)")
class GaussianAWRActor(Actor):
    Config = GaussianAWRConfig
    cfg: GaussianAWRConfig

    def __init__(self, cfg: GaussianAWRConfig, obs_dim: int, act_dim: int, total_updates: int, device: torch.device) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates, device)
        self.mean_net = MLP(obs_dim, cfg.hidden_dims, act_dim, cfg.activation, dropout=cfg.dropout)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.to(device)
        opt = make_adam(self.parameters(), cfg.lr, device=device)
        self.optimizers = {"actor": opt}
        self.schedulers = {"actor": cosine_scheduler(opt, total_updates, cfg.cosine_decay)}

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = torch.tanh(self.mean_net(obs))
        std = torch.clamp(self.log_std, self.cfg.log_std_min, self.cfg.log_std_max).exp()
        return torch.distributions.Normal(mean, std.expand_as(mean))

    def update(self, batch: Batch, critic: CriticView) -> dict[str, torch.Tensor]:
        adv = critic.advantage(batch.observations, batch.actions)
        weights = awr_weights(adv, self.cfg.beta, self.cfg.max_weight)
        log_prob = self.distribution(batch.observations).log_prob(batch.actions).sum(-1)
        loss = -(weights * log_prob).mean()
        opt = self.optimizers["actor"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.schedulers["actor"].step()
        return {"actor/loss": loss.detach(), "actor/weight_mean": weights.mean(), "actor/log_prob": log_prob.detach().mean()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, generator: torch.Generator) -> torch.Tensor:
        return torch.tanh(self.mean_net(obs)).clamp(-1.0, 1.0)
