"""Plugins: your own critics, actors and presets, found by every offrl command.

A plugin is a Python module that registers components when imported
(``@offrl.critics.register(...)``, see docs/extending.md). offrl imports:

- every installed entry point of the group ``offrl.plugins`` (a package declares
  ``[project.entry-points."offrl.plugins"] name = "module"``), whenever it resolves a configuration;
- the modules named with ``offrl run --plugin MODULE`` (repeatable, also ``offrl eval``, ``offrl sweep``),
  ``OFFRL_PLUGINS=mod1,mod2``, a config file's ``plugins = [...]`` that you pass with ``--config``, or
  ``plugins=[...]`` of ``offrl.load_policy`` / ``offrl.resume``.

That is all: **offrl never imports a module because a file it reads back names
it.** The plugins a run used are recorded in its ``config.json`` and policy
files (``"plugins"``), but only as a note of what the run needs: a run folder
may come from anywhere, and importing a module it names would run whatever
``.py`` file sits on the path. ``offrl run --resume``, ``offrl eval`` and
``load_policy`` of a run whose components are not registered fail with one
message naming the recorded plugin and how to load it (:func:`require`):
``--plugin MODULE``, ``load_policy(..., plugins=[...])``, ``OFFRL_PLUGINS`` or an
installed entry point — the user asking.
"""
from __future__ import annotations

import importlib
import os
import sys
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
        except (Exception, SystemExit) as e:
            raise ConfigError(f"The installed offrl plugin '{ep.name}' ({ep.value}) failed to import: "
                              f"{type(e).__name__}: {e}") from None


def require(layer: dict, recorded: Iterable[str], source: str, how: str) -> None:
    """The components a saved config ``layer`` names must be registered already: never import ``recorded``.

    ``source`` is the file the layer comes from; ``how`` the commands that load a plugin (e.g.
    ``"`offrl eval RUN --plugin MODULE`"``), shown with ``MODULE`` replaced by the recorded plugin.
    """
    from offrl.actors import ACTORS
    from offrl.critics import CRITICS

    load_entry_points()
    missing = []
    for section, registry in (("critic", CRITICS), ("actor", ACTORS)):
        values = layer.get(section)
        name = values.get("name") if isinstance(values, dict) else None
        if isinstance(name, str) and name not in registry:
            missing.append(f"{section} '{name}'")
    if not missing:
        return
    recorded = [m for m in recorded if isinstance(m, str) and m.strip()]
    if not [m for m in recorded if m not in _loaded and m not in sys.modules]:
        return  # no plugin recorded, or all of them loaded: the registry's own error (with the valid names) follows
    mods = ", ".join(f"'{m}'" for m in recorded)
    first = recorded[0]
    raise ConfigError(
        f"'{source}' was trained with {' and '.join(missing)} from plugin {mods}, which is not loaded. offrl never "
        f"imports code named in a file it reads back; if you trust the plugin, load it yourself: "
        f"{how.replace('MODULE', first)}, or {ENV_VAR}={first}, or install it with an '{GROUP}' entry point."
    )


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
        except SystemExit as e:
            raise ConfigError(f"Plugin module '{name}' called sys.exit({e.code!r}) while importing.") from None
        except Exception as e:
            raise ConfigError(f"Plugin module '{name}' failed while importing: {type(e).__name__}: {e}") from None
        _loaded.add(name)
    return names
