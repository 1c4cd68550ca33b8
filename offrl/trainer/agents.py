"""Building a seed's agent (critic + actor) from a config, and telling 'too large' apart from other errors.

Shared by the trainer and its evaluation workers, so both build exactly the same
networks for a seed.
"""
from __future__ import annotations

from typing import Any

import torch

from offrl.actors import ACTORS
from offrl.config import RunConfig
from offrl.critics import CRITICS
from offrl.errors import ConfigError
from offrl.learner import Agent
from offrl.trainer.runtime import seed_everything


def build_agent(cfg: RunConfig, obs_dim: int, act_dim: int, seed: int, actor_updates: int) -> Agent:
    """Seed ``seed``'s critic and actor, initialised exactly as a solo run of that seed.

    ``actor_updates`` is the actor's update count over the run (its LR schedule's length).
    """
    seed_everything(seed)
    try:
        critic = CRITICS.get(cfg.critic)(cfg.critic_cfg, obs_dim, act_dim)
        actor = ACTORS.get(cfg.actor)(cfg.actor_cfg, obs_dim, act_dim, actor_updates)
    except BaseException as e:
        if is_out_of_memory(e):
            raise too_big(e, cfg) from None
        raise
    return Agent(critic, actor)


def is_out_of_memory(e: BaseException) -> bool:
    """An allocation failure: CUDA's (``torch.OutOfMemoryError``), Python's, or PyTorch's CPU allocator's
    (a RuntimeError whose message names the allocator) — never any message that merely mentions memory."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e)


def too_big(e: BaseException, cfg: RunConfig) -> ConfigError:
    """The one message for networks and batches that do not fit: the sizes that decide it."""
    sizes: dict[str, Any] = {k: v for k, v in (
        ("critic.hidden_dims", getattr(cfg.critic_cfg, "hidden_dims", None)),
        ("critic.batch_size", cfg.critic_cfg.batch_size),
        ("actor.batch_size", cfg.actor_cfg.batch_size),
        ("actor.hidden_dims", getattr(cfg.actor_cfg, "hidden_dims", None)),
        ("actor.hidden", getattr(cfg.actor_cfg, "hidden", None))) if v is not None}
    listing = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in sizes.items())
    seeds = cfg.trainer.seed_list()
    many = f" for {len(seeds)} seeds in one process (fewer with --seeds-per-process)" if len(seeds) > 1 else ""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ConfigError(f"Could not allocate the networks and batches ({first}); the sizes are too large for this "
                       f"machine{many}: {listing}.")
