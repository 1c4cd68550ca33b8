"""Critics: the IQL family of value losses on one shared twin-Q / V machinery.

Register a new one from user code with ``@offrl.critics.register(name, description)``
on an :class:`IQLCritic` subclass (see docs/extending.md).
"""
from offrl.critics.base import CriticConfig, CriticView, IQLCritic
from offrl.critics.registry import CRITICS

register = CRITICS.register

from offrl.critics import expectile, exponential, quantile  # noqa: E402,F401  (registers built-ins)
from offrl.critics.selection import RULES as SELECTION_RULES  # noqa: E402
from offrl.critics.selection import sample_candidates, selection_probs  # noqa: E402

__all__ = [
    "CRITICS", "CriticConfig", "CriticView", "IQLCritic", "SELECTION_RULES", "register",
    "sample_candidates", "selection_probs",
]
