"""The IQL critic family: shared twin-Q / V machinery, pluggable value loss.

Notation of ``algorithms.md`` §1–2: twin Q networks Q1, Q2 with Polyak targets
Q̄1, Q̄2 and a state value V. With u = min(Q̄1, Q̄2)(s, a) − V(s) on *dataset*
actions,

- V loss: mean f(u), with f the critic's value loss;
- Q loss: y = r + γ (1 − terminal) V(s')  (current V, no target V),
  L_Q = mean[(Q1 − y)² + (Q2 − y)²];
- targets: θ̄ ← (1 − ρ) θ̄ + ρ θ after each update (ρ = 0.005).

One update is two stages, V then Q (IQL's order): the Q loss's target uses the
V that the V stage just updated. The shared learner owns the optimisers
(:mod:`offrl.component` is the contract). A concrete critic only supplies :meth:`IQLCritic.value_loss` (f, or a
surrogate with f's gradient) and :meth:`IQLCritic.implicit_weight_u` (w up to a
constant: the implicit policy π_imp ∝ μ · w, w = |f'(u)| / |u|).

Actors see the critic only through :class:`CriticView`'s methods.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Protocol

import torch
from einops import reduce

from offrl.component import Component, NoiseTensors, ParamGroup, Stage, polyak_
from offrl.data.transitions import Batch
from offrl.errors import ConfigError
from offrl.nets import EnsembleMLP, MLP


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class CriticConfig:
    """Hyperparameters shared by every IQL-family critic (paper defaults)."""

    hidden_dims: tuple[int, ...] = field(default=(256, 256), metadata=_help("Hidden layer widths of Q and V MLPs"))
    activation: str = field(default="relu", metadata=_help("Activation of Q and V MLPs"))
    num_q: int = field(default=2, metadata=_help("Q ensemble size (2 = IQL's twin Q; min over members)"))
    value_layer_norm: bool = field(default=False, metadata=_help("LayerNorm on V's input (IDQL's value net)"))
    q_lr: float = field(default=3e-4, metadata=_help("Adam learning rate of the Q networks"))
    v_lr: float = field(default=3e-4, metadata=_help("Adam learning rate of V"))
    discount: float = field(default=0.99, metadata=_help("Discount γ"))
    target_update_rate: float = field(default=0.005, metadata=_help("Polyak rate ρ: θ̄ ← (1−ρ)θ̄ + ρθ"))
    batch_size: int = field(default=256, metadata=_help("Batch size of each critic update"))
    updates_per_step: int = field(default=1, metadata=_help("Critic updates per trainer iteration"))
    max_grad_norm: float = field(
        default=0.0, metadata=_help("Clip each critic group's (Q, V) global gradient norm per seed; 0 = off")
    )

    def __post_init__(self) -> None:
        _check_positive(self, "batch_size", "updates_per_step", "num_q", "q_lr", "v_lr")
        if not self.max_grad_norm >= 0:
            raise ConfigError(f"critic.max_grad_norm must be >= 0 (0 = off), got {self.max_grad_norm}")
        if not 0.0 <= self.discount <= 1.0:
            raise ConfigError(f"critic.discount must be in [0, 1], got {self.discount}")
        if not 0.0 < self.target_update_rate <= 1.0:
            raise ConfigError(f"critic.target_update_rate must be in (0, 1], got {self.target_update_rate}")


def _check_positive(cfg: object, *names: str) -> None:
    for n in names:
        v = getattr(cfg, n)
        if not v > 0:
            raise ConfigError(f"{n} must be positive, got {v!r}")


class CriticView(Protocol):
    """The narrow interface actors use. Outputs are [B]; actor losses never move the critic
    (its parameters are constants of the actor's stage, see :mod:`offrl.component`)."""

    def q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min over the target ensemble, min_i Q̄_i(s, a) (no gradient at all)."""

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) (no gradient)."""

    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """A = min Q̄(s, a) − V(s) (no gradient)."""

    def implicit_weight(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """w(s, a) ≥ 0 of the critic's implicit policy (unnormalised; no gradient)."""

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """min_i Q_i(s, a) of the online ensemble, differentiable in ``act``."""

    def selection_probs(
        self, obs: torch.Tensor, candidates: torch.Tensor, rule: str = "argmax", temperature: float = 1.0,
        num_candidates: int | None = None,
    ) -> torch.Tensor:
        """[B, N] distribution over N candidate actions per state for rule argmax | implicit | softmax
        (see :mod:`offrl.critics.selection`; candidates [B, N, A] or [(B·N), A] with num_candidates)."""


class IQLCritic(Component):
    """Twin Q + V trained in-sample with a pluggable value loss (see module docstring)."""

    Config = CriticConfig
    actor_after = "v"  # IQL's code on a shared batch: V → actor → Q → targets

    def __init__(self, cfg: CriticConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.q_net = EnsembleMLP(cfg.num_q, obs_dim + act_dim, cfg.hidden_dims, 1, cfg.activation)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.v_net = MLP(obs_dim, cfg.hidden_dims, 1, cfg.activation, input_layer_norm=cfg.value_layer_norm)

    # --- the value loss: the only thing a concrete critic defines -------------------------
    def value_loss(self, u: torch.Tensor) -> torch.Tensor:
        """Elementwise f(u) (or a surrogate with f's gradient in V), u = Q̄ − V."""
        raise NotImplementedError

    def implicit_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        """Elementwise w(u) = |f'(u)| / |u| up to a constant; finite and ≥ 0 for every u."""
        raise NotImplementedError

    # --- Q and V ------------------------------------------------------------------------------
    def _q_all(self, net: EnsembleMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, act], -1)).squeeze(-1)  # [K, B]

    def _v(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v_net(obs).squeeze(-1)

    # --- CriticView ---------------------------------------------------------------------------
    @torch.no_grad()
    def q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return reduce(self._q_all(self.q_target, obs, act), "k b -> b", "min")

    @torch.no_grad()
    def v(self, obs: torch.Tensor) -> torch.Tensor:
        return self._v(obs)

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(obs, act) - self.v(obs)

    @torch.no_grad()
    def implicit_weight(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.implicit_weight_u(self.advantage(obs, act))

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return reduce(self._q_all(self.q_net, obs, act), "k b -> b", "min")

    def selection_probs(
        self, obs: torch.Tensor, candidates: torch.Tensor, rule: str = "argmax", temperature: float = 1.0,
        num_candidates: int | None = None,
    ) -> torch.Tensor:
        from offrl.critics.selection import selection_probs

        return selection_probs(self, obs, candidates, rule, temperature, num_candidates)

    # --- training: what the learner optimises ----------------------------------------------------
    def param_groups(self) -> dict[str, ParamGroup]:
        c = self.cfg
        return {"v": ParamGroup(self.v_net.parameters(), c.v_lr, max_grad_norm=c.max_grad_norm),
                "q": ParamGroup(self.q_net.parameters(), c.q_lr, max_grad_norm=c.max_grad_norm)}

    def stages(self) -> list[Stage]:
        return [Stage("v", self.v_loss), Stage("q", self.q_loss)]

    def v_loss(self, batch: Batch, noise: NoiseTensors, actor: object) -> tuple[torch.Tensor, dict]:
        """L_V = mean f(u),  u = min Q̄(s, a) − V(s) on dataset actions."""
        v = self._v(batch.observations)
        u = self.q(batch.observations, batch.actions) - v
        loss = self.value_loss(u).mean()
        return loss, {"critic/v_loss": loss, "critic/v_mean": v.mean(), "critic/adv_mean": u.mean()}

    def q_loss(self, batch: Batch, noise: NoiseTensors, actor: object) -> tuple[torch.Tensor, dict]:
        """L_Q = Σ_i mean (Q_i(s, a) − y)²,  y = r + γ (1 − terminal) V(s')."""
        y = self.td_target(batch)
        q_all = self._q_all(self.q_net, batch.observations, batch.actions)
        loss = reduce((q_all - y) ** 2, "k b -> k", "mean").sum()
        return loss, {"critic/q_loss": loss, "critic/q_mean": q_all.mean()}

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """y = r + γ (1 − terminal) V(s'), with the current V. Truncations are not terminal."""
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * self._v(batch.next_observations)

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """θ̄ ← θ̄ + ρ (θ − θ̄), in place (one fused kernel per tensor list)."""
        polyak_(self.q_target.parameters(), self.q_net.parameters(), self.cfg.target_update_rate)


def safe_abs_ratio(num: torch.Tensor, u: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """|num| / |u| where both vanish together, using ``limit`` (the u → 0 value) near u = 0."""
    small = u.abs() < 1e-6
    return torch.where(small, limit, num.abs() / torch.where(small, torch.ones_like(u), u.abs()))


__all__ = ["CriticConfig", "CriticView", "IQLCritic", "safe_abs_ratio"]
