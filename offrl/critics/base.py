"""What every critic shares: the Q ensemble with Polyak targets, the actor-facing view, the IQL family.

Two kinds of critic learn Q in offrl (docs/critics.md):

- the **IQL family** (:class:`IQLCritic`): Q regressed on r + γ(1 − terminal)·V(s')
  and V fitted to Q on dataset actions with a pluggable value loss f;
- **critics without V** (:class:`offrl.critics.q_only.QOnlyCritic`): Q backed up
  through a next action, the dataset's (``sarsa``) or the actor's (``td3``).

Both are a :class:`QEnsembleCritic`: K Q networks Q_1..Q_K (K = 2: the twin Q)
with Polyak targets Q̄_i, and the view actors see (:class:`CriticView`).

Notation of the IQL family (Kostrikov et al. 2022, IQL; the value losses of
Hansen-Estruch et al. 2023, IDQL §4.1; docs/algorithms.md): with
u = min(Q̄1, Q̄2)(s, a) − V(s) on *dataset* actions,

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
from typing import ClassVar, Protocol

import torch
from einops import reduce

from offrl.component import Component, NoiseTensors, ParamGroup, Stage, polyak_
from offrl.data.transitions import Batch
from offrl.errors import unknown
from offrl.nets import EnsembleMLP, MLP, check_ln_position, init_weights_
from offrl.nets.init import check_init
from offrl.validation import COUNT, NON_NEGATIVE, POSITIVE, RATE, UNIT, Range, check_config


def _help(text: str) -> dict[str, str]:
    return {"help": text}


#: How an ensemble of Q values [K, B] becomes one [B]: the minimum (clipped double Q), the mean
#: (FQL), the first member (TD3+BC's actor), or one member drawn per update (``random``).
Q_AGGS = ("min", "mean", "q1", "random")


@dataclass
class QCriticConfig:
    """Hyperparameters of every critic's Q ensemble (paper defaults)."""

    hidden_dims: tuple[int, ...] = field(default=(256, 256), metadata=_help("Hidden layer widths of the critic's MLPs"))
    activation: str = field(default="relu", metadata=_help("Activation of the critic's MLPs"))
    num_q: int = field(default=2, metadata=_help("Q ensemble size (2 = twin Q)"))
    layer_norm: bool = field(
        default=False,
        metadata=_help("LayerNorm in every hidden layer of the critic's MLPs (ReBRAC, FQL); where: "
                       "critic.layer_norm_position"),
    )
    layer_norm_position: str = field(
        default="before-activation",
        metadata=_help("before-activation (Linear → LN → act) | after-activation (Linear → act → LN: FQL's and "
                       "ReBRAC's code)"),
    )
    q_lr: float = field(default=3e-4, metadata=_help("Adam learning rate of the Q networks"))
    discount: float = field(default=0.99, metadata=_help("Discount γ"))
    target_update_rate: float = field(default=0.005, metadata=_help("Polyak rate ρ: θ̄ ← (1−ρ)θ̄ + ρθ"))
    batch_size: int = field(default=256, metadata=_help("Batch size of each critic update"))
    updates_per_step: int = field(default=1, metadata=_help("Critic updates per trainer iteration"))
    max_grad_norm: float = field(
        default=0.0, metadata=_help("Clip each critic group's global gradient norm per seed; 0 = off")
    )
    init: str = field(
        default="default",
        metadata=_help("Weight initialisation: default (PyTorch's) | orthogonal (IQL's code: gain √2, zero biases) | "
                       "fql (FQL's code: Glorot-uniform, zero biases) | rebrac (ReBRAC's code: biases 0.1, output "
                       "layer U(±3e-3))"),
    )

    #: Valid values of each numeric field (offrl.validation); subclasses extend it.
    RANGES: ClassVar[dict[str, Range]] = {
        "hidden_dims": COUNT, "num_q": COUNT, "q_lr": POSITIVE, "discount": UNIT, "target_update_rate": RATE,
        "batch_size": COUNT, "updates_per_step": COUNT, "max_grad_norm": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check_config(self, "critic")
        check_init(self.init, "critic.init")
        check_ln_position(self.layer_norm_position, "critic.layer_norm_position")


@dataclass
class CriticConfig(QCriticConfig):
    """Hyperparameters shared by every IQL-family critic (paper defaults): the Q ensemble's plus V's."""

    value_layer_norm: bool = field(default=False, metadata=_help("LayerNorm on V's input (IDQL's value net)"))
    v_lr: float = field(default=3e-4, metadata=_help("Adam learning rate of V"))

    RANGES: ClassVar[dict[str, Range]] = {**QCriticConfig.RANGES, "v_lr": POSITIVE}


def check_q_agg(agg: str, key: str, choices: tuple[str, ...] = Q_AGGS) -> None:
    """A clear error for an unknown aggregation (``key``: the config key that holds it)."""
    if agg not in choices:
        raise unknown(f"Q aggregation ({key})", agg, choices)


def aggregate_q(q_all: torch.Tensor, agg: str = "min", u: torch.Tensor | None = None) -> torch.Tensor:
    """[K, B] -> [B]: min_i Q_i, mean_i Q_i, Q_1, or Q_j with j = ⌊u·K⌋ for ``random`` (u ∈ [0, 1) declared
    as noise by the caller: a scalar, one member for the whole batch as in EDP's and Diffusion-QL's actor
    loss, or [B], one member per row). No host sync: ``random`` selects with a one-hot mask."""
    if agg == "min":
        return reduce(q_all, "k b -> b", "min")
    if agg == "mean":
        return reduce(q_all, "k b -> b", "mean")
    if agg == "q1":
        return q_all[0]
    if agg == "random":
        if u is None:
            raise ValueError("q_agg='random' needs a uniform u (declare Noise.uniform() and pass it)")
        k = q_all.shape[0]
        j = torch.clamp(torch.floor(u * k), max=k - 1)  # [] or [B]
        members = torch.arange(k, device=q_all.device, dtype=q_all.dtype).reshape(k, *([1] * (q_all.dim() - 1)))
        one_hot = (members == j).to(q_all.dtype)  # [K, 1] or [K, B]
        return (one_hot * q_all).sum(0)
    raise unknown("Q aggregation", agg, Q_AGGS)


def q_for_actor(critic: "CriticView", obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
                u: torch.Tensor | None = None) -> torch.Tensor:
    """``critic.q_for_actor`` with aggregation ``agg``; the two-argument call for ``min``, the default,
    so views written before ``q_agg`` existed keep working with every actor's default."""
    if agg == "min":
        return critic.q_for_actor(obs, act)
    return critic.q_for_actor(obs, act, agg, u)


def q_value(critic: "CriticView", obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
             u: torch.Tensor | None = None) -> torch.Tensor:
    """``critic.q`` with aggregation ``agg`` (the two-argument call for ``min``, as :func:`q_for_actor`)."""
    if agg == "min":
        return critic.q(obs, act)
    return critic.q(obs, act, agg, u)


class CriticView(Protocol):
    """The narrow interface actors use. Outputs are [B]; actor losses never move the critic
    (its parameters are constants of the actor's stage, see :mod:`offrl.component`)."""

    def q(self, obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
          u: torch.Tensor | None = None) -> torch.Tensor:
        """agg_i Q̄_i(s, a) over the target ensemble, min by default (no gradient at all)."""

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) (no gradient)."""

    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """A = min Q̄(s, a) − V(s) (no gradient)."""

    def implicit_weight(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """w(s, a) ≥ 0 of the critic's implicit policy (unnormalised; no gradient)."""

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
                    u: torch.Tensor | None = None) -> torch.Tensor:
        """agg_i Q_i(s, a) of the online ensemble, differentiable in ``act``; ``agg`` one of
        :data:`Q_AGGS` (min by default; ``random`` needs the actor's uniform ``u``, see :func:`aggregate_q`)."""

    def selection_probs(
        self, obs: torch.Tensor, candidates: torch.Tensor, rule: str = "argmax", temperature: float = 1.0,
        num_candidates: int | None = None, q_agg: str = "min", u: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, N] distribution over N candidate actions per state for rule argmax | implicit | softmax
        (see :mod:`offrl.critics.selection`; candidates [B, N, A] or [(B·N), A] with num_candidates)."""


class QEnsembleCritic(Component):
    """K Q networks with Polyak targets and the Q side of :class:`CriticView` (base of every critic)."""

    Config = QCriticConfig

    def __init__(self, cfg: QCriticConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.q_net = EnsembleMLP(cfg.num_q, obs_dim + act_dim, cfg.hidden_dims, 1, cfg.activation,
                                 layer_norm=cfg.layer_norm, layer_norm_position=cfg.layer_norm_position)
        init_weights_(self.q_net, cfg.init, role="critic")
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)

    def _q_all(self, net: EnsembleMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, act], -1)).squeeze(-1)  # [K, B]

    # --- CriticView: the Q side ------------------------------------------------------------
    @torch.no_grad()
    def q(self, obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
          u: torch.Tensor | None = None) -> torch.Tensor:
        return aggregate_q(self._q_all(self.q_target, obs, act), agg, u)

    def q_for_actor(self, obs: torch.Tensor, act: torch.Tensor, agg: str = "min",
                    u: torch.Tensor | None = None) -> torch.Tensor:
        return aggregate_q(self._q_all(self.q_net, obs, act), agg, u)

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(obs, act) - self.v(obs)

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def selection_probs(
        self, obs: torch.Tensor, candidates: torch.Tensor, rule: str = "argmax", temperature: float = 1.0,
        num_candidates: int | None = None, q_agg: str = "min", u: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from offrl.critics.selection import selection_probs

        return selection_probs(self, obs, candidates, rule, temperature, num_candidates, q_agg, u)

    def q_loss_of(self, batch: Batch, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_Q = Σ_i mean_b (Q_i(s, a) − y)², Q values [K, B]) on dataset actions."""
        q_all = self._q_all(self.q_net, batch.observations, batch.actions)
        return reduce((q_all - y) ** 2, "k b -> k", "mean").sum(), q_all

    @torch.no_grad()
    def after_update(self, step: torch.Tensor) -> None:
        """θ̄ ← θ̄ + ρ (θ − θ̄), in place (one fused kernel per tensor list)."""
        polyak_(self.q_target.parameters(), self.q_net.parameters(), self.cfg.target_update_rate)


