"""The shared learner: optimisation of every (critic, actor) pairing, for many seeds at once.

- :mod:`~offrl.learner.learner`: :class:`Learner` — the iteration, update schedule, speed modes;
- :mod:`~offrl.learner.members`: :class:`Agent` and the seeds' stacked state;
- :mod:`~offrl.learner.optim`: Adam(W) with device-side LR schedules and gradient clipping;
- :mod:`~offrl.learner.rng`: one generator per seed.
"""
from offrl.learner.learner import SPEED_MODES, UPDATE_ORDERS, Learner, UpdateSchedule, resolve_speed_mode
from offrl.learner.members import Agent, StackedAgents

__all__ = ["SPEED_MODES", "UPDATE_ORDERS", "Agent", "Learner", "StackedAgents", "UpdateSchedule", "resolve_speed_mode"]
