"""Bring your own data: flat arrays (D4RL or OGBench layout) written as a local Minari dataset.

``offrl data import FILE --id NAME/...-v0`` and :func:`offrl.data.from_arrays`
cut the arrays into episodes (:mod:`offrl.data.arrays`), then write them with
the same atomic writer the built-in recipes use, so the result is an ordinary
dataset of the store: ``offrl run --dataset``, ``data info``, the cache, the
checks and the evaluation all treat it like any other.

What the metadata records: the environment (``--env ENV_ID``: its spec is the
dataset's evaluation environment, its action bounds the action space), the
reference scores (``--ref-min`` / ``--ref-max``: the D4RL-normalised score),
and ``offrl_import`` — the source file, the layout and what the cutting did.
Without an environment the dataset trains (evaluation is skipped, or given at
run time with ``offrl run --eval-env ENV_ID``); without reference scores runs
report raw returns.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from offrl.data.arrays import Recovered, read_arrays, recover_episodes
from offrl.errors import DatasetError

#: The metadata key describing where an imported dataset came from.
IMPORT_KEY = "offrl_import"


def _action_space(rec: Recovered, env: gym.Env | None) -> tuple[gym.spaces.Box, str]:
    """The dataset's action space and where its bounds come from."""
    acts = np.concatenate([e.actions for e in rec.episodes])
    if env is not None:
        space = env.action_space
        if not isinstance(space, gym.spaces.Box) or int(np.prod(space.shape)) != acts.shape[1]:
            raise DatasetError(f"The environment '{env.spec.id if env.spec else env}' does not match the data: its "
                               f"action space is {space}, the data's actions are {acts.shape[1]} continuous values.")
        return gym.spaces.Box(np.asarray(space.low, np.float32), np.asarray(space.high, np.float32),
                              dtype=np.float32), "the environment's action space"
    lo, hi = acts.min(0), acts.max(0)
    if lo.min() >= -1.0 - 1e-6 and hi.max() <= 1.0 + 1e-6:
        return gym.spaces.Box(-1.0, 1.0, (acts.shape[1],), np.float32), "[-1, 1] (every action lies inside)"
    lo, hi = lo.copy(), hi.copy()
    flat = hi - lo < 1e-6
    lo[flat], hi[flat] = lo[flat] - 1.0, hi[flat] + 1.0
    return (gym.spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32),
            "the data's per-dimension min and max (no environment was given; pass --env for its bounds)")


def _check_refs(ref_min: float | None, ref_max: float | None) -> None:
    if (ref_min is None) != (ref_max is None):
        raise DatasetError("Give both reference scores (--ref-min and --ref-max: the returns that score 0 and 100) "
                           "or neither.")
    for name, v in (("ref-min", ref_min), ("ref-max", ref_max)):
        if v is not None and not math.isfinite(v):
            raise DatasetError(f"--{name} must be a finite number, got {v}.")
    if ref_min is not None and ref_min == ref_max:
        raise DatasetError(f"--ref-min and --ref-max are both {ref_min}: the normalised score 100·(R − min)/(max − "
                           "min) would be undefined.")


