"""Load a Minari dataset into a flat, checked, preprocessed transition table.

:func:`load_offline_dataset` is the single entry point the trainer uses:
id -> local store (making a missing built-in dataset, never downloading) ->
flattened transitions (terminals from ``terminations`` only) -> checks (NaN/inf,
shapes against the environment) -> preprocessing (rewards, action rescaling
and clipping, optional observation normalisation).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from offrl.data.builtin import BUILTIN_DATASETS
from offrl.data.cache import cached
from offrl.data.flatten import flat_dim, flatten_obs
from offrl.data.preprocess import (
    ActionScaler,
    ObsNormalizer,
    preprocess_rewards,
    resolve_reward_mode,
)
from offrl.data.store import is_local, missing_dataset_error, validate_id
from offrl.data.transitions import TransitionArrays
from offrl.errors import DatasetError


@dataclass
class OfflineDataset:
    """A loaded dataset: transitions ready for training plus what evaluation needs."""

    dataset_id: str
    arrays: TransitionArrays  # preprocessed: normalised obs, unit actions, preprocessed rewards
    observation_space: gym.Space
    action_space: gym.spaces.Box
    action_scaler: ActionScaler
    obs_normalizer: ObsNormalizer
    reward_mode: str
    ref_min_score: float | None
    ref_max_score: float | None
    make_env: Callable[[], gym.Env] | None  # evaluation environment factory (None: not recoverable)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.arrays.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.arrays.actions.shape[1])

    def normalized_score_100(self, returns: np.ndarray) -> np.ndarray | None:
        """D4RL normalised score on the 0–100 scale, or None without reference scores."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (np.asarray(returns) - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


def read_minari(dataset_id: str, make_missing: bool = True) -> Any:
    """Open a local Minari dataset; build a missing built-in one; never download."""
    validate_id(dataset_id)
    if not is_local(dataset_id):
        if make_missing and dataset_id in BUILTIN_DATASETS:
            from offrl.data.writer import ensure_dataset

            ensure_dataset(dataset_id)
        else:
            raise missing_dataset_error(dataset_id)
    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return minari.load_dataset(dataset_id)
        except Exception as e:  # corrupt files, version mismatch
            raise DatasetError(f"Could not read dataset '{dataset_id}': {e}") from None


def flatten_episodes(ds: Any) -> TransitionArrays:
    """Concatenate all episodes into transitions (obs has T+1 entries per episode)."""
    obs, nobs, acts, rews, terms, truncs, starts, returns = [], [], [], [], [], [], [], []
    n = 0
    for ep in ds.iterate_episodes():
        o = flatten_obs(ep.observations).reshape(len(ep.rewards) + 1, -1)
        T = len(ep.rewards)
        obs.append(o[:-1])
        nobs.append(o[1:])
        acts.append(np.asarray(ep.actions, np.float64).reshape(T, -1))
        rews.append(np.asarray(ep.rewards, np.float64).reshape(T))
        terms.append(np.asarray(ep.terminations, bool).reshape(T))
        truncs.append(np.asarray(ep.truncations, bool).reshape(T))
        starts.append(n)
        returns.append(float(np.sum(ep.rewards)))
        n += T
    if n == 0:
        raise DatasetError(f"Dataset '{ds.spec.dataset_id}' holds no transitions.")
    return TransitionArrays(
        observations=np.concatenate(obs).astype(np.float64),
        actions=np.concatenate(acts),
        rewards=np.concatenate(rews),
        next_observations=np.concatenate(nobs).astype(np.float64),
        terminals=np.concatenate(terms).astype(np.float32),
        timeouts=np.concatenate(truncs),
        episode_starts=np.asarray(starts, np.int64),
        episode_returns=np.asarray(returns, np.float64),
    )


def check_finite(arrays: TransitionArrays, dataset_id: str) -> None:
    """Fail with counts and first locations if any field holds NaN or inf."""
    problems = []
    for name in ("observations", "actions", "rewards", "next_observations"):
        x = getattr(arrays, name)
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            episode = np.searchsorted(arrays.episode_starts, rows[0], side="right") - 1
            problems.append(
                f"{name}: {int(bad.sum())} non-finite values in {len(rows)} transitions "
                f"(first at transition {int(rows[0])}, episode {int(episode)}, "
                f"step {int(rows[0] - arrays.episode_starts[episode])})"
            )
    if problems:
        raise DatasetError(f"Dataset '{dataset_id}' contains NaN/inf: " + "; ".join(problems) + ".")


