"""Actor ``fql``: flow Q-learning (Park, Li & Levine 2025, ``seohongpark/fql`` agents/fql.py).

Two networks, one loss:

- a BC flow v_θ(s, x_t, t) fitted to the data by flow matching
  (:mod:`offrl.generative.flow`): x₀ ~ N(0, I), x₁ = a, t ~ U[0, 1],
  L_flow = mean (v_θ(s, x_t, t) − (x₁ − x₀))²;
- a one-step policy μ_ω(s, z), z ~ N(0, I), distilled from the flow's Euler
  ODE solution (``flow_steps`` steps, clipped to [−1, 1]) and pushed up Q:

      L = L_flow + α · mean (μ_ω(s, z) − sg(ODE_θ(s, z)))² − λ · mean Q(s, clip(μ_ω(s, z))),
      λ = 1, or 1 / sg(mean |Q|) with ``normalize_q_loss``,

  means over batch and action dims as FQL's ``jnp.mean``. The distillation
  target is a constant: FQL evaluates the flow with the parameters before the
  update, outside the gradient, so the distillation term moves only μ_ω and
  the BC flow learns from L_flow alone. Q = ``q_agg`` over the critic's online
  ensemble (FQL: ``mean``), differentiable in the action only.

Acting: μ_ω(s, z) with fresh z, clipped — one network call, no ODE, no
critic. A critic that backs up through the policy (``td3`` with σ = 0 and
``q_agg = mean``, FQL's critic) gets the same: ``next_actions`` = μ_ω(s', z)
(FQL has no target policy). α is the knob FQL tunes per environment family
(10 antmaze, 30 humanoidmaze, 300 cube/scene, 1000 puzzle); it trades
staying on the flow's samples (α large) against climbing Q (α small).

Randomness, all declared: t and x₀ (flow loss), z (distillation and Q term),
and, for ``q_agg = random``, one uniform picking the Q member.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView, check_q_agg, q_for_actor
from offrl.data.transitions import Batch
from offrl.validation import COUNT, NON_NEGATIVE, POSITIVE, Range
from offrl.generative.flow import VelocityField, euler_sample, flow_matching_loss, flow_noise
from offrl.nets import MLP, check_ln_position, init_weights_

#: Floor of sg(mean|Q|) in λ = 1 / sg(mean|Q|).
Q_SCALE_EPS = 1e-6


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class FQLConfig(ActorConfig):
    hidden_dims: tuple[int, ...] = field(
        default=(512, 512, 512, 512), metadata=_h("Hidden widths of the BC flow and the one-step policy (FQL: 4×512)")
    )
    activation: str = field(default="gelu", metadata=_h("Activation of both networks (FQL: GELU)"))
    layer_norm: bool = field(default=False, metadata=_h("LayerNorm in both networks (FQL's actor_layer_norm: off)"))
    layer_norm_position: str = field(default="before-activation",
                                     metadata=_h("before-activation | after-activation (FQL's code)"))
    lr: float = field(default=3e-4, metadata=_h("Adam learning rate"))
    cosine_decay: bool = field(default=False, metadata=_h("Cosine-decay the LR to 0 over training (FQL: off)"))
    alpha: float = field(default=10.0, metadata=_h("α, weight of the distillation term (FQL tunes it per task)"))
    flow_steps: int = field(default=10, metadata=_h("Euler steps of the BC flow's ODE (FQL: 10)"))
    normalize_q_loss: bool = field(default=False, metadata=_h("Scale the Q term by 1/sg(mean|Q|) (FQL: off)"))
    q_agg: str = field(default="mean", metadata=_h("Q over the critic ensemble: mean (FQL) | min | q1 | random"))

    RANGES: ClassVar[dict[str, Range]] = {**ActorConfig.RANGES, "hidden_dims": COUNT, "lr": POSITIVE,
                                          "alpha": NON_NEGATIVE, "flow_steps": COUNT}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_q_agg(self.q_agg, "actor.q_agg")
        check_ln_position(self.layer_norm_position, "actor.layer_norm_position")


@ACTORS.register("fql", "FQL: one-step policy distilled from a BC flow, pushed up Q (flow Q-learning)")
class FQLActor(Actor):
    Config = FQLConfig
    cfg: FQLConfig
    exploration = "sample"  # acting samples the policy (fresh noise): online collection acts the same way

    def __init__(self, cfg: FQLConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        self.flow = VelocityField(obs_dim, act_dim, cfg.hidden_dims, cfg.activation, cfg.layer_norm,
                                  cfg.layer_norm_position)  # v_θ
        self.onestep = MLP(obs_dim + act_dim, cfg.hidden_dims, act_dim, cfg.activation,
                           layer_norm=cfg.layer_norm, layer_norm_position=cfg.layer_norm_position)  # μ_ω
        init_weights_(self, cfg.init, role="field")  # FQL: both are ActorVectorFields (output scale 1)

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        spec = {**flow_noise(batch_size, self.act_dim), "z": Noise.normal(batch_size, self.act_dim)}
        if self.cfg.q_agg == "random":
            spec["q_member"] = Noise.uniform()
        return spec

    def mu(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """μ_ω(s, z), unclipped."""
        return self.onestep(torch.cat([obs, z], dim=-1))

    def flow_actions(self, obs: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """ODE_θ(s, x₀): the BC flow's Euler solution, clipped to [−1, 1]."""
        return euler_sample(self.flow, obs, x0, self.cfg.flow_steps)

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L = L_flow + α·mean(μ_ω(s, z) − sg(ODE_θ(s, z)))² − λ·mean Q(s, clip(μ_ω(s, z)))."""
        obs, act, z = batch.observations, batch.actions, noise["z"]
        flow_loss = flow_matching_loss(self.flow, obs, act, noise["x0"], noise["t"])  # L_flow
        with torch.no_grad():
            target = self.flow_actions(obs, z)  # sg(ODE_θ(s, z))
        mu = self.mu(obs, z)
        distill = ((mu - target) ** 2).mean()
        a_pi = mu.clamp(-1.0, 1.0)
        q = q_for_actor(critic, obs, a_pi, self.cfg.q_agg, noise.get("q_member"))  # agg_i Q_i(s, a_π), [B]
        q_loss = -q.mean()
        if self.cfg.normalize_q_loss:
            q_loss = q_loss / q.detach().abs().mean().clamp_min(Q_SCALE_EPS)  # λ = 1 / sg(mean|Q|)
        loss = flow_loss + self.cfg.alpha * distill + q_loss
        return loss, {"actor/loss": loss, "actor/flow_loss": flow_loss, "actor/distill_loss": distill,
                      "actor/q_loss": q_loss, "actor/q": q.mean(), "actor/bc_mse": ((a_pi - act) ** 2).mean()}

    # --- acting and next actions: μ_ω(s, z) with fresh z -------------------------------------------
    def act_noise(self, batch_size: int) -> NoiseSpec:
        return {"z": Noise.normal(batch_size, self.act_dim)}

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"z": Noise.normal(batch_size, self.act_dim)}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        return self.mu(obs, noise["z"]).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        return self.mu(obs, noise["z"]).clamp(-1.0, 1.0)
