"""Alias of :mod:`offrl.generative.diffusion`, where the diffusion core now lives beside the flow core.

``import offrl.diffusion`` and ``from offrl.diffusion.model import ...`` keep
working: the submodules are the very same module objects (registered under
both names), so classes compare equal whichever path imported them.
"""
import sys

from offrl.generative import diffusion as _core
from offrl.generative.diffusion import *  # noqa: F401,F403
from offrl.generative.diffusion import ema, model, networks, schedules, solvers

for _module in (ema, model, networks, schedules, solvers):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module

__all__ = list(_core.__all__)
