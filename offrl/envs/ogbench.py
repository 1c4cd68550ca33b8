"""OGBench's manipulation environments as offrl uses them: collection envs and single-task eval envs.

OGBench (Park et al. 2024; package ``ogbench``, repository
seohongpark/ogbench) builds its environments offline. offrl uses two kinds:

- the **collection** environment (``cube-single-v0`` in ``mode='data_collection'``,
  no termination at the goal), where the scripted oracles play;
- the **single-task** environment (``cube-single-singletask-task2-v0``), the
  evaluation environment of each single-task dataset, built with
  ``ogbench.make_env_and_datasets(name, env_only=True)``. It terminates when the
  task is complete and reports ``info['success']``.

``success_timing``: since ogbench 1.2.0 single-task environments compute
success, reward and termination from the state *before* the action (``'pre'``);
ogbench 1.0-1.1 computed them after it (``'post'``). FQL's published OGBench
numbers were produced with ogbench 1.1.0, so offrl evaluates with ``'post'``
(:data:`SUCCESS_TIMING`) to be comparable with them; the difference is at most
one step per episode.

Headless machines print GLFW "no DISPLAY" warnings when the renderer module
loads; they are harmless (offrl never renders) and silenced here.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

from offrl.errors import OfflineRLError

EXTRA = "ogbench"
SUCCESS_TIMING = "post"  # FQL's numbers (ogbench 1.1.0) used post-action success
SUCCESS_INFO_KEY = "success"
NUM_TASKS = 5


@dataclass(frozen=True)
class ManipEnv:
    """One OGBench manipulation environment: its id stem, oracle family and single-task horizon."""

    name: str  # e.g. "cube-single"; gymnasium ids are f"{name}-v0", f"{name}-singletask-task{k}-v0"
    family: str  # "cube", "scene" or "puzzle": which oracles play it
    eval_steps: int  # max_episode_steps of its single-task environments (ogbench's registration)
    obs_dim: int

    @property
    def collection_id(self) -> str:
        return f"{self.name}-v0"

    def task_env_id(self, task_id: int) -> str:
        return f"{self.name}-singletask-task{task_id}-v0"

    def dataset_name(self, task_id: int) -> str:
        """OGBench's dataset name, e.g. ``cube-single-play-singletask-task2-v0``."""
        return f"{self.name}-play-singletask-task{task_id}-v0"


#: Horizons and observation sizes as registered by ogbench 1.2.2 (kept here so that the
#: recipes register without ogbench installed; checked against ogbench by the tests).
MANIP_ENVS: dict[str, ManipEnv] = {
    e.name: e
    for e in (
        ManipEnv("cube-single", "cube", 200, 28),
        ManipEnv("cube-double", "cube", 500, 37),
        ManipEnv("scene", "scene", 750, 40),
        ManipEnv("puzzle-3x3", "puzzle", 500, 55),
        ManipEnv("puzzle-4x4", "puzzle", 500, 83),
    )
}


#: Warnings of OGBench environments that say nothing about the user's run: GLFW finds no display
#: (offrl never renders), and gymnasium notes that float64 action bounds are stored as float32.
HARMLESS_WARNINGS = (
    r".*DISPLAY environment variable is missing.*",
    r".*precision lowered by casting to float32.*",
)


def silence_harmless_warnings() -> None:
    """Filter :data:`HARMLESS_WARNINGS` for the rest of the process.

    A ``catch_warnings`` block is not enough: OGBench computes its spaces on every
    access, and gymnasium's vector envs and checkers access them after any block has ended.
    """
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings (GLFW without DISPLAY, gymnasium's float32 casts) and import-time prints."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def import_ogbench() -> Any:
    """Import ogbench (registering its environments), or fail naming the extra."""
    silence_harmless_warnings()
    try:
        with quiet():
            import ogbench
            import ogbench.manipspace  # noqa: F401  (registers the manipulation ids)
    except ImportError:
        raise OfflineRLError(
            f"The OGBench datasets need ogbench: `pip install 'offrl[{EXTRA}]'` (or `pip install ogbench`)."
        ) from None
    return ogbench


def ogbench_version() -> str:
    from importlib.metadata import version

    import_ogbench()
    return version("ogbench")


def make_collection_env(env: ManipEnv, max_episode_steps: int) -> Any:
    """The data-collection environment (random scenes and targets, never terminates at a goal)."""
    import gymnasium as gym

    import_ogbench()
    with quiet():
        return gym.make(
            env.collection_id, terminate_at_goal=False, mode="data_collection", max_episode_steps=max_episode_steps
        )


def make_task_env(env: ManipEnv, task_id: int, success_timing: str = SUCCESS_TIMING) -> Any:
    """OGBench's single-task evaluation environment for ``task_id`` (1-5), built offline."""
    ogbench = import_ogbench()
    if not 1 <= task_id <= NUM_TASKS:
        raise OfflineRLError(f"OGBench task ids are 1..{NUM_TASKS} (got {task_id}).")
    with quiet():
        return ogbench.make_env_and_datasets(env.dataset_name(task_id), env_only=True, success_timing=success_timing)
