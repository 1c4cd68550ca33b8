"""Actor ``diffusion-resample`` (IDQL, Hansen-Estruch et al. 2023).

Training is pure behaviour cloning of μ(a|s) with a DDPM (the critic is never
read in training): loss E_{t,ε} ‖ε − ε_θ(√ᾱ_t a + √(1−ᾱ_t) ε, t, s)‖².
Acting samples N candidates per state from the EMA model and re-selects them
with the critic: ``argmax`` Q (the paper's evaluation choice, default),
``implicit`` ∝ w(s, a) (the paper's definition of the implicit actor), or
``softmax``. Defaults: LN-ResNet, VP schedule, T = 5, N = 64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from offrl.actors.diffusion_policy import DiffusionPolicyActor, DiffusionPolicyConfig
from offrl.actors.registry import ACTORS
from offrl.component import NoiseTensors
from offrl.critics.base import CriticView
from offrl.data.transitions import Batch


@dataclass
class DiffusionResampleConfig(DiffusionPolicyConfig):
    """IDQL: diffusion behaviour policy + critic re-selection (defaults as in the paper)."""


@ACTORS.register("diffusion-resample", "IDQL: diffusion behaviour policy, candidates re-selected by the critic")
class DiffusionResampleActor(DiffusionPolicyActor):
    Config = DiffusionResampleConfig

    def loss(self, batch: Batch, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """L = mean ‖ε − ε_θ(√ᾱ_k a + √(1−ᾱ_k) ε, k, s)‖²: behaviour cloning, the critic is not read."""
        loss = self.model.loss(batch.actions, batch.observations, noise).mean()
        return loss, {"actor/loss": loss}
