"""Plugins: your own critics, actors and presets, found by every offrl command.

A plugin is a Python module that registers components when imported
(``@offrl.critics.register(...)``, see docs/extending.md). offrl imports:

- every installed entry point of the group ``offrl.plugins`` (a package declares
  ``[project.entry-points."offrl.plugins"] name = "module"``), whenever it resolves a configuration;
- the modules named with ``offrl run --plugin MODULE`` (repeatable), ``OFFRL_PLUGINS=mod1,mod2``,
  or a config file's ``plugins = [...]``.

The modules named explicitly are recorded in the run's ``config.json``
(``"plugins"``), so ``offrl run --resume``, ``offrl sweep`` and ``load_policy``
import them again.
"""
from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import Iterable

from offrl.errors import ConfigError

GROUP = "offrl.plugins"
ENV_VAR = "OFFRL_PLUGINS"
_loaded: set[str] = set()
_entry_points_loaded = False


def env_plugins() -> list[str]:
    """The modules named in ``OFFRL_PLUGINS`` (comma-separated)."""
    return [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]


def load_entry_points() -> None:
    """Import every installed ``offrl.plugins`` entry point, once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as e:
            raise ConfigError(f"The installed offrl plugin '{ep.name}' ({ep.value}) failed to import: "
                              f"{type(e).__name__}: {e}") from None


def load_plugins(modules: Iterable[str]) -> list[str]:
    """Import ``modules`` (and the installed entry points); a clear error names a module that fails."""
    load_entry_points()
    names = []
    for name in modules:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"A plugin is a module name such as 'my_package.components', got {name!r}.")
        name = name.strip()
        names.append(name)
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"Plugin module '{name}' cannot be imported ({e}). Install it, or put its folder on "
                              "PYTHONPATH.") from None
        except Exception as e:
            raise ConfigError(f"Plugin module '{name}' failed while importing: {type(e).__name__}: {e}") from None
        _loaded.add(name)
    return names
