"""The critic registry (see :mod:`offrl.registry`)."""
from __future__ import annotations

from offrl.registry import Registry, check_component

CRITICS: Registry = Registry("critic", check=check_component)
