"""Critics: the IQL family of value losses, and critics without V (SARSA, TD3-style backups).

Register a new one from user code with ``@offrl.critics.register(name, description)``
on an :class:`IQLCritic` subclass (see docs/extending.md).
"""
from offrl.critics.base import Q_AGGS, CriticConfig, CriticView, IQLCritic, QCriticConfig, QEnsembleCritic
from offrl.critics.registry import CRITICS

register = CRITICS.register

from offrl.critics import expectile, exponential, quantile, sarsa, td3  # noqa: E402,F401  (registers built-ins)
from offrl.critics import cql, calql  # noqa: E402,F401  (after td3: they extend it)
from offrl.critics.q_only import QOnlyConfig, QOnlyCritic  # noqa: E402
from offrl.critics.selection import RULES as SELECTION_RULES  # noqa: E402
from offrl.critics.selection import sample_candidates, selection_probs  # noqa: E402

__all__ = [
    "CRITICS", "CriticConfig", "CriticView", "IQLCritic", "Q_AGGS", "QCriticConfig", "QEnsembleCritic", "QOnlyConfig",
    "QOnlyCritic", "SELECTION_RULES", "register", "sample_candidates", "selection_probs",
]
