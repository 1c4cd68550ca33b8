"""offrl: interchangeable IQL-family critics and policy extractors on one shared trainer.

Python API::

    import offrl
    cfg = offrl.make_config(critic="expectile", actor="gaussian-awr", steps=3000, seed=0)
    result = offrl.train(cfg, "runs/my-run")
    print(result.summary["final_score_100"])

Register new critics/actors with ``offrl.critics.register`` / ``offrl.actors.register``.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def make_config(
    critic: str | None = None,
    actor: str | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: str | None = None,
) -> Any:
    """Resolve a :class:`offrl.config.RunConfig` like the CLI does.

    ``overrides`` maps ``"section.key"`` to values, e.g. ``{"critic.tau": 0.9}``; ``seeds``
    (e.g. ``"0-7"``) trains several seeds in one process.
    """
    from offrl.config import resolve

    layers: list[dict[str, Any]] = []
    if preset is not None:
        from offrl.presets import PRESETS

        layers.append(PRESETS.get(preset).layer())
    top: dict[str, dict[str, Any]] = {}
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        top.setdefault(section, {})[name] = value
    for section, key, value in (("critic", "name", critic), ("actor", "name", actor), ("data", "dataset", dataset),
                                ("trainer", "steps", steps), ("trainer", "seed", seed),
                                ("trainer", "seeds", seeds)):
        if value is not None:
            top.setdefault(section, {})[key] = value
    layers.append(top)
    return resolve(layers)


def train(cfg: Any, run_dir: Any, show_progress: bool = False) -> Any:
    """Train ``cfg`` in a new ``run_dir``; returns a :class:`offrl.trainer.runs.RunResult`
    (a :class:`~offrl.trainer.runs.GroupResult` with one per seed when ``trainer.seeds`` is set)."""
    from offrl.trainer.api import train as _train

    return _train(cfg, run_dir, show_progress=show_progress)


def resume(run_dir: Any, show_progress: bool = False, plugins: Any = ()) -> Any:
    """Continue the run in ``run_dir`` from its latest checkpoint (``plugins``: modules to import first, for a run
    of your own components — the plugins a run's files name are never imported for you)."""
    from offrl.trainer.api import resume as _resume

    return _resume(run_dir, show_progress=show_progress, plugins=plugins)


def load_policy(run_dir: Any, which: str = "final", device: Any = "cpu", seed: int = 0, plugins: Any = ()) -> Any:
    """The policy a run saved: ``which="final"`` (last evaluation) or ``"best"``; acts on raw observations and
    returns actions in the environment's bounds (see :mod:`offrl.policy`). ``plugins``: modules to import first,
    for a run of your own components (those a policy file names are never imported for you)."""
    from offrl.policy import load_policy as _load

    return _load(run_dir, which=which, device=device, seed=seed, plugins=plugins)


def __getattr__(name: str) -> Any:
    # Lazy submodules keep `import offrl` fast (torch is imported on first use).
    if name in ("critics", "actors", "presets", "data", "config"):
        import importlib

        return importlib.import_module(f"offrl.{name}")
    raise AttributeError(f"module 'offrl' has no attribute {name!r}")
