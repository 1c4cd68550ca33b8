"""Critics without V: Q is backed up through a next action, and V(s) comes from the policy.

``sarsa`` (the dataset's next action) and ``td3`` (the actor's) learn only the
Q ensemble. Actors still ask every critic for V(s) — AWR's advantage weights,
EDP's weighted guide, the ``implicit`` selection rule — so a critic without V
estimates it from the policy it is paired with:

    V̂(s) = (1/K) Σ_k min_i Q̄_i(s, a_k),   a_k = actor.next_actions(s, z_k),

K = ``v_samples`` actor samples (one for a deterministic actor, which declares
no next-action noise). The z_k are **fixed quadrature points**: drawn once,
from a fixed generator, when the critic is attached to its actor, and kept
as non-persistent buffers (constants shared by every seed), the same K for
every state and every call. V̂ is therefore a deterministic function of s —
no randomness is drawn inside an actor's loss or ``act`` — at the price of a
fixed rather than fresh Monte-Carlo error (docs/critics.md).

How the critic reaches its actor. Actors call ``critic.v(obs)`` without
passing themselves, so the :class:`~offrl.learner.Agent` that pairs them calls
:meth:`QOnlyCritic.attach_policy` once, at construction. The critic keeps a
plain reference (not a submodule: the actor's parameters stay the actor's);
under the learner's ``functional_call`` the actor's current per-seed weights
are the ones used. A critic used on its own must be attached by hand.

There is no value loss f, hence no implicit policy beyond the data: the
``implicit`` selection rule selects uniformly among the candidates (the
behaviour samples), which is what w ≡ const means. Use ``argmax`` or
``softmax`` to exploit Q.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from einops import reduce, repeat

from offrl.component import Noise, NoiseTensors, ParamGroup, Stage
from offrl.critics.base import QCriticConfig, QEnsembleCritic
from offrl.errors import ConfigError
from offrl.validation import COUNT, Range

#: Seed of the generator the quadrature points z_k are drawn from (independent of the run's seed).
V_NOISE_SEED = 20240611


@dataclass
class QOnlyConfig(QCriticConfig):
    """Hyperparameters of a critic without V."""

    v_samples: int = field(
        default=4,
        metadata={"help": "Actor samples K in V(s) ≈ mean_k min Q̄(s, π(s, z_k)), for actors that ask for V "
                          "(1 is used for deterministic actors)"},
    )

    RANGES: ClassVar[dict[str, Range]] = {**QCriticConfig.RANGES, "v_samples": COUNT}


def next_action_noise_layout(actor: Any) -> dict[str, Noise]:
    """The actor's next-action noise for one state, after checking that the batch is on dim 0."""
    one, two = actor.next_action_noise(1), actor.next_action_noise(2)
    for name, spec in one.items():
        other = two.get(name)
        if other is None or spec.shape[:1] != (1,) or other.shape != (2, *spec.shape[1:]):
            raise ConfigError(
                f"{type(actor).__name__}.next_action_noise must put the batch on dim 0 of every tensor "
                f"('{name}' is {spec.shape} for one state, {None if other is None else other.shape} for two)."
            )
    return one


class QOnlyCritic(QEnsembleCritic):
    """Q ensemble + targets, one Q stage; V estimated from the attached policy (module docstring)."""

    Config = QOnlyConfig
    cfg: QOnlyConfig

    def __init__(self, cfg: QOnlyConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self._policy: tuple[Any, ...] = ()  # (actor,) once attached; a tuple so it is not a submodule
        self._v_noise: dict[str, str] = {}  # noise name -> buffer name
        self._v_samples = 1

    # --- the policy ---------------------------------------------------------------------------
    def attach_policy(self, actor: Any) -> None:
        """Pair with ``actor``: V(s) and (for ``td3``) the backup use its ``next_actions``."""
        self._policy = (actor,)
        spec = next_action_noise_layout(actor)
        self._v_samples = self.cfg.v_samples if spec else 1
        g = torch.Generator().manual_seed(V_NOISE_SEED)
        self._v_noise = {}
        for i, (name, n) in enumerate(spec.items()):
            z = Noise(n.kind, (self._v_samples, *n.shape), n.high).draw(g, torch.device("cpu"))  # [K, 1, ...]
            buffer = f"v_noise_{i}"
            self.register_buffer(buffer, z, persistent=False)
            self._v_noise[name] = buffer

    @property
    def policy(self) -> Any:
        if not self._policy:
            raise RuntimeError(f"{type(self).__name__} estimates V from its actor: call attach_policy(actor) first "
                               "(offrl.learner.Agent does this when it pairs them).")
        return self._policy[0]

    def policy_actions(self, obs: torch.Tensor, noise: NoiseTensors) -> torch.Tensor:
        """a' = actor.next_actions(s, z), clipped to [−1, 1]; a clear error if the actor has none."""
        actor = self.policy
        try:
            actions = actor.next_actions(obs, noise)
        except NotImplementedError:
            raise ConfigError(
                f"critic '{type(self).__name__}' needs the actor's next actions, and {type(actor).__name__} does not "
                "implement next_actions (docs/extending.md)."
            ) from None
        return actions.clamp(-1.0, 1.0)

    def policy_actions_with_log_prob(self, obs: torch.Tensor, noise: NoiseTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """(a', log π(a'|s')) from an actor with a density (``sac``), a' clipped to [−1, 1]; the critics that
        need it check the actor when it is attached."""
        actions, log_pi = self.policy.next_actions_with_log_prob(obs, noise)
        return actions.clamp(-1.0, 1.0), log_pi

    # --- CriticView: V from the policy --------------------------------------------------------------
    @torch.no_grad()
    def v(self, obs: torch.Tensor) -> torch.Tensor:
        """V̂(s) = mean_k min_i Q̄_i(s, a_k), a_k = π(s, z_k) at the K fixed quadrature points z_k."""
        k, b = self._v_samples, obs.shape[0]
        obs_k = repeat(obs, "b o -> (k b) o", k=k)
        noise = {}
        for name, buffer in self._v_noise.items():
            z = getattr(self, buffer)  # [K, 1, ...]: one draw per k, shared by every state
            noise[name] = z.expand(k, b, *z.shape[2:]).reshape(k * b, *z.shape[2:])
        q = self.q(obs_k, self.policy_actions(obs_k, noise))
        return reduce(q, "(k b) -> b", "mean", k=k)

    @torch.no_grad()
    def implicit_weight(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """w ≡ 1: without a value loss there is no implicit policy beyond the behaviour data."""
        return torch.ones(obs.shape[0], device=obs.device, dtype=obs.dtype)

    # --- training ----------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, ParamGroup]:
        c = self.cfg
        return {"q": ParamGroup(self.q_net.parameters(), c.q_lr, max_grad_norm=c.max_grad_norm)}

    def stages(self) -> list[Stage]:
        return [Stage("q", self.q_loss)]

    def q_loss(self, batch: Any, noise: NoiseTensors, actor: Any) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


__all__ = ["QOnlyConfig", "QOnlyCritic", "V_NOISE_SEED", "next_action_noise_layout"]
