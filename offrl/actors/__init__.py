"""Actors (policy extractors). Register new ones with ``@offrl.actors.register(name, description)``."""
from offrl.actors.base import Actor, ActorConfig
from offrl.actors.registry import ACTORS

register = ACTORS.register

from offrl.actors import ddpg_bc, diffusion_resample, edp, flow_resample, fql, gaussian_awr, sac  # noqa: E402,F401  (built-ins)

__all__ = ["ACTORS", "Actor", "ActorConfig", "register"]
