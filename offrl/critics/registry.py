"""The critic registry (see :mod:`offrl.registry`)."""
from __future__ import annotations

from offrl.registry import Registry

CRITICS: Registry = Registry("critic")
