"""The actor registry (see :mod:`offrl.registry`)."""
from __future__ import annotations

from offrl.registry import Registry, check_component

ACTORS: Registry = Registry("actor", check=check_component)