def write_recovered(dataset_id: str, rec: Recovered, *, env_id: str | None = None, ref_min_score: float | None = None,
                    ref_max_score: float | None = None, source: str = "arrays", description: str = "",
                    replace: bool = False) -> dict[str, Any]:
    """Write recovered episodes as ``dataset_id``; return what was written (the import summary)."""
    from offrl.data.store import is_builtin_id, validate_id
    from offrl.datagen.writer import dataset_lock, episode_buffer, write_minari_dataset

    validate_id(dataset_id)
    if is_builtin_id(dataset_id):
        raise DatasetError(f"'{dataset_id}' is in the offrl/ namespace, which is reserved for offrl's built-in "
                           "datasets: give your dataset another namespace, e.g. 'mine/" +
                           dataset_id.split("/", 1)[-1] + "'.")
    _check_refs(ref_min_score, ref_max_score)
    obs_dim = rec.episodes[0].observations.shape[1]
    env = None
    if env_id:
        from offrl.data.evalenv import GymEnvFactory, env_space_mismatch

        env = GymEnvFactory(env_id)()
    try:
        act_space, bounds_from = _action_space(rec, env)
        if env is not None:
            why = env_space_mismatch(env, obs_dim, act_space.low, act_space.high)
            if why:
                raise DatasetError(f"The environment '{env_id}' does not match the data of {source}: {why}.")
        acts = np.concatenate([e.actions for e in rec.episodes])
        unit = 2.0 * (acts - act_space.low) / (act_space.high - act_space.low) - 1.0
        if np.abs(unit).max() > 1.0 + 1e-3:
            worst = np.unravel_index(int(np.argmax(np.abs(unit))), unit.shape)
            raise DatasetError(f"The actions of {source} lie outside the action space {act_space} (e.g. "
                               f"{acts[worst[0]].round(4).tolist()}); is '{env_id}' the environment of this data?")
        obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        buffers = [episode_buffer(e.observations.astype(np.float32), e.actions, e.rewards, e.terminations,
                                  e.truncations) for e in rec.episodes]
        summary = {"source": source, **rec.summary(), "action_bounds": bounds_from,
                   "env": env_id or None, "obs_dim": obs_dim, "act_dim": int(act_space.shape[0])}
        extra: dict[str, Any] = {IMPORT_KEY: summary}
        if ref_min_score is not None:  # Minari keeps reference scores only with an environment: set them here
            extra.update(ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score))
        spec = env.spec if env is not None else None
        with dataset_lock(dataset_id):
            path = write_minari_dataset(
                dataset_id, buffers, env=spec, eval_env=spec, observation_space=obs_space, action_space=act_space,
                algorithm_name="imported", description=description or f"imported from {source}",
                extra_metadata=extra, replace=replace)
    except FileExistsError:
        raise DatasetError(f"'{dataset_id}' is already in the local store; add --force (Python: replace=True) to "
                           "replace it.") from None
    finally:
        if env is not None:
            env.close()
    return {"dataset_id": dataset_id, "path": str(path), **summary,
            "ref_min_score": ref_min_score, "ref_max_score": ref_max_score}


def from_arrays(dataset_id: str, observations: Any, actions: Any, rewards: Any, terminals: Any,
                timeouts: Any = None, next_observations: Any = None, *, layout: str = "d4rl",
                masks: Any = None, valids: Any = None, env: str | None = None, ref_min_score: float | None = None,
                ref_max_score: float | None = None, replace: bool = False, description: str = "") -> dict[str, Any]:
    """Write arrays as the local dataset ``dataset_id`` (then ``offrl run --dataset ID`` trains on it).

    ``layout="d4rl"``: ``terminals`` are true terminal states, ``timeouts`` time-limit cuts;
    ``layout="ogbench"``: ``terminals`` end trajectories, ``masks`` = 0 at terminal states (see
    :mod:`offrl.data.arrays`). ``env``: a registered gymnasium id, the dataset's evaluation environment.
    Returns the import summary (episodes, terminations, truncations, dropped transitions, ...).
    """
    arrays = {k: v for k, v in dict(observations=observations, actions=actions, rewards=rewards, terminals=terminals,
                                    timeouts=timeouts, next_observations=next_observations, masks=masks,
                                    valids=valids).items() if v is not None}
    rec = recover_episodes(arrays, layout, "the arrays")
    return write_recovered(dataset_id, rec, env_id=env, ref_min_score=ref_min_score, ref_max_score=ref_max_score,
                           source="arrays (offrl.data.from_arrays)", description=description, replace=replace)


def import_file(path: str | Path, dataset_id: str, *, layout: str = "auto", env: str | None = None,
                ref_min_score: float | None = None, ref_max_score: float | None = None,
                replace: bool = False) -> dict[str, Any]:
    """``offrl data import``: read ``path`` (.npz, .hdf5/.h5, or a folder), cut episodes, write ``dataset_id``."""
    arrays, file_ends = read_arrays(path)
    rec = recover_episodes(arrays, layout, str(path), file_ends)
    if rec.ignored_keys:
        print(f"note: {path}: keys not used: {', '.join(rec.ignored_keys)}", file=sys.stderr, flush=True)
    return write_recovered(dataset_id, rec, env_id=env, ref_min_score=ref_min_score, ref_max_score=ref_max_score,
                           source=str(path), replace=replace)

