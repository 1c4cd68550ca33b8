"""Every built-in dataset, registered in one place with its measured cost.

Costs are wall times of ``offrl data make ID`` at the default budget, measured
on the 2-core development machine (see docs/datasets.md for the conditions).
Only datasets that take seconds are made on first use by ``offrl run``; for
the others loading stops with the ``offrl data make`` command and this cost.
Registering imports the recipe modules only: no optional package
(gymnasium-robotics, stable-baselines3, ogbench) is imported until a recipe runs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from offrl.data.store import DatasetState, dataset_dir, dataset_state, no_metadata_error
from offrl.datagen.recipes import bandit, locomotion, ogbench, pointmaze
from offrl.datagen.registry import BUILTIN_DATASETS, BuiltinDataset, register_builtin
from offrl.datagen.writer import dataset_lock
from offrl.errors import OfflineRLError

__all__ = ["BUILTIN_DATASETS", "BuiltinDataset", "check_requirements", "ensure_dataset"]

register_builtin(
    BuiltinDataset(
        id=bandit.DATASET_ID,
        description="2-D multimodal continuous bandit (one-step episodes); the default dataset",
        make=bandit.make,
        cost="about 4 s",
        default_budget={"episodes": 3000},
        quick_budget={"episodes": 500},
        made_on_first_use=True,
    )
)

_MAZE_COST = {"umaze": "about 2.6 min", "medium": "about 2 min", "large": "about 2 min"}
for _maze in pointmaze.MAZES.values():
    register_builtin(
        BuiltinDataset(
            id=_maze.dataset_id,
            description=f"PointMaze {_maze.name} (D4RL maze2d recipe, sparse reward)",
            make=pointmaze.make,
            cost=_MAZE_COST[_maze.name],
            default_budget=dict(pointmaze.DEFAULT_BUDGET),
            quick_budget=dict(pointmaze.QUICK_BUDGET),
            requires=("gymnasium_robotics",),
            extra=pointmaze.EXTRA,
        )
    )

_LOCOMOTION_COST = {
    "hopper": "about 1 h 42 min (one SAC run makes the whole Hopper family)",
    "halfcheetah": "an estimated 1.5-2 h (one SAC run makes the whole family; Hopper's took 1 h 42 min)",
    "walker2d": "an estimated 1.5-2 h (one SAC run makes the whole family; Hopper's took 1 h 42 min)",
}
for _env_name, _env_id in locomotion.ENVS.items():
    for _kind, _id in locomotion.family_ids(f"offrl/{_env_name}").items():
        register_builtin(
            BuiltinDataset(
                id=_id,
                description=f"{_env_id} {_kind} (D4RL recipe, SAC)",
                make=locomotion.make,
                cost=_LOCOMOTION_COST[_env_name],
                default_budget=dict(locomotion.DEFAULT_BUDGET),
                quick_budget=dict(locomotion.QUICK_BUDGET),
                requires=("stable_baselines3",),
                extra=locomotion.EXTRA,
            )
        )

#: Measured oracle CPU cost per step (10 full-length episodes per env; cube-single confirmed by a full
#: 1M-step make: 19.2 CPU-minutes). See docs/datasets.md.
_OGBENCH_MS_PER_STEP = {"cube-single": 1.15, "cube-double": 1.2, "scene": 1.3, "puzzle-3x3": 1.5, "puzzle-4x4": 2.0}
for _dataset_id, (_env, _task) in ogbench.all_dataset_ids().items():
    _cpu_min = 1_000_000 * _OGBENCH_MS_PER_STEP[_env.name] / 60_000
    register_builtin(
        BuiltinDataset(
            id=_dataset_id,
            description=f"OGBench {_env.name} play data, single task {_task} (oracle, success rate)",
            make=ogbench.make,
            cost=f"about {_cpu_min:.0f} CPU-minutes for the {_env.name} oracle episodes (1M steps at "
            f"~{_OGBENCH_MS_PER_STEP[_env.name]} ms each; divided among --workers, and shared by its 5 tasks), "
            "plus under a minute per task to relabel and write (6 s measured for cube-single)",
            default_budget=dict(ogbench.DEFAULT_BUDGET),
            quick_budget=dict(ogbench.QUICK_BUDGET),
            requires=("ogbench",),
            extra=ogbench.EXTRA,
        )
    )


def check_requirements(spec: BuiltinDataset) -> None:
    """A built-in recipe's optional packages must be importable; the error names the extra."""
    missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise OfflineRLError(
            f"Generating '{spec.id}' needs {', '.join(missing)}: `pip install 'offrl[{spec.extra}]'`."
        )


def ensure_dataset(dataset_id: str, **budget: Any) -> Path:
    """Make a missing built-in dataset (once, under a lock: concurrent callers wait); return its directory.

    A dataset directory without metadata is broken, not missing: it is reported,
    never silently replaced (``offrl data make --force`` replaces it).
    """
    state = dataset_state(dataset_id)
    if state is DatasetState.READY:
        return dataset_dir(dataset_id)
    if state is DatasetState.NO_METADATA:
        raise no_metadata_error(dataset_id)
    spec = BUILTIN_DATASETS.get(dataset_id)
    check_requirements(spec)
    with dataset_lock(dataset_id):
        state = dataset_state(dataset_id)  # another process may have built it while we waited
        if state is DatasetState.NO_METADATA:
            raise no_metadata_error(dataset_id)
        if state is DatasetState.MISSING:
            spec.make(dataset_id, **budget)
    return dataset_dir(dataset_id)
