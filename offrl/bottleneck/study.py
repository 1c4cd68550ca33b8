"""The bottleneck study as a sweep: a ``[bottleneck]`` table in a sweep spec file.

Park et al. 2024's data-scaling matrix trains the critic on N_v and the actor
on N_π transitions for every (N_v, N_π) of a grid, per critic × actor ×
dataset × seed. Here that is an ordinary ``offrl sweep`` (crash-safe, local
processes or Ray, ``--dry-run``, reruns that skip finished cells): the table
adds the matrix to the sweep's grid (``data.value_fraction`` ×
``data.policy_fraction``) and the protocol's settings to every cell's run
options::

    [bottleneck]
    value_fractions = [0.1, 0.25, 0.5, 1.0]    # N_v, as shares of the training episodes
    policy_fractions = [0.1, 0.25, 0.5, 1.0]   # N_π
    validation_fraction = 0.1                  # held-out episodes (the validation MSE)
    phases = "two-phase"                       # critic first, then the actor on the frozen critic
    critic_steps = 0                           # the critic phase (0 = half of the run)
    diagnostics = true                         # diag/* at every evaluation
    opex_steps = 0                             # OPEX beside the plain evaluation (0 = off)
    opex_lr = 0.05
    ttt_steps = 0                              # TTT beside the plain evaluation (0 = off)
    ttt_lr = 0.0
    ttt_batch = 0
    split_seed = 0

``offrl report`` then draws one heatmap per critic × actor × dataset
(:mod:`offrl.report.bottleneck`). See docs/bottleneck.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from offrl.errors import ConfigError

#: ``[bottleneck]`` key -> (config key it sets in every cell, default; None = not set unless given).
SETTINGS: dict[str, tuple[str, Any]] = {
    "validation_fraction": ("data.validation_fraction", 0.1),
    "split_seed": ("data.split_seed", None),
    "phases": ("trainer.phases", "two-phase"),
    "critic_steps": ("trainer.critic_steps", None),
    "diagnostics": ("eval.diagnostics", True),
    "opex_steps": ("eval.opex_steps", None),
    "opex_lr": ("eval.opex_lr", None),
    "ttt_steps": ("eval.ttt_steps", None),
    "ttt_lr": ("eval.ttt_lr", None),
    "ttt_batch": ("eval.ttt_batch", None),
    "reference": ("eval.reference", None),
}
#: The matrix: ``[bottleneck]`` key -> the grid key it becomes.
AXES = {"value_fractions": "data.value_fraction", "policy_fractions": "data.policy_fraction"}


def expand(table: Any, path: Path, grid: dict[str, Any], sets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The sweep's grid and ``set`` list with the study's matrix and settings added (clear errors on conflicts)."""
    from offrl.sweep.spec import format_value

    where = f"Sweep spec '{path}': [bottleneck]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table.")
    valid = set(AXES) | set(SETTINGS)
    for key in table:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key '{key}'. Valid keys: {', '.join(sorted(valid))}.")
    grid = dict(grid)
    for key, grid_key in AXES.items():
        values = table.get(key)
        if values is None:
            raise ConfigError(f"{where} needs {key} (a list of shares of the training episodes in (0, 1], "
                              "e.g. [0.1, 0.25, 0.5, 1.0]).")
        values = values if isinstance(values, list) else [values]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1
                                 for v in values):
            raise ConfigError(f"{where}: {key} must be a non-empty list of numbers in (0, 1], got {values!r}.")
        if grid_key in grid:
            raise ConfigError(f"{where} sets {grid_key} through {key}; remove it from [grid].")
        grid[grid_key] = [float(v) for v in values]
    given = {s.split("=", 1)[0].strip() for s in sets}
    sets = list(sets)
    for key, (config_key, default) in SETTINGS.items():
        value = table.get(key, default)
        if value is None:
            continue
        if config_key in given:
            raise ConfigError(f"{where} sets {config_key} (its '{key}'); remove it from [run] set.")
        if config_key in grid:
            raise ConfigError(f"{where} sets {config_key} (its '{key}'); remove it from [grid].")
        sets.append(f"{config_key}={format_value(value)}")
    return grid, sets
