"""Actor ``sac``: the soft actor-critic's tanh-Gaussian policy with a learned entropy temperature.

Haarnoja et al. 2018 (SAC, "Soft Actor-Critic Algorithms and Applications"), in the form RLPD (Ball et al.
2023, ``ikostrikov/rlpd`` agents/sac/sac_learner.py) and CORL's CQL/Cal-QL use:

    u = μ_θ(s) + σ_θ(s) ε,  ε ~ N(0, I),   a = tanh(u)                         (reparameterised sample)
    log π(a|s) = log N(u; μ, σ²) − Σ_j log(1 − tanh²(u_j))
    L_π = mean_B[ α · log π(a|s) − Q(s, a) ]                                      (α a constant here)
    L_α = α · ( H(π) − H̄ ),   H(π) = −mean_B log π(a|s)  (a constant here),  H̄ = target_entropy_per_dim · A

(``temperature_loss = log-alpha``: L_α = log α · (H(π) − H̄), CORL's and rlkit's form, whose gradient in log α
is not scaled by α.)

μ and log σ are the two halves of one MLP's output (state-dependent σ, log σ = raw + ``log_std_offset``
clipped to [log_std_min, log_std_max], RLPD's −20 and 2; CORL's offset is −1, a learned scalar there and
fixed here); α = exp(log α), log α learned from ``log(init_temperature)`` (RLPD: α₀ = 1,
H̄ = −A/2; SAC's paper: H̄ = −A, ``target_entropy_per_dim = -1``). Q is ``q_agg`` over the critic's online
ensemble, differentiable in the action only: ``min`` (SAC, CORL) or ``mean`` (RLPD's actor).

Stages: the actor, then the temperature (its own group and Adam). L_α reads the entropy of the policy on the
same batch and noise; with the default sequential order that is the just-updated policy, with
``trainer.update_order=joint`` the pre-step one, RLPD's exactly (RLPD updates α with the actor loss's entropy).

To a critic this policy offers samples *with* their log-density (``next_actions_with_log_prob``): the soft
backup y = r + γ(1 − d)(min Q̄(s', a') − α log π(a'|s')) of ``td3`` with ``critic.entropy_backup``, and the
importance weights of CQL's logsumexp. SAC keeps no target policy: a' is drawn from the current one. It acts
with the mean tanh(μ(s)) in evaluation (RLPD's ``eval_actions``) and samples the policy while collecting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from offrl.actors.base import Actor, ActorConfig, lr_schedule
from offrl.actors.gaussian_awr import gaussian_log_prob
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors, ParamGroup, Stage
from offrl.critics.base import CriticView, check_q_agg, q_for_actor
from offrl.data.transitions import Batch
from offrl.errors import unknown
from offrl.nets import MLP, check_ln_position, init_weights_
from offrl.validation import COUNT, POSITIVE, Range, check_order

LOG_2 = math.log(2.0)
TEMPERATURE_LOSSES = ("alpha", "log-alpha")


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """Σ_j log(1 − tanh²(u_j)) = Σ_j 2 (log 2 − u_j − softplus(−2 u_j)), without overflow for large |u|."""
    return (2.0 * (LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)


@dataclass
class SACConfig(ActorConfig):
    hidden_dims: tuple[int, ...] = field(default=(256, 256), metadata={"help": "Hidden widths of the policy MLP"})
    activation: str = field(default="relu", metadata={"help": "Activation of the policy MLP"})
    lr: float = field(default=3e-4, metadata={"help": "Adam learning rate of the policy (RLPD, SAC: 3e-4)"})
    cosine_decay: bool = field(default=False, metadata={"help": "Cosine-decay the policy's LR to 0 (SAC: off)"})
    log_std_min: float = field(default=-20.0, metadata={"help": "Lower clip of log σ(s) (RLPD: -20)"})
    log_std_max: float = field(default=2.0, metadata={"help": "Upper clip of log σ(s) (RLPD: 2)"})
    log_std_offset: float = field(default=0.0, metadata={"help": "Added to the network's log σ before the clip "
                                                                 "(CORL's TanhGaussianPolicy: -1; RLPD: 0)"})
    q_agg: str = field(default="min", metadata={"help": "Q in the loss over the critic ensemble: min (SAC, CORL) | "
                                                        "mean (RLPD) | q1 | random"})
    learn_temperature: bool = field(default=True, metadata={"help": "Learn α towards the target entropy (false: "
                                                                    "α = init_temperature throughout)"})
    init_temperature: float = field(default=1.0, metadata={"help": "α at the start (RLPD: 1.0)"})
    target_entropy_per_dim: float = field(
        default=-0.5, metadata={"help": "Target entropy H̄ per action dimension (RLPD: -0.5, i.e. −A/2; SAC: -1)"})
    temperature_lr: float = field(default=3e-4, metadata={"help": "Adam learning rate of log α (RLPD: 3e-4)"})
    temperature_loss: str = field(default="alpha", metadata={"help": "alpha: L = α (H − H̄) (RLPD, SAC) | "
                                                                     "log-alpha: L = log α (H − H̄) (CORL)"})
    layer_norm: bool = field(default=False, metadata={"help": "LayerNorm in the policy MLP's hidden layers"})
    layer_norm_position: str = field(default="before-activation",
                                     metadata={"help": "before-activation | after-activation"})

    RANGES: ClassVar[dict[str, Range]] = {
        **ActorConfig.RANGES, "hidden_dims": COUNT, "lr": POSITIVE, "log_std_min": Range(-20.0, 20.0),
        "log_std_max": Range(-20.0, 20.0), "log_std_offset": Range(), "init_temperature": POSITIVE, "target_entropy_per_dim": Range(),
        "temperature_lr": POSITIVE,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_order(self, "actor", "log_std_min", "log_std_max")
        check_q_agg(self.q_agg, "actor.q_agg")
        check_ln_position(self.layer_norm_position, "actor.layer_norm_position")
        if self.temperature_loss not in TEMPERATURE_LOSSES:
            raise unknown("temperature loss (actor.temperature_loss)", self.temperature_loss, TEMPERATURE_LOSSES)


@ACTORS.register("sac", "Soft actor-critic's tanh-Gaussian: α·log π(a|s) − Q(s, a), α learned (SAC, RLPD)")
class SACActor(Actor):
    Config = SACConfig
    cfg: SACConfig
    exploration = "sample"  # collection samples the policy; evaluation acts with the mean

    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        self.net = MLP(obs_dim, cfg.hidden_dims, 2 * act_dim, cfg.activation, layer_norm=cfg.layer_norm,
                       layer_norm_position=cfg.layer_norm_position)
        # role "field": the output layer keeps scale 1 under `fql` (Glorot-uniform, as RLPD's heads)
        init_weights_(self.net, cfg.init, role="field")
        log_alpha = torch.tensor(math.log(cfg.init_temperature))
        if cfg.learn_temperature:
            self.log_alpha = nn.Parameter(log_alpha)
        else:  # a constant shared by every seed
            self.register_buffer("log_alpha", log_alpha, persistent=False)
        self.target_entropy = cfg.target_entropy_per_dim * act_dim

    # --- the policy -------------------------------------------------------------------------------
    def dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ(s), log σ(s)) [B, A] each, log σ clipped."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, (log_std + self.cfg.log_std_offset).clamp(self.cfg.log_std_min, self.cfg.log_std_max)

    def sample(self, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a = tanh(μ + σ ε) [B, A] and log π(a|s) [B] (change of variables through tanh)."""
        mean, log_std = self.dist(obs)
        u = mean + torch.exp(log_std) * eps
        return torch.tanh(u), gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)

    def temperature(self) -> torch.Tensor:
        """α = exp(log α), with its gradient (the temperature stage)."""
        return torch.exp(self.log_alpha)

    def entropy_temperature(self) -> torch.Tensor:
        return self.temperature().detach()

    # --- training ---------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, ParamGroup]:
        policy = [p for name, p in self.named_parameters() if p.requires_grad and name != "log_alpha"]
        groups = {"actor": ParamGroup(policy, self.cfg.lr, schedule=lr_schedule(self.cfg.cosine_decay),
                                      total_updates=self.total_updates, max_grad_norm=self.cfg.max_grad_norm)}
        if self.cfg.learn_temperature:
            groups["temperature"] = ParamGroup([self.log_alpha], self.cfg.temperature_lr)
        return groups

    def stages(self) -> list[Stage]:
        stages = [Stage("actor", self.loss)]
        if self.cfg.learn_temperature:
            stages.append(Stage("temperature", self.temperature_loss))
        return stages

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        spec = {"eps": Noise.normal(batch_size, self.act_dim)}
        if self.cfg.q_agg == "random":
            spec["q_member"] = Noise.uniform()
        return spec

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L_π = mean[α log π(a|s) − agg_i Q_i(s, a)], a = tanh(μ + σ ε) reparameterised; α a constant."""
        obs = batch.observations
        a, log_pi = self.sample(obs, noise["eps"])
        q = q_for_actor(critic, obs, a, self.cfg.q_agg, noise.get("q_member"))
        alpha = self.entropy_temperature()
        loss = (alpha * log_pi - q).mean()
        return loss, {"actor/loss": loss, "actor/q": q.mean(), "actor/entropy": -log_pi.mean(),
                      "actor/temperature": alpha}

    def temperature_loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L_α = α · (H − H̄) (or log α · (H − H̄)), H = −mean log π(a|s) of the policy on this batch and noise
        (a constant)."""
        with torch.no_grad():
            _, log_pi = self.sample(batch.observations, noise["eps"])
        scale = self.temperature() if self.cfg.temperature_loss == "alpha" else self.log_alpha
        loss = scale * (-log_pi.mean() - self.target_entropy)
        return loss, {"actor/temperature_loss": loss}

    # --- what a critic reads ----------------------------------------------------------------------
    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"eps": Noise.normal(batch_size, self.act_dim)}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """a' = tanh(μ(s') + σ(s') ε): a sample of the current policy (SAC keeps no target policy)."""
        return self.sample(obs, noise["eps"])[0]

    @torch.no_grad()
    def next_actions_with_log_prob(self, obs: torch.Tensor, noise: NoiseTensors) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample(obs, noise["eps"])

    # --- acting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        """tanh(μ(s)), the policy's mode (RLPD's evaluation)."""
        return torch.tanh(self.dist(obs)[0])

    def explore_noise(self, batch_size: int) -> NoiseSpec:
        return {"eps": Noise.normal(batch_size, self.act_dim)}

    @torch.no_grad()
    def explore(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors, scale: float) -> torch.Tensor:
        """A sample of the policy (``online.explore_noise`` is not used: the policy's own σ explores)."""
        return self.sample(obs, noise["eps"])[0]
