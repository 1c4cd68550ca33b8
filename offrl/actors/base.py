"""What every actor (policy extractor) implements.

An actor learns from dataset batches and the critic's narrow
:class:`~offrl.critics.CriticView` (Q, V, advantage, implicit weight, Q
differentiable in the action) and acts on batches of observations. Actions
live in [−1, 1]; the trainer maps them to the environment's bounds.

Training follows :mod:`offrl.component`'s contract (param groups, losses as
stages, declared noise, after-step updates); acting adds
:meth:`Actor.act_noise` and :meth:`Actor.act`.

The one method a critic may call on its actor: :meth:`Actor.next_actions`
(with its randomness declared by :meth:`Actor.next_action_noise`). Critics
that back up through the policy (``td3``) use it for a' at s'; critics
without V (``td3``, ``sarsa``) use it to estimate V(s) = E_π Q(s, a). It is
the policy being trained, sampled cheaply (its target or EMA copy where it
has one), never through the critic. Actors with a tractable density (``sac``)
also give :meth:`Actor.next_actions_with_log_prob` and their
:meth:`Actor.entropy_temperature`, for a soft backup and CQL's importance
weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from offrl.component import Component, Noise, NoiseSpec, NoiseTensors, ParamGroup, Stage
from offrl.critics.base import CriticView
from offrl.nets.init import check_init
from offrl.validation import COUNT, NON_NEGATIVE, Range, check_config


def lr_schedule(cosine_decay: bool) -> str:
    """The learner's schedule name for an actor's ``cosine_decay`` flag."""
    return "cosine" if cosine_decay else "constant"


@dataclass
class ActorConfig:
    """Hyperparameters every actor has."""

    batch_size: int = field(default=256, metadata={"help": "Batch size of each actor update"})
    updates_per_step: int = field(default=1, metadata={"help": "Actor updates per trainer iteration"})
    update_every: int = field(
        default=1, metadata={"help": "Update the actor on every k-th trainer iteration only (TD3's policy delay: 2)"}
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the actor's global gradient norm per seed; 0 = off"}
    )
    init: str = field(
        default="default",
        metadata={"help": "Weight initialisation: default (PyTorch's) | orthogonal (IQL's code: gain √2, "
                          "zero biases) | fql (FQL's code: Glorot-uniform, zero biases, a policy's mean head at "
                          "variance scale 0.01) | rebrac (ReBRAC's code: biases 0.1, output layer U(±1e-3))"},
    )

    #: Valid values of each numeric field (offrl.validation); subclasses extend it.
    RANGES: ClassVar[dict[str, Range]] = {
        "batch_size": COUNT, "updates_per_step": COUNT, "update_every": COUNT, "max_grad_norm": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check_config(self, "actor")
        check_init(self.init, "actor.init")


class Actor(Component):
    """Base class: the training contract of :class:`~offrl.component.Component` plus acting."""

    Config = ActorConfig
    #: How the actor acts while collecting in the online phase (:mod:`offrl.online`): ``sample`` — :meth:`act`
    #: already samples its own stochastic policy (flow, diffusion), or :meth:`explore` samples it; ``gaussian`` —
    #: its action is deterministic and N(0, online.explore_noise²) noise is added (TD3's exploration).
    exploration: ClassVar[str] = "gaussian"

    def __init__(self, cfg: ActorConfig, obs_dim: int, act_dim: int, total_updates: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim, self.total_updates = obs_dim, act_dim, max(1, int(total_updates))

    def param_groups(self) -> dict[str, ParamGroup]:
        """One group, ``actor``: every trainable parameter (frozen copies such as target or EMA weights have
        ``requires_grad`` off), with the config's ``lr``, ``cosine_decay``, ``max_grad_norm`` and, where it has
        one, ``weight_decay``. Every built-in actor trains this way; one with several groups overrides it."""
        if not hasattr(self.cfg, "lr") or not hasattr(self.cfg, "cosine_decay"):
            raise NotImplementedError(
                f"{type(self).__name__}: give its config `lr` and `cosine_decay` or override param_groups()")
        return {"actor": ParamGroup([p for p in self.parameters() if p.requires_grad], self.cfg.lr,
                                    weight_decay=getattr(self.cfg, "weight_decay", 0.0),
                                    schedule=lr_schedule(self.cfg.cosine_decay), total_updates=self.total_updates,
                                    max_grad_norm=self.cfg.max_grad_norm)}

    def stages(self) -> list[Stage]:
        """One stage, ``actor``, minimising :meth:`loss`; an actor with several losses overrides it."""
        return [Stage("actor", self.loss)]

    def loss(self, batch: object, noise: NoiseTensors, critic: CriticView) -> tuple[torch.Tensor, dict]:
        """The actor's loss on one batch and its metrics (tensors), for the default single stage."""
        raise NotImplementedError(f"{type(self).__name__} does not implement loss (or override stages())")

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        """Random tensors :meth:`next_actions` needs for ``batch_size`` states, each with the batch on dim 0
        (none by default: a deterministic policy)."""
        return {}

    @torch.no_grad()
    def next_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """The policy's actions [B, A] in [−1, 1] for states [B, O], for a critic's backup or V estimate.

        Cheap and critic-free: the target/EMA copy where the actor keeps one; no gradient.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement next_actions")

    @torch.no_grad()
    def next_actions_with_log_prob(self, obs: torch.Tensor, noise: NoiseTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`next_actions` and log π(a|s) [B] of each action, for actors with a tractable density (``sac``):
        a soft backup (``critic.entropy_backup``) and CQL's importance weights read it. Most actors (deterministic,
        flow, diffusion) have none; :func:`has_log_prob` says which do."""
        raise NotImplementedError(f"{type(self).__name__} has no log-density of its actions")

    def entropy_temperature(self) -> torch.Tensor:
        """The entropy temperature α [] a soft backup subtracts α·log π with (``sac``), without gradient."""
        raise NotImplementedError(f"{type(self).__name__} has no entropy temperature")

    def act_noise(self, batch_size: int) -> NoiseSpec:
        """Random tensors :meth:`act` needs for ``batch_size`` observations (none by default)."""
        return {}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors) -> torch.Tensor:
        """Evaluation actions in [−1, 1] for observations [B, O] -> [B, A]."""
        raise NotImplementedError

    def explore_noise(self, batch_size: int) -> NoiseSpec:
        """Random tensors :meth:`explore` needs: :meth:`act_noise`, plus ``explore`` [B, A] for ``gaussian``."""
        spec = dict(self.act_noise(batch_size))
        if self.exploration == "gaussian":
            spec["explore"] = Noise.normal(batch_size, self.act_dim)
        return spec

    @torch.no_grad()
    def explore(self, obs: torch.Tensor, critic: CriticView, noise: NoiseTensors, scale: float) -> torch.Tensor:
        """Collection actions in [−1, 1]: :meth:`act`, with ``scale`` · N(0, I) added for ``gaussian``."""
        a = self.act(obs, critic, noise)
        if self.exploration == "gaussian":
            a = (a + scale * noise["explore"]).clamp(-1.0, 1.0)
        return a


def has_log_prob(actor: object) -> bool:
    """True when ``actor`` gives log π of its next actions (it overrides :meth:`Actor.next_actions_with_log_prob`)."""
    method = getattr(type(actor), "next_actions_with_log_prob", None)
    return method is not None and method is not Actor.next_actions_with_log_prob
