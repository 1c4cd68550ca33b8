"""Training phases: joint updates, or the critic first and then the actor on the frozen critic.

``trainer.phases=two-phase`` is the protocol of Park et al. 2024 ("Is Value
Learning Really the Main Bottleneck in Offline RL?"): the value function is
trained alone, then frozen, and the policy is extracted from it. It needs a
critic whose loss does not read the actor. A critic that backs up through the
policy (``td3``: y = r + γ Q̄(s', π(s')); a conservative critic that penalises
the policy's actions) declares ``trains_on_actor = True`` and is refused: its
value would be the value of the untrained initial policy.

The learner does the scheduling (:class:`offrl.learner.UpdateSchedule`'s
``critic_until`` / ``actor_from``); this module turns the config into it.
"""
from __future__ import annotations

from offrl.config import RunConfig
from offrl.errors import ConfigError
from offrl.learner import UpdateSchedule


def check_phases(cfg: RunConfig) -> None:
    """Refuse two-phase training for critics that need the actor during their own updates."""
    if cfg.trainer.phases != "two-phase":
        return
    from offrl.critics import CRITICS

    critic = CRITICS.get(cfg.critic)
    if getattr(critic, "trains_on_actor", False):
        raise ConfigError(
            f"trainer.phases=two-phase trains the critic before the actor, but critic '{cfg.critic}' backs up "
            "through the actor (its targets use the policy's actions), so it cannot be trained without the actor. "
            "Use an in-sample critic (the IQL family: expectile, quantile, exponential; or sarsa), or "
            "trainer.phases=joint.")


def update_schedule(cfg: RunConfig) -> UpdateSchedule:
    """The learner's update schedule for ``cfg``: batch sizes, update ratios, the policy delay and the phases."""
    check_phases(cfg)
    t = cfg.trainer
    boundary = t.critic_phase_steps()
    return UpdateSchedule(
        critic_updates=cfg.critic_cfg.updates_per_step, critic_batch=cfg.critic_cfg.batch_size,
        actor_updates=cfg.actor_cfg.updates_per_step, actor_batch=cfg.actor_cfg.batch_size,
        actor_every=cfg.actor_cfg.update_every, shared_batch=t.shared_batch, order=t.update_order,
        critic_until=boundary, actor_from=boundary,
    )

