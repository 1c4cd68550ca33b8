"""Critic ``cql``: conservative Q-learning (Kumar et al. 2020), backed up through the actor like ``td3``.

CQL learns a Q whose values on actions the data do not support are pushed down, so that a policy
climbing Q cannot exploit them. For each member i of the Q ensemble, on a batch of (s, a, r, s'):

    y   = r + γ (1 − terminal) · min_j Q̄_j(s', a'),       a' = π̄(s')            (the td3 backup)
    L_i = mean_b (Q_i(s, a) − y)²  +  α · [ mean_b clip(R_i(s) − Q_i(s, a)) − τ_gap · 1(lagrange) ]

with the soft maximum of Q_i over actions, estimated by importance sampling from N uniform actions and
N policy actions at s and at s' (CQL(H), the paper's eq. (4) and appendix F; CORL's cql.py):

    R_i(s) = T · log Σ_k exp( (Q_i(s, a_k) − log w_k) / T ),
    a_k ∈ {u_1..u_N ~ U[−1, 1]^A} ∪ {π(s, z_1..z_N)} ∪ {π(s', z'_1..z'_N)},

T the temperature (``temperature``), w_k the density of the sample's proposal. Uniform samples have
w = 0.5^A, so their term is Q + A·log 2. The policy samples' density (``policy_density``): with an actor
that has one (``sac``, a tanh-Gaussian as CORL's) ``auto`` uses w = π(a|s) — CORL's importance weights,
Q − log π(a|s) (at s' too: log π(a'|s')). Most of offrl's actors (deterministic, flow, diffusion) have no
density to give; their samples are weighted as uniform samples (w = 0.5^A, ``uniform``), which makes R_i a
plain soft maximum over the 3N sampled Q values (plus the constant A·log 2 that CORL's uniform term has,
so ``target_action_gap`` keeps CORL's scale for that term); the two coincide when log π = A·log 2. A
deterministic actor (one that declares no next-action noise) gives N identical samples: offrl evaluates
one and adds T·log N, the same sum at 1/N of the cost.
The policy's actions come from the one method a critic may call on its actor, ``next_actions`` (its
target or EMA copy where it keeps one), with their noise declared in this critic's ``update_noise``;
actions at s' are scored at s, as CORL does. Every random tensor (uniform actions, policy noise) is
declared noise, so the step has static shapes, runs on the device and reproduces under a seed.

α. Fixed: α = ``cql_alpha`` (CORL: 10 on locomotion). Lagrangian (``lagrange``, the paper's
CQL-Lagrange): α = ``cql_alpha`` · α′, α′ = clip(exp(log α′), 0, 10⁶) learned by its own Adam
(``alpha_lr``; ``log_alpha_init`` = 1, CORL's) on

    L_α′ = −α′ · cql_alpha · mean_i( mean_b clip(R_i − Q_i(s, a)) − τ_gap ),

which raises α′ while the gap exceeds τ_gap (``target_action_gap``) and lowers it otherwise. It is a
second stage after the Q stage (the gap of the Q just updated; CORL steps α′ from the gap before the
update — the same under ``trainer.update_order=joint``). ``clip_diff_min`` / ``clip_diff_max`` clip the
per-state gap R_i − Q_i(s, a) as CORL's ``cql_clip_diff_*`` (Cal-QL's configs: −200).

Backup. ``max_target_backup`` (CORL's ``cql_max_target_backup``) backs up the max over N next actions
of min_j Q̄_j instead of one; the rest of the backup is ``td3``'s (``policy_noise`` smoothing, off by
default here as in CQL; ``q_agg``; ``alpha_critic``), and so is the target schedule under a policy delay.
CQL's SAC actor loss and temperature are the ``sac`` actor's; ``entropy_backup`` subtracts α log π(a'|s')
in the backup as CORL's ``backup_entropy`` (off by default there and here; with ``max_target_backup``, the
log π of the action whose Q is the max, as CORL gathers it).

The ``calql`` critic (:mod:`offrl.critics.calql`) is this one with the policy terms lower-bounded by
Monte-Carlo returns (:meth:`CQLCritic.bound_policy_q`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from einops import rearrange, reduce, repeat
from torch import nn

from offrl.component import Noise, NoiseSpec, NoiseTensors, ParamGroup, Stage
from offrl.critics.registry import CRITICS
from offrl.critics.td3 import NEXT, TD3Config, TD3Critic, strip_prefix
from offrl.data.transitions import Batch
from offrl.errors import ConfigError, unknown
from offrl.validation import COUNT, NON_NEGATIVE, POSITIVE, Range, check_order

POLICY_DENSITIES = ("auto", "uniform", "actor")

#: Noise names of the penalty's samples inside this critic's update noise.
UNIFORM, PI, NEXT_PI = "cql.uniform", "cql.pi.", "cql.next_pi."
#: CORL's clip of the Lagrange multiplier α′ = exp(log α′).
ALPHA_MAX = 1e6


@dataclass
class CQLConfig(TD3Config):
    policy_noise: float = field(default=0.0, metadata={"help": "Target-policy smoothing σ of the backup (CQL: 0 "
                                                               "= off; TD3: 0.2)"})
    cql_alpha: float = field(default=10.0, metadata={"help": "α of the conservative penalty (CORL: 10 on "
                                                             "locomotion); with lagrange, the multiplier of α′"})
    num_samples: int = field(default=10, metadata={"help": "N sampled actions per source (uniform, π(s), π(s')) "
                                                           "in the logsumexp (CORL: 10)"})
    temperature: float = field(default=1.0, metadata={"help": "Temperature T of the logsumexp (CORL's cql_temp)"})
    lagrange: bool = field(default=False, metadata={"help": "Learn α′ so the gap stays at target_action_gap "
                                                            "(CQL-Lagrange)"})
    target_action_gap: float = field(default=0.8, metadata={"help": "τ_gap of the Lagrangian (CORL's AntMaze "
                                                                    "configs: 0.8); unused without lagrange"})
    alpha_lr: float = field(default=3e-4, metadata={"help": "Adam learning rate of log α′ (CORL: the Q's, 3e-4)"})
    log_alpha_init: float = field(default=1.0, metadata={"help": "Initial log α′ (CORL: 1.0, α′ = e)"})
    max_target_backup: bool = field(default=False, metadata={"help": "Back up max over N next actions of min "
                                                                     "Q̄ (CORL's cql_max_target_backup)"})
    clip_diff_min: float = field(default=-math.inf, metadata={"help": "Lower clip of R(s) − Q(s, a) per state "
                                                                      "(Cal-QL's configs: -200; -inf = none)"})
    clip_diff_max: float = field(default=math.inf, metadata={"help": "Upper clip of R(s) − Q(s, a) per state "
                                                                     "(inf = none)"})
    policy_density: str = field(default="auto", metadata={"help": "Importance weight of the policy samples: auto "
                                                                  "(the actor's log π where it has one, sac; else "
                                                                  "uniform) | uniform (0.5^A) | actor"})

    RANGES: ClassVar[dict[str, Range]] = {
        **TD3Config.RANGES, "cql_alpha": NON_NEGATIVE, "num_samples": COUNT, "temperature": POSITIVE,
        "target_action_gap": Range(), "alpha_lr": POSITIVE, "log_alpha_init": Range(-20.0, 20.0),
        "clip_diff_min": Range(neg_inf=True), "clip_diff_max": Range(inf=True),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_order(self, "critic", "clip_diff_min", "clip_diff_max")
        if self.policy_density not in POLICY_DENSITIES:
            raise unknown("policy density (critic.policy_density)", self.policy_density, POLICY_DENSITIES)


def _prefixed(prefix: str, spec: NoiseSpec) -> NoiseSpec:
    return {prefix + name: n for name, n in spec.items()}


@CRITICS.register("cql", "Conservative Q-learning: the td3 backup plus a logsumexp penalty on sampled actions "
                         "(CQL, fixed or Lagrangian α)")
class CQLCritic(TD3Critic):
    Config = CQLConfig
    cfg: CQLConfig
    NAME: ClassVar[str] = "cql"  # as registered (messages)

    def __init__(self, cfg: CQLConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.use_density = False  # the policy samples' log π in the penalty: set when the actor is attached
        if cfg.lagrange:
            self.log_alpha = nn.Parameter(torch.tensor(float(cfg.log_alpha_init)))

    # --- the actor ------------------------------------------------------------------------------
    def attach_policy(self, actor: Any) -> None:
        """Pair with ``actor``; one clear error if it cannot give the actions the penalty needs."""
        from offrl.actors.base import Actor, has_log_prob  # here: offrl.actors imports the critics

        if isinstance(actor, Actor) and type(actor).next_actions is Actor.next_actions:
            raise ConfigError(
                f"critic '{self.NAME}' scores the policy's actions at s and s' and backs up through "
                f"them, and actor {type(actor).__name__} does not implement next_actions (docs/extending.md): "
                "pair it with an IQL-family critic, or give it next_actions.")
        if self.cfg.policy_density == "actor" and not has_log_prob(actor):
            raise ConfigError(
                f"critic.policy_density=actor weights the policy samples by log π(a|s), and {type(actor).__name__} "
                "has no density: pair it with actor 'sac', or use policy_density=auto or uniform.")
        super().attach_policy(actor)
        self.use_density = self.cfg.policy_density != "uniform" and has_log_prob(actor)

    def policy_samples(self, actor: Any) -> int:
        """Samples per state of each policy source: N, or 1 for a deterministic actor (no noise)."""
        return self.cfg.num_samples if actor.next_action_noise(1) else 1

    def backup_samples(self, actor: Any) -> int:
        return self.policy_samples(actor) if self.cfg.max_target_backup else 1

    def update_noise(self, batch_size: int, actor: Any) -> NoiseSpec:
        """The backup's next-action noise (and smoothing), N uniform actions per state, and the actor's
        noise for its n actions at s and at s' — every random tensor of the step, declared."""
        b, n, nb = batch_size, self.policy_samples(actor), self.backup_samples(actor)
        spec = _prefixed(NEXT, actor.next_action_noise(b * nb))
        if self.cfg.policy_noise > 0:
            spec["smooth"] = Noise.normal(b * nb, self.act_dim)
        spec.update(self.subset_noise())
        spec[UNIFORM] = Noise.uniform(b, self.cfg.num_samples, self.act_dim)
        spec.update(_prefixed(PI, actor.next_action_noise(b * n)))
        spec.update(_prefixed(NEXT_PI, actor.next_action_noise(b * n)))
        return spec

    # --- the backup -----------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, batch: Batch, noise: NoiseTensors) -> torch.Tensor:
        """y = r + γ (1 − terminal) max_k [agg_j Q̄_j(s', a'_k) − α_c · has_next · ‖a'_k − a'_data‖²]
        (− α log π(a'_k*|s') with ``entropy_backup``, k* the max), over k = 1 next action (or N with
        ``max_target_backup``)."""
        nb = self.backup_samples(self.policy)
        nxt = repeat(batch.next_observations, "b o -> (b n) o", n=nb)
        if self.cfg.entropy_backup:
            a_next, log_pi = self.policy_actions_with_log_prob(nxt, strip_prefix(NEXT, noise))
        else:
            a_next = self.policy_actions(nxt, strip_prefix(NEXT, noise))
        if self.cfg.policy_noise > 0:
            eps = (self.cfg.policy_noise * noise["smooth"]).clamp(-self.cfg.noise_clip, self.cfg.noise_clip)
            a_next = (a_next + eps).clamp(-1.0, 1.0)
        q_next = self.aggregate_target(self._q_all(self.q_target, nxt, a_next), noise)  # [(b n)]
        if self.cfg.alpha_critic > 0:
            data_next = repeat(batch.next_actions, "b a -> (b n) a", n=nb)
            has_next = repeat(batch.has_next_action, "b -> (b n)", n=nb)
            q_next = q_next - self.cfg.alpha_critic * ((a_next - data_next) ** 2).sum(-1) * has_next
        q_next, best = rearrange(q_next, "(b n) -> b n", n=nb).max(-1)
        if self.cfg.entropy_backup:
            log_pi = rearrange(log_pi, "(b n) -> b n", n=nb).gather(-1, best[:, None])[:, 0]
            q_next = q_next - self.policy.entropy_temperature() * log_pi
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * q_next

    # --- the penalty ----------------------------------------------------------------------------
    def bound_policy_q(self, q_pi: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The policy samples' Q values [K, B, n] as they enter the logsumexp (CQL: unchanged)."""
        return q_pi

    def q_values(self, batch: Batch, noise: NoiseTensors) -> dict[str, torch.Tensor]:
        """Q_i of the online ensemble at the data actions [K, B] and at the sampled actions: uniform
        [K, B, N], π(s) and π(s') (both scored at s) [K, B, n] — one forward pass of the ensemble."""
        actor = self.policy
        b, n, big_n = batch.observations.shape[0], self.policy_samples(actor), self.cfg.num_samples
        obs = batch.observations
        uniform = rearrange(2.0 * noise[UNIFORM] - 1.0, "b n a -> (b n) a")
        obs_n, next_n = repeat(obs, "b o -> (b n) o", n=n), repeat(batch.next_observations, "b o -> (b n) o", n=n)
        log_pi = {}
        with torch.no_grad():  # the policy's actions (and densities) are constants of the critic's loss
            if self.use_density:
                a_pi, lp = self.policy_actions_with_log_prob(obs_n, strip_prefix(PI, noise))
                a_next_pi, lp_next = self.policy_actions_with_log_prob(next_n, strip_prefix(NEXT_PI, noise))
                log_pi = {"log_pi": rearrange(lp, "(b n) -> b n", b=b),
                          "log_next_pi": rearrange(lp_next, "(b n) -> b n", b=b)}
            else:
                a_pi = self.policy_actions(obs_n, strip_prefix(PI, noise))
                a_next_pi = self.policy_actions(next_n, strip_prefix(NEXT_PI, noise))
        # every sampled action is scored at s: state b's 2n policy rows are its n actions from π(s), then
        # its n from π(s') (layout (b s n)), after the data rows and the (b n) uniform rows
        obs_all = torch.cat([obs, repeat(obs, "b o -> (b n) o", n=big_n), repeat(obs, "b o -> (b n) o", n=2 * n)])
        pi_rows = rearrange(torch.stack([rearrange(a_pi, "(b n) a -> b n a", b=b),
                                         rearrange(a_next_pi, "(b n) a -> b n a", b=b)], 1), "b s n a -> (b s n) a")
        q = self._q_all(self.q_net, obs_all, torch.cat([batch.actions, uniform, pi_rows]))  # [K, rows]
        q_data, q_rand, q_pi = torch.split(q, [b, b * big_n, 2 * b * n], dim=1)
        q_pi = rearrange(q_pi, "k (b s n) -> k b s n", b=b, s=2)
        return {"data": q_data, "uniform": rearrange(q_rand, "k (b n) -> k b n", b=b),
                "pi": q_pi[:, :, 0], "next_pi": q_pi[:, :, 1], **log_pi}

    def gaps(self, batch: Batch, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per member, the mean over states of clip(R_i(s) − Q_i(s, a)) [K] (module docstring), and metrics."""
        c = self.cfg
        t, n = c.temperature, q["pi"].shape[-1]
        log_uniform = self.act_dim * math.log(2.0)  # −log 0.5^A: the uniform proposal's importance weight
        q_pi, q_next_pi = self.bound_policy_q(q["pi"], batch), self.bound_policy_q(q["next_pi"], batch)
        if "log_pi" in q:  # the actor's density: Q − log π(a|s) (CORL's importance weights)
            pi_terms = [q_next_pi - q["log_next_pi"], q_pi - q["log_pi"]]
        else:  # weighted as uniform; ×N/n for one sample
            w = log_uniform + t * math.log(c.num_samples / n)
            pi_terms = [q_next_pi + w, q_pi + w]
        terms = torch.cat([q["uniform"] + log_uniform, *pi_terms], dim=-1)  # [K, B, 3N]
        soft_max = t * torch.logsumexp(terms / t, dim=-1)  # R_i(s), [K, B]
        gap = (soft_max - q["data"]).clamp(c.clip_diff_min, c.clip_diff_max).mean(-1)  # [K]
        metrics = {"critic/cql_gap": gap.mean(), "critic/q_uniform": q["uniform"].mean(),
                   "critic/q_policy": q["pi"].mean(), "critic/q_next_policy": q["next_pi"].mean()}
        return gap, metrics

    def alpha_prime(self) -> torch.Tensor:
        """α′ = clip(exp(log α′), 0, 10⁶) (Lagrangian), a constant of the Q stage."""
        return torch.exp(self.log_alpha.detach()).clamp(0.0, ALPHA_MAX)

    def q_loss(self, batch: Batch, noise: NoiseTensors, actor: Any) -> tuple[torch.Tensor, dict]:
        """L = Σ_i [mean_b (Q_i(s, a) − y)² + α (gap_i − τ_gap·1(lagrange))] (module docstring)."""
        y = self.td_target(batch, noise)
        q = self.q_values(batch, noise)
        td = reduce((q["data"] - y) ** 2, "k b -> k", "mean").sum()
        gap, metrics = self.gaps(batch, q)
        if self.cfg.lagrange:
            alpha = self.cfg.cql_alpha * self.alpha_prime()
            penalty = (alpha * (gap - self.cfg.target_action_gap)).sum()
        else:
            alpha = torch.full((), self.cfg.cql_alpha, device=gap.device)
            penalty = self.cfg.cql_alpha * gap.sum()
        loss = td + penalty
        return loss, {"critic/q_loss": td, "critic/cql_penalty": penalty, "critic/cql_alpha": alpha,
                      "critic/q_mean": q["data"].mean(), "critic/target_mean": y.mean(), **metrics}

    def alpha_loss(self, batch: Batch, noise: NoiseTensors, actor: Any) -> tuple[torch.Tensor, dict]:
        """L_α′ = −α′ · cql_alpha · mean_i(gap_i − τ_gap), the gap a constant (the Lagrangian's dual step)."""
        with torch.no_grad():
            gap, _ = self.gaps(batch, self.q_values(batch, noise))
        alpha_prime = torch.exp(self.log_alpha).clamp(0.0, ALPHA_MAX)
        loss = -alpha_prime * self.cfg.cql_alpha * (gap - self.cfg.target_action_gap).mean()
        return loss, {"critic/alpha_loss": loss}

    # --- training -------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, ParamGroup]:
        groups = super().param_groups()
        if self.cfg.lagrange:
            groups["alpha"] = ParamGroup([self.log_alpha], self.cfg.alpha_lr)
        return groups

    def stages(self) -> list[Stage]:
        stages = [Stage("q", self.q_loss)]
        if self.cfg.lagrange:
            stages.append(Stage("alpha", self.alpha_loss))
        return stages


__all__ = ["ALPHA_MAX", "CQLConfig", "CQLCritic"]
