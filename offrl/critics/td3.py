"""Critic ``td3``: Q backed up through the actor (TD3 / TD3+BC, ReBRAC, FQL's critic).

    a' = π̄(s')                                  the actor's next action (its target copy if it has one)
    a' ← clip(a' + clip(σ ε, −c, c), −1, 1)     target-policy smoothing, ε ~ N(0, I) (TD3: σ = 0.2, c = 0.5)
    y  = r + γ (1 − terminal) · [agg_i Q̄_i(s', a') − α_c · ‖a' − a'_data‖²]
    L_Q = Σ_i mean_b (Q_i(s, a) − y)²

- Fujimoto et al. 2018 (TD3), Fujimoto & Gu 2021 (TD3+BC, ``sfujim/TD3_BC``):
  agg = min, σ = 0.2, c = 0.5, α_c = 0.
- Tarasov et al. 2023 (ReBRAC, ``tinkoff-ai/ReBRAC``): the critic BC penalty
  α_c ‖a' − a'_data‖², a'_data the dataset's next action, subtracted from the
  next Q inside the discounted term (``critic_bc_coef``); layer norm in Q.
  Where a transition has no dataset next action (the end of a truncated
  episode) the penalty is 0: there is nothing to stay close to.
- Park, Li & Levine 2025 (FQL, ``seohongpark/fql`` agents/fql.py): σ = 0,
  agg = mean (``q_agg``), the one-step policy's action at s'.
- Soft backup (SAC; RLPD, Ball et al. 2023, ``ikostrikov/rlpd``
  agents/sac/sac_learner.py): with ``entropy_backup`` the target subtracts
  the policy's entropy term, y = r + γ(1 − d)[agg Q̄(s', a') − α log π(a'|s')],
  a' a sample of a stochastic actor with a density (``sac``) and α its
  temperature. ``target_subset`` = m takes agg over m members of the target
  ensemble drawn afresh at each update (RLPD's ``num_min_qs`` = 2 of 10, after
  REDQ); ``target_cadence = every`` moves the targets after every critic
  update, as SAC and RLPD do at a UTD ratio above 1.

Policy delay (TD3's ``policy_freq``, offrl's ``actor.update_every`` = E;
``target_cadence = actor``, the default):
the actor updates on every E-th trainer iteration, and TD3 updates *both*
targets only then. The critic updates every iteration, so its Polyak step
uses the rate ρ·1[the actor updates in this iteration], computed on the
device from the update count (``after_update``): with U critic updates per
iteration, the target moves once, after the iteration's last critic update.
The actor's own target (``ddpg-bc``) moves after each actor update.

The actor is reached through one narrow method, ``actor.next_actions(obs,
noise)``, whose randomness the actor declares in ``next_action_noise`` and
this critic includes in its own ``update_noise`` (docs/extending.md). The
backup is a constant of the Q stage: no gradient reaches the actor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from offrl.component import Noise, NoiseSpec, NoiseTensors, polyak_
from offrl.critics.base import aggregate_q, check_q_agg
from offrl.critics.q_only import QOnlyConfig, QOnlyCritic
from offrl.critics.registry import CRITICS
from offrl.data.transitions import Batch
from offrl.errors import ConfigError, unknown
from offrl.validation import NON_NEGATIVE, Range

TARGET_AGGS = ("min", "mean")
TARGET_CADENCES = ("actor", "every")
#: Prefix of the actor's next-action noise inside this critic's update noise.
NEXT = "next."
#: Noise name of the draw that picks the target subset.
SUBSET = "target_subset"


def strip_prefix(prefix: str, noise: NoiseTensors) -> NoiseTensors:
    """The tensors of ``noise`` named ``prefix…``, under their names without it (an actor's own noise names)."""
    return {name[len(prefix):]: z for name, z in noise.items() if name.startswith(prefix)}


@dataclass
class TD3Config(QOnlyConfig):
    policy_noise: float = field(default=0.2, metadata={"help": "Target-policy smoothing σ (TD3: 0.2; FQL: 0 = off)"})
    noise_clip: float = field(default=0.5, metadata={"help": "Clip c of the smoothing noise (TD3: 0.5)"})
    q_agg: str = field(default="min", metadata={"help": "Target aggregation over Q̄_i(s', a'): min (TD3) | mean (FQL)"})
    alpha_critic: float = field(
        default=0.0,
        metadata={"help": "ReBRAC's critic BC penalty α_c: the target uses Q̄(s', a') − α_c‖a' − a'_data‖² (0 = off)"},
    )

    entropy_backup: bool = field(
        default=False,
        metadata={"help": "Soft backup: subtract α log π(a'|s') in the target (SAC, RLPD; needs an actor with a "
                          "density, sac, and critic.policy_noise=0)"},
    )
    target_subset: int = field(
        default=0,
        metadata={"help": "Aggregate the target over this many members of the ensemble, drawn afresh each update "
                          "(RLPD's num_min_qs: 2 of 10); 0 = all"},
    )
    target_cadence: str = field(
        default="actor",
        metadata={"help": "When the Q targets move: actor (TD3: in iterations where the actor updates, after the "
                          "last critic update) | every (after every critic update: SAC, RLPD)"},
    )

    RANGES: ClassVar[dict[str, Range]] = {**QOnlyConfig.RANGES, "policy_noise": NON_NEGATIVE,
                                          "noise_clip": NON_NEGATIVE, "alpha_critic": NON_NEGATIVE,
                                          "target_subset": Range(0)}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_q_agg(self.q_agg, "critic.q_agg", TARGET_AGGS)
        if self.target_cadence not in TARGET_CADENCES:
            raise unknown("target cadence (critic.target_cadence)", self.target_cadence, TARGET_CADENCES)
        if self.target_subset > self.num_q:
            raise ConfigError(f"critic.target_subset={self.target_subset} is larger than the ensemble "
                              f"(critic.num_q={self.num_q}): choose 1..{self.num_q}, or 0 for all members.")
        if self.entropy_backup and self.policy_noise > 0:
            raise ConfigError(f"critic.entropy_backup samples a' from the policy itself; set critic.policy_noise=0 "
                              f"(it is {self.policy_noise}: target smoothing is TD3's, not SAC's).")


@CRITICS.register("td3", "Q backed up through the actor's next action (TD3, ReBRAC, FQL); no V")
class TD3Critic(QOnlyCritic):
    Config = TD3Config
    cfg: TD3Config
    trains_on_actor = True  # y = r + γ Q̄(s', π̄(s')): the backup is through the actor

    def __init__(self, cfg: TD3Config, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.policy_delay = 1  # the actor's update_every, known once attached

    def attach_policy(self, actor: Any) -> None:
        if self.cfg.entropy_backup:
            from offrl.actors.base import has_log_prob  # here: offrl.actors imports the critics

            if not has_log_prob(actor):
                raise ConfigError(
                    f"critic.entropy_backup needs log π(a'|s') and an entropy temperature from the actor, and "
                    f"{type(actor).__name__} has no density: pair it with actor 'sac', or set "
                    "critic.entropy_backup=false.")
        super().attach_policy(actor)
        self.policy_delay = int(getattr(actor.cfg, "update_every", 1))

    def update_noise(self, batch_size: int, actor: Any) -> NoiseSpec:
        """The actor's next-action noise (prefixed), with smoothing ε ~ N(0, I), with a target subset its draw."""
        spec = {NEXT + name: n for name, n in actor.next_action_noise(batch_size).items()}
        if self.cfg.policy_noise > 0:
            spec["smooth"] = Noise.normal(batch_size, self.act_dim)
        spec.update(self.subset_noise())
        return spec

    def subset_noise(self) -> NoiseSpec:
        """One uniform draw per member when the target aggregates a random subset (ranked to pick it)."""
        m = self.cfg.target_subset
        return {SUBSET: Noise.uniform(self.cfg.num_q)} if 0 < m < self.cfg.num_q else {}

    def aggregate_target(self, q_all: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """[K, B] -> [B]: ``q_agg`` over the target ensemble, or over the m members whose draws rank lowest
        (a uniformly random m-subset, the same for the whole batch, as RLPD's ``subsample_ensemble``)."""
        if SUBSET not in noise:
            return aggregate_q(q_all, self.cfg.q_agg)
        ranks = noise[SUBSET].argsort().argsort()  # [K], a random permutation of 0..K−1
        chosen = (ranks < self.cfg.target_subset).reshape(-1, *([1] * (q_all.dim() - 1)))  # [K, 1]
        if self.cfg.q_agg == "min":
            return torch.where(chosen, q_all, torch.full_like(q_all, torch.inf)).amin(0)
        return (q_all * chosen).sum(0) / self.cfg.target_subset

    @torch.no_grad()
    def next_action(self, batch: Batch, noise: NoiseTensors) -> torch.Tensor:
        """a' = clip(π̄(s') + clip(σ ε, −c, c), −1, 1) (no smoothing when σ = 0)."""
        a_next = self.policy_actions(batch.next_observations, strip_prefix(NEXT, noise))
        if self.cfg.policy_noise > 0:
            eps = (self.cfg.policy_noise * noise["smooth"]).clamp(-self.cfg.noise_clip, self.cfg.noise_clip)
            a_next = (a_next + eps).clamp(-1.0, 1.0)
        return a_next

    @torch.no_grad()
    def td_target(self, batch: Batch, noise: NoiseTensors) -> torch.Tensor:
        """y = r + γ (1 − terminal) [agg Q̄(s', a') − α_c · has_next · ‖a' − a'_data‖² (− α log π(a'|s'))]."""
        if self.cfg.entropy_backup:
            a_next, log_pi = self.policy_actions_with_log_prob(batch.next_observations, strip_prefix(NEXT, noise))
        else:
            a_next = self.next_action(batch, noise)
        q_next = self.aggregate_target(self._q_all(self.q_target, batch.next_observations, a_next), noise)
        if self.cfg.entropy_backup:
            q_next = q_next - self.policy.entropy_temperature() * log_pi
        if self.cfg.alpha_critic > 0:
            penalty = ((a_next - batch.next_actions) ** 2).sum(-1) * batch.has_next_action
            q_next = q_next - self.cfg.alpha_critic * penalty
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * q_next

    def q_loss(self, batch: Batch, noise: NoiseTensors, actor: Any) -> tuple[torch.Tensor, dict]:
        """L_Q = Σ_i mean_b (Q_i(s, a) − y)²."""
        y = self.td_target(batch, noise)
        loss, q_all = self.q_loss_of(batch, y)
        return loss, {"critic/q_loss": loss, "critic/q_mean": q_all.mean(), "critic/target_mean": y.mean()}

    def target_rate(self, step: torch.Tensor) -> torch.Tensor:
        """ρ on the critic update that ends an iteration in which the actor updates, else 0 (a device tensor).

        ``step`` is the critic's update count after this update (1, 2, …); with U critic updates per
        iteration and policy delay E, it ends iteration i = step/U − 1 when U divides step, and the
        actor updates in iteration i when E divides i.
        """
        u, e = self.cfg.updates_per_step, self.policy_delay
        iteration = torch.div(step, u, rounding_mode="floor") - 1
        due = (torch.remainder(step, u) == 0) & (torch.remainder(iteration, e) == 0)
        return torch.where(due, self.cfg.target_update_rate, 0.0)

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """θ̄ ← θ̄ + ρ_t (θ − θ̄), ρ_t = ρ when the actor updates this iteration, else 0 (policy delay);
        ρ after every update with ``target_cadence = every``."""
        every = self.cfg.target_cadence == "every" or (self.cfg.updates_per_step == 1 and self.policy_delay == 1)
        if every:  # static: every update is due
            polyak_(self.q_target.parameters(), self.q_net.parameters(), self.cfg.target_update_rate)
        else:
            polyak_(self.q_target.parameters(), self.q_net.parameters(), self.target_rate(step))
