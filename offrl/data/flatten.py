"""Flattening of (possibly nested) dict observations into one float vector.

Goal-conditioned datasets (PointMaze, AntMaze) store dict observations. offrl
concatenates their leaves in **alphabetical key order**, recursively (PointMaze:
``achieved_goal`` (2), ``desired_goal`` (2), ``observation`` (4)). The same
function is used on dataset arrays and on live environment observations, so
training and evaluation always agree.
"""
from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np


def flatten_obs(obs: Any) -> np.ndarray:
    """[..., D] float array from an array or a (nested) dict of arrays with leading dims [...]."""
    if isinstance(obs, Mapping):
        parts = [flatten_obs(obs[k]) for k in sorted(obs)]
        return np.concatenate(parts, axis=-1)
    arr = np.asarray(obs)
    if arr.ndim == 0:
        arr = arr[None]
    return arr


def flat_dim(space: gym.Space) -> int:
    """Length of the vector :func:`flatten_obs` makes for one observation of ``space``."""
    if isinstance(space, gym.spaces.Dict):
        return sum(flat_dim(space[k]) for k in sorted(space.spaces))
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape)) if space.shape else 1
    if isinstance(space, gym.spaces.Discrete):
        return 1
    raise TypeError(f"unsupported observation space {space}")


def key_order(space: gym.Space, prefix: str = "") -> list[str]:
    """Human-readable leaf order, e.g. ['achieved_goal', 'desired_goal', 'observation']."""
    if isinstance(space, gym.spaces.Dict):
        out: list[str] = []
        for k in sorted(space.spaces):
            out += key_order(space[k], f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".") or "obs"]
