"""Single-task rewards and terminals for OGBench manipulation data, from qpos and button states.

OGBench's single-task datasets (``ogbench/relabel_utils.py``) relabel the play
data with one fixed task: a task is a set of sub-goals (each cube at its
target, each button in its target state, the drawer and window at their target
positions); for the transition (s_t, a_t, s_{t+1})

    r_t = #(sub-goals satisfied in s_t) − #(sub-goals)        (so r_t ≤ 0)
    mask_t = 0 if every sub-goal is satisfied in s_t, else 1

computed from the *current* state s_t's ``qpos`` (and button states). Episodes
do not end at success; ``mask_t = 0`` only stops the bootstrap, so offrl stores
``terminations[t] = (mask_t == 0)`` inside episodes that continue, which gives
exactly OGBench's backup r_t + γ·mask_t·V(s_{t+1}).

This is offrl's own implementation (tested against ``ogbench.relabel_utils``):
the targets are read once from the single-task environment after a reset --
the same attributes OGBench's function reads -- and stored with the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.envs.ogbench import MANIP_ENVS, ManipEnv, make_task_env

QPOS_OBJECTS = 14  # qpos index of the first object (after the arm's and gripper's joints)
QPOS_PER_CUBE = 7  # free joint: xyz + quaternion
CUBE_TOLERANCE = 0.04  # metres, cube at target
SLIDER_TOLERANCE = 0.04  # drawer / window at target


@dataclass(frozen=True)
class TaskTargets:
    """What one OGBench task asks for (arrays as lists, so they serialise into the metadata)."""

    env: str
    task_id: int
    cube_xyzs: list[list[float]]  # one target per cube (cube and scene envs)
    button_states: list[int]  # target state per button (scene and puzzle envs)
    drawer_pos: float | None = None  # scene only
    window_pos: float | None = None  # scene only

    @property
    def num_subgoals(self) -> int:
        return len(self.cube_xyzs) + len(self.button_states) + (self.drawer_pos is not None) + (self.window_pos is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env, "task_id": self.task_id, "num_subgoals": self.num_subgoals,
            "cube_xyzs": self.cube_xyzs, "button_states": self.button_states,
            "drawer_pos": self.drawer_pos, "window_pos": self.window_pos,
        }


def read_targets(task_env: Any, env: ManipEnv, task_id: int) -> TaskTargets:
    """A task's targets, read from its single-task environment after a reset (the attributes
    ``ogbench.relabel_utils`` reads: target mocap positions, button, drawer and window targets)."""
    task_env.reset(seed=0)
    u = task_env.unwrapped
    cubes = np.asarray(u._data.mocap_pos, np.float64).tolist() if env.family in ("cube", "scene") else []
    buttons = np.asarray(u._target_button_states).astype(int).tolist() if env.family in ("scene", "puzzle") else []
    drawer = float(u._target_drawer_pos) if env.family == "scene" else None
    window = float(u._target_window_pos) if env.family == "scene" else None
    return TaskTargets(env.name, task_id, cubes, buttons, drawer, window)


def task_targets(env: ManipEnv | str, task_id: int) -> TaskTargets:
    """The targets of ``task_id`` (1-5) of an OGBench manipulation environment."""
    env = MANIP_ENVS[env] if isinstance(env, str) else env
    task_env = make_task_env(env, task_id)
    try:
        return read_targets(task_env, env, task_id)
    finally:
        task_env.close()


def subgoal_successes(targets: TaskTargets, qpos: np.ndarray, button_states: np.ndarray | None) -> np.ndarray:
    """[T, #sub-goals] booleans: which sub-goals each state satisfies."""
    qpos = np.asarray(qpos)
    cols: list[np.ndarray] = []
    for i, target in enumerate(targets.cube_xyzs):
        start = QPOS_OBJECTS + i * QPOS_PER_CUBE
        cols.append(np.linalg.norm(qpos[:, start : start + 3] - np.asarray(target), axis=-1) <= CUBE_TOLERANCE)
    if targets.button_states:
        if button_states is None:
            raise ValueError(f"{targets.env} task {targets.task_id} needs button states")
        buttons = np.asarray(button_states)
        cols += [buttons[:, j] == state for j, state in enumerate(targets.button_states)]
    if targets.drawer_pos is not None:
        drawer_idx = QPOS_OBJECTS + len(targets.cube_xyzs) * QPOS_PER_CUBE + len(targets.button_states)
        cols.append(np.abs(qpos[:, drawer_idx] - targets.drawer_pos) <= SLIDER_TOLERANCE)
        cols.append(np.abs(qpos[:, drawer_idx + 1] - targets.window_pos) <= SLIDER_TOLERANCE)
    return np.stack(cols, axis=-1)


def relabel(targets: TaskTargets, qpos: np.ndarray, button_states: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(rewards r_t ∈ {−n..0}, terminals: task complete in s_t) for states s_t given by ``qpos`` rows."""
    ok = subgoal_successes(targets, qpos, button_states)
    rewards = ok.sum(axis=-1).astype(np.float64) - ok.shape[-1]
    return rewards, ok.all(axis=-1)
