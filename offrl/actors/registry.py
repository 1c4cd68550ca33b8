"""The actor registry (see :mod:`offrl.registry`)."""
from __future__ import annotations

from offrl.registry import Registry

ACTORS: Registry = Registry("actor")
