"""Actor ``flow-resample`` (IFQL; Park, Li & Levine 2025, ``seohongpark/fql`` agents/ifql.py).

IDQL with the diffusion model replaced by FQL's BC flow: training is pure
behaviour cloning by flow matching (the critic is never read),

    L = mean (v_θ(s, x_t, t) − (x₁ − x₀))²,  x_t = (1 − t)x₀ + t·a,  x₀ ~ N(0, I), t ~ U[0, 1],

and acting draws N candidates per state with the flow's Euler sampler
(``flow_steps``, clipped to [−1, 1]) and selects one with the critic's
selection rule (:mod:`offrl.critics.selection`; ``argmax`` = IFQL's choice).
The candidates are scored by the target ensemble by default, as for
``diffusion-resample``; IFQL's code (agents/ifql.py ``sample_actions``) scores
them with the online min-Q: ``q_source = online`` (the ``ifql`` preset).
Defaults: N = 32, 10 Euler steps, 4×512 GELU MLP, no EMA (IFQL samples with
the live weights).

Next actions for a critic: one flow sample per state (no selection).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics.base import CriticView, check_q_agg
from offrl.critics.selection import Q_SOURCES, RULES, sample_candidates, selection_noise
from offrl.data.transitions import Batch
from offrl.errors import unknown
from offrl.validation import COUNT, POSITIVE, Range
from offrl.generative.diffusion import repeat_states
from offrl.nets import check_ln_position, init_weights_
from offrl.generative.flow import VelocityField, euler_sample, flow_matching_loss, flow_noise


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class FlowResampleConfig(ActorConfig):
    hidden_dims: tuple[int, ...] = field(default=(512, 512, 512, 512),
                                         metadata=_h("Hidden widths of the velocity field (IFQL: 4×512)"))
    activation: str = field(default="gelu", metadata=_h("Activation of the velocity field (IFQL: GELU)"))
    layer_norm: bool = field(default=False, metadata=_h("LayerNorm in the velocity field (IFQL: off)"))
    layer_norm_position: str = field(default="before-activation",
                                     metadata=_h("before-activation | after-activation (FQL's code)"))
    lr: float = field(default=3e-4, metadata=_h("Adam learning rate"))
    cosine_decay: bool = field(default=False, metadata=_h("Cosine-decay the LR to 0 over training (IFQL: off)"))
    flow_steps: int = field(default=10, metadata=_h("Euler steps of the flow's ODE (IFQL: 10)"))
    num_samples: int = field(default=32, metadata=_h("Candidates N per state when acting (IFQL: 32)"))
    selection: str = field(default="argmax", metadata=_h("Candidate selection: argmax (IFQL) | implicit | softmax"))
    temperature: float = field(default=1.0, metadata=_h("Softmax temperature (selection=softmax)"))
    q_agg: str = field(default="min", metadata=_h("Q over the critic ensemble when selecting: min | mean | q1 | "
                                                  "random (one member per state)"))
    q_source: str = field(default="target", metadata=_h("Q networks that score the candidates: target (Polyak "
                                                        "copies) | online (IFQL's code)"))

    RANGES: ClassVar[dict[str, Range]] = {**ActorConfig.RANGES, "hidden_dims": COUNT, "lr": POSITIVE,
                                          "flow_steps": COUNT, "num_samples": COUNT, "temperature": POSITIVE}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_q_agg(self.q_agg, "actor.q_agg")
        check_ln_position(self.layer_norm_position, "actor.layer_norm_position")
        if self.q_source not in Q_SOURCES:
            raise unknown("Q source (actor.q_source)", self.q_source, Q_SOURCES)
        if self.selection not in RULES:
            raise unknown("selection rule (actor.selection)", self.selection, RULES)


@ACTORS.register("flow-resample", "IFQL: BC flow behaviour policy, candidates re-selected by the critic")
class FlowResampleActor(Actor):
    Config = FlowResampleConfig
    cfg: FlowResampleConfig
    exploration = "sample"  # acting samples the policy (fresh noise): online collection acts the same way

    def __init__(self, cfg: FlowResampleConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__(cfg, obs_dim, act_dim, total_updates)
        self.flow = VelocityField(obs_dim, act_dim, cfg.hidden_dims, cfg.activation, cfg.layer_norm,
                                  cfg.layer_norm_position)  # v_θ
        init_weights_(self.flow, cfg.init, role="field")

    def update_noise(self, batch_size: int, critic: object) -> NoiseSpec:
        return flow_noise(batch_size, self.act_dim)

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L = mean (v_θ(s, x_t, t) − (a − x₀))²: behaviour cloning, the critic is not read."""
        loss = flow_matching_loss(self.flow, batch.observations, batch.actions, noise["x0"], noise["t"])
        return loss, {"actor/loss": loss}

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """One flow sample per row of ``obs``: Euler from x₀, clipped to [−1, 1]."""
        return euler_sample(self.flow, obs, x0, self.cfg.flow_steps)

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"x0": Noise.normal(batch_size, self.act_dim)}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        return self.sample(obs, noise["x0"])

    def act_noise(self, batch_size: int) -> NoiseSpec:
        return {"x0": Noise.normal(batch_size * self.cfg.num_samples, self.act_dim),
                **selection_noise(batch_size, self.cfg.q_agg)}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        n = self.cfg.num_samples
        candidates = self.sample(repeat_states(obs, n), noise["x0"])  # [(b n), A]
        return sample_candidates(critic, obs, candidates, self.cfg.selection, noise["select"],
                                 self.cfg.temperature, num_candidates=n, q_agg=self.cfg.q_agg,
                                 q_member=noise.get("q_member"), q_source=self.cfg.q_source)