def check_shapes(arrays: TransitionArrays, obs_space: gym.Space, act_space: gym.Space, dataset_id: str, what: str) -> None:
    """Dataset arrays must match the (environment's) spaces: a mismatch is a broken dataset."""
    obs_dim = flat_dim(obs_space)
    act_dim = int(np.prod(act_space.shape))
    if arrays.observations.shape[1] != obs_dim:
        raise DatasetError(
            f"Dataset '{dataset_id}' has observations of size {arrays.observations.shape[1]} but its "
            f"{what} observation space {obs_space} has size {obs_dim}."
        )
    if arrays.actions.shape[1] != act_dim:
        raise DatasetError(
            f"Dataset '{dataset_id}' has actions of size {arrays.actions.shape[1]} but its "
            f"{what} action space {act_space} has size {act_dim}."
        )


def _env_factory(ds: Any) -> Callable[[], gym.Env] | None:
    """A factory for the evaluation environment recorded in the dataset, or None."""
    spec = ds.spec
    # Minari keeps the eval env spec on the dataset (``_eval_env_spec``), not on ``ds.spec``.
    if getattr(ds, "_eval_env_spec", None) is None and getattr(spec, "env_spec", None) is None:
        return None

    def make() -> gym.Env:
        import offrl.envs.bandit  # noqa: F401  (registers offrl's own environments)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return ds.recover_environment(eval_env=True)
            except gym.error.Error:
                _register_robotics(spec.dataset_id)  # maze ids live in gymnasium-robotics
                try:
                    return ds.recover_environment(eval_env=True)
                except Exception as e:
                    raise DatasetError(f"Could not create the evaluation environment of '{spec.dataset_id}': {e}") from None
            except Exception as e:
                raise DatasetError(f"Could not create the evaluation environment of '{spec.dataset_id}': {e}") from None

    return make


def _register_robotics(dataset_id: str) -> None:
    """Register gymnasium-robotics' environments (PointMaze, AntMaze), or name the extra."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics  # prints an unrelated Adroit notice on import
    except ImportError:
        raise DatasetError(
            f"Evaluating '{dataset_id}' needs gymnasium-robotics: `pip install 'offrl[maze]'`."
        ) from None
    gym.register_envs(gymnasium_robotics)


def load_offline_dataset(
    dataset_id: str,
    reward: str = "auto",
    normalize_obs: bool = False,
    action_clip_eps: float = 1e-5,
    obs_normalizer: ObsNormalizer | None = None,
    check_env: bool = True,
) -> OfflineDataset:
    """Load, check and preprocess ``dataset_id`` (see module docstring).

    ``obs_normalizer`` reuses saved statistics (on resume) instead of refitting.
    """
    ds = read_minari(dataset_id)
    arrays = cached(Path(ds.spec.data_path), lambda: flatten_episodes(ds))
    check_finite(arrays, dataset_id)
    obs_space, act_space = ds.spec.observation_space, ds.spec.action_space
    if not isinstance(act_space, gym.spaces.Box):
        raise DatasetError(f"Dataset '{dataset_id}' has a {type(act_space).__name__} action space; offrl needs continuous (Box) actions.")
    check_shapes(arrays, obs_space, act_space, dataset_id, "dataset's")
    make_env = _env_factory(ds)
    if make_env is not None and check_env:
        env = make_env()
        try:
            check_shapes(arrays, env.observation_space, env.action_space, dataset_id, "environment's")
        finally:
            env.close()

    low = np.asarray(act_space.low, np.float64).reshape(-1)
    high = np.asarray(act_space.high, np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise DatasetError(f"Dataset '{dataset_id}' has unbounded actions ({act_space}); offrl needs finite bounds.")
    scaler = ActionScaler(low, high)
    limit = 1.0 - action_clip_eps
    arrays.actions = np.clip(scaler.to_unit(arrays.actions), -limit, limit).astype(np.float32)

    mode = resolve_reward_mode(reward, dataset_id)
    arrays.rewards = preprocess_rewards(arrays.rewards, arrays.episode_returns, mode).astype(np.float32)

    if obs_normalizer is None:
        obs_normalizer = (
            ObsNormalizer.fit(arrays.observations) if normalize_obs else ObsNormalizer.identity(arrays.observations.shape[1])
        )
    arrays.observations = obs_normalizer(arrays.observations)
    arrays.next_observations = obs_normalizer(arrays.next_observations)

    meta = dict(ds.storage.metadata)
    ref_min, ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
    return OfflineDataset(
        dataset_id=dataset_id,
        arrays=arrays,
        observation_space=obs_space,
        action_space=act_space,
        action_scaler=scaler,
        obs_normalizer=obs_normalizer,
        reward_mode=mode,
        ref_min_score=None if ref_min is None else float(ref_min),
        ref_max_score=None if ref_max is None else float(ref_max),
        make_env=make_env,
        metadata=meta,
    )
