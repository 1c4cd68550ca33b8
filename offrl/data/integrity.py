"""Checking a dataset's data file, so a damaged one is one clear error instead of an h5py traceback.

A truncated download, a file overwritten with something else, a flipped bit in
the HDF5 structure, or a file edited by another tool (a missing ``rewards``
array, one episode with the wrong shape, episodes missing) otherwise surfaces
as ``OSError`` / ``KeyError`` / a numpy concatenation error from deep inside
Minari or h5py. :func:`check_hdf5` walks the file's structure -- shapes only,
no data -- and names the file, the episode and what is wrong; :func:`reading`
turns whatever still goes wrong while reading the data into the same kind of
error. Flipped bits inside the numbers themselves are not detectable (HDF5
stores no checksums here); NaN/inf are caught by the loader's finiteness check.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np

from offrl.data.flatten import flat_dim
from offrl.data.store import broken_dataset_error
from offrl.errors import OfflineRLError

HDF5_FILE = "main_data.hdf5"
_STEP_KEYS = ("actions", "rewards", "terminations", "truncations")
#: What reading a damaged file raises from h5py, Minari or numpy.
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, AssertionError, AttributeError)


@contextlib.contextmanager
def reading(dataset_id: str, path: Path) -> Iterator[None]:
    """Turn a low-level read failure of ``path`` into the dataset's one clear error."""
    try:
        yield
    except OfflineRLError:
        raise
    except READ_ERRORS as e:
        raise broken_dataset_error(dataset_id, f"{path} could not be read ({type(e).__name__}: {e}).") from None


def _first_dims(node: Any) -> list[tuple[str, tuple[int, ...]]]:
    """(path, shape) of every array under an observation node (an array or a group of arrays)."""
    import h5py

    if isinstance(node, h5py.Dataset):
        return [(node.name, tuple(node.shape))]
    out: list[tuple[str, tuple[int, ...]]] = []
    for key in sorted(node):
        out += _first_dims(node[key])
    return out


def check_hdf5(
    dataset_id: str, data_dir: Path, total_episodes: int, observation_space: gym.Space, action_space: gym.Space
) -> None:
    """Check that ``main_data.hdf5`` opens and holds ``total_episodes`` well-formed episodes."""
    import h5py

    path = data_dir / HDF5_FILE
    if not path.is_file():
        raise broken_dataset_error(dataset_id, f"{path} is missing.")

    def fail(problem: str) -> OfflineRLError:
        return broken_dataset_error(dataset_id, f"{path}: {problem}.")

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise fail(f"not a readable HDF5 file -- truncated, overwritten or corrupt ({e})") from None
    act_dim = int(np.prod(action_space.shape)) if action_space.shape else 1
    try:
        flat_obs = flat_dim(observation_space)
    except TypeError:
        flat_obs = None
    with f, reading(dataset_id, path):
        names = set(f.keys())
        expected = [f"episode_{i}" for i in range(total_episodes)]
        missing = [n for n in expected if n not in names]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise fail(f"the metadata lists {total_episodes} episodes but {len(missing)} are missing ({shown})")
        extra = sorted(names - set(expected))
        if extra:
            raise fail(f"holds {len(extra)} episode(s) the metadata does not list ({', '.join(extra[:5])}); "
                       f"metadata total_episodes={total_episodes}")
        for name in expected:
            group = f[name]
            absent = [k for k in ("observations", *_STEP_KEYS) if k not in group]
            if absent:
                raise fail(f"{name} has no {', '.join(repr(k) for k in absent)}")
            T = group["actions"].shape[0] if group["actions"].shape else -1
            for key in _STEP_KEYS[1:]:
                shape = group[key].shape
                if len(shape) != 1 or shape[0] != T:
                    raise fail(f"{name}/{key} has shape {shape}, expected ({T},) like its actions")
            acts = group["actions"].shape
            if int(np.prod(acts[1:])) != act_dim:
                raise fail(f"{name}/actions has shape {acts}, expected ({T}, {act_dim}) for the action space {action_space}")
            obs_arrays = _first_dims(group["observations"])
            total = 0
            for obs_name, shape in obs_arrays:
                if not shape or shape[0] != T + 1:
                    raise fail(f"{obs_name} has shape {shape}, expected {T + 1} rows (one more than its {T} actions)")
                total += int(np.prod(shape[1:]))
            if flat_obs is not None and total != flat_obs:
                raise fail(f"{name}/observations have {total} numbers per step, expected {flat_obs} for the "
                           f"observation space {observation_space}")
