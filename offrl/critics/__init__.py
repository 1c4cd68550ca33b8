"""Critics: the IQL family of value losses on one shared twin-Q / V machinery.

Register a new one from user code with ``@offrl.critics.register(name, description)``
on an :class:`IQLCritic` subclass (see docs/extending.md).
"""
from offrl.critics.base import CriticConfig, CriticView, IQLCritic
from offrl.critics.registry import CRITICS

register = CRITICS.register

from offrl.critics import expectile  # noqa: E402,F401  (registers built-ins)

__all__ = ["CRITICS", "CriticConfig", "CriticView", "IQLCritic", "register"]