class IQLCritic(QEnsembleCritic):
    """Twin Q + V trained in-sample with a pluggable value loss (see module docstring)."""

    Config = CriticConfig
    actor_after = "v"  # IQL's code on a shared batch: V → actor → Q → targets
    cfg: CriticConfig

    def __init__(self, cfg: CriticConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.v_net = MLP(obs_dim, cfg.hidden_dims, 1, cfg.activation, layer_norm=cfg.layer_norm,
                         input_layer_norm=cfg.value_layer_norm, layer_norm_position=cfg.layer_norm_position)
        init_weights_(self.v_net, cfg.init, role="critic")

    # --- the value loss: the only thing a concrete critic defines -------------------------
    def value_loss(self, u: torch.Tensor) -> torch.Tensor:
        """Elementwise f(u) (or a surrogate with f's gradient in V), u = Q̄ − V."""
        raise NotImplementedError

    def implicit_weight_u(self, u: torch.Tensor) -> torch.Tensor:
        """Elementwise w(u) = |f'(u)| / |u| up to a constant; finite and ≥ 0 for every u."""
        raise NotImplementedError

    # --- V --------------------------------------------------------------------------------------
    def _v(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v_net(obs).squeeze(-1)

    @torch.no_grad()
    def v(self, obs: torch.Tensor) -> torch.Tensor:
        return self._v(obs)

    @torch.no_grad()
    def implicit_weight(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.implicit_weight_u(self.advantage(obs, act))

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
        loss, q_all = self.q_loss_of(batch, self.td_target(batch))
        return loss, {"critic/q_loss": loss, "critic/q_mean": q_all.mean()}

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """y = r + γ (1 − terminal) V(s'), with the current V. Truncations are not terminal."""
        return batch.rewards + self.cfg.discount * (1.0 - batch.terminals) * self._v(batch.next_observations)


def safe_abs_ratio(num: torch.Tensor, u: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """|num| / |u| where both vanish together, using ``limit`` (the u → 0 value) near u = 0."""
    small = u.abs() < 1e-6
    return torch.where(small, limit, num.abs() / torch.where(small, torch.ones_like(u), u.abs()))


__all__ = ["CriticConfig", "CriticView", "IQLCritic", "Q_AGGS", "QCriticConfig", "QEnsembleCritic", "aggregate_q",
           "check_q_agg", "q_for_actor", "q_value", "safe_abs_ratio"]
