"""Load a Minari dataset into a flat, checked, preprocessed transition table.

:func:`load_offline_dataset` is the single entry point the trainer uses:
id -> local store (never downloading; a missing built-in dataset is made only
when that takes seconds, otherwise the error names ``offrl data make`` and its
cost) -> metadata and file checks (a damaged dataset is one clear error) ->
flattened transitions (terminals from ``terminations`` only) -> checks
(NaN/inf, shapes against the environment) -> preprocessing (rewards, action
rescaling and clipping, optional observation normalisation).

What evaluation needs travels with the result: the environment factory (or why
there is none), the primary metric and the ``info`` key carrying success, the
reference scores (or why no normalised score exists).
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from offrl.data.cache import cached
from offrl.data.evalenv import env_factory
from offrl.data.flatten import flat_dim, flatten_obs
from offrl.data.integrity import HDF5_FILE, check_hdf5, reading
from offrl.data.metadata import Declarations, check_metadata, metadata_path, read_metadata
from offrl.data.preprocess import (
    ActionScaler,
    ObsNormalizer,
    preprocess_rewards,
    resolve_reward_mode,
)
from offrl.data.store import (
    DatasetState,
    broken_dataset_error,
    dataset_state,
    is_builtin_id,
    missing_dataset_error,
    no_metadata_error,
    validate_id,
)
from offrl.data.transitions import TransitionArrays
from offrl.errors import DatasetError


@dataclass
class OfflineDataset:
    """A loaded dataset: transitions ready for training plus what evaluation needs.

    Evaluation reads: ``make_env`` (None: ``eval_unavailable`` says why),
    ``primary_metric`` (``normalized_score``, ``success_rate`` or ``return``),
    ``success_key`` (the ``info`` key whose value at an episode's last step says
    whether it succeeded, for ``success_rate``), ``normalized_score_100``
    (None: ``score_unavailable`` says why).
    """

    dataset_id: str
    arrays: TransitionArrays  # preprocessed: normalised obs, unit actions, preprocessed rewards
    observation_space: gym.Space
    action_space: gym.spaces.Box
    action_scaler: ActionScaler
    obs_normalizer: ObsNormalizer
    reward_mode: str
    ref_min_score: float | None
    ref_max_score: float | None
    make_env: Callable[[], gym.Env] | None  # evaluation environment factory (None: see eval_unavailable)
    metadata: dict[str, Any] = field(default_factory=dict)
    reward_mode_source: str = "data.reward"  # "data.reward", "dataset metadata" or "dataset id"
    primary_metric: str = "normalized_score"  # "normalized_score", "success_rate" or "return"
    success_key: str | None = None  # info key carrying success (set when primary_metric is success_rate)
    success_timing: str | None = None  # "pre"/"post": success from the state before/after the action
    eval_episode_steps: int | None = None  # evaluation horizon declared by the dataset
    eval_unavailable: str | None = None  # why make_env is None (shown by the trainer)
    score_unavailable: str | None = None  # why normalized_score_100 returns None

    @property
    def obs_dim(self) -> int:
        return int(self.arrays.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.arrays.actions.shape[1])

    def normalized_score_100(self, returns: np.ndarray) -> np.ndarray | None:
        """D4RL normalised score on the 0–100 scale, or None (``score_unavailable`` says why)."""
        if self.score_unavailable is not None or self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (np.asarray(returns) - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


def score_unavailable_reason(ref_min: float | None, ref_max: float | None, primary_metric: str | None) -> str | None:
    """Why no normalised score can be computed, or None when it can."""
    if ref_min is None or ref_max is None:
        if primary_metric == "success_rate":
            return "the dataset's metric is the success rate; it has no reference scores"
        return "the dataset's metadata has no ref_min_score/ref_max_score"
    if ref_min == ref_max:
        return (
            f"ref_min_score == ref_max_score == {ref_min:g}, so 100·(R − min)/(max − min) is undefined; "
            "returns are reported instead"
        )
    return None


def _make_on_first_use(dataset_id: str) -> bool:
    """Make a missing built-in dataset that takes seconds (the bandit), with a notice; False for the others."""
    from offrl.datagen.builtins import BUILTIN_DATASETS, ensure_dataset

    if dataset_id not in BUILTIN_DATASETS or not BUILTIN_DATASETS.get(dataset_id).made_on_first_use:
        return False
    spec = BUILTIN_DATASETS.get(dataset_id)
    print(f"Making built-in dataset '{dataset_id}' on first use ({spec.cost}) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    ensure_dataset(dataset_id)
    print(f"Made '{dataset_id}' in {time.perf_counter() - start:.1f} s.", file=sys.stderr, flush=True)
    return True


def read_minari(dataset_id: str, make_missing: bool = True) -> Any:
    """Open a local Minari dataset after checking its metadata; never download.

    A missing built-in dataset is made here only when it takes seconds
    (``made_on_first_use``); otherwise the error names ``offrl data make`` and its cost.
    """
    return open_dataset(dataset_id, make_missing)[0]


def open_dataset(dataset_id: str, make_missing: bool = True) -> tuple[Any, dict[str, Any], Declarations]:
    """(Minari dataset, raw metadata, checked declarations); every failure is a :class:`DatasetError`."""
    validate_id(dataset_id)
    state = dataset_state(dataset_id)
    if state is DatasetState.NO_METADATA:
        raise no_metadata_error(dataset_id)
    if state is DatasetState.MISSING:
        if not (make_missing and is_builtin_id(dataset_id) and _make_on_first_use(dataset_id)):
            raise missing_dataset_error(dataset_id)
    meta = read_metadata(dataset_id)
    decl = check_metadata(dataset_id, meta)
    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = minari.load_dataset(dataset_id)
        except DatasetError:
            raise
        except Exception as e:  # unparsable spaces or specs, unsupported Minari version
            raise broken_dataset_error(
                dataset_id, f"Minari cannot open it ({type(e).__name__}: {e}); check {metadata_path(dataset_id)}."
            ) from None
    return ds, meta, decl


def _flags(values: Any, name: str, episode: int, dataset_id: str, T: int) -> np.ndarray:
    """An episode's terminations or truncations as booleans; anything but 0/1 (0.5, 2, NaN) is refused, never
    rounded to "terminal"."""
    raw = np.asarray(values)
    if raw.shape not in ((T,), (T, 1)):
        raise DatasetError(f"Dataset '{dataset_id}': episode {episode} has {name} of shape {raw.shape}, expected ({T},).")
    if raw.dtype != bool:
        ok = np.isin(raw, (0, 1)) if np.issubdtype(raw.dtype, np.number) else np.zeros(raw.shape, bool)
        if not ok.all():
            first = int(np.flatnonzero(~ok.reshape(-1))[0])
            raise DatasetError(f"Dataset '{dataset_id}': episode {episode} has {name} that are not booleans "
                               f"({raw.reshape(-1)[first].item()!r} at step {first}); {name} must be true/false "
                               "(or 0/1).")
    return raw.astype(bool).reshape(T)


def flatten_episodes(ds: Any) -> TransitionArrays:
    """Concatenate all episodes into transitions (obs has T+1 entries per episode).

    Refused: terminations or truncations that are not booleans, actions that are not one flat vector per step.
    Episodes without a transition are skipped, with a warning (they hold nothing to learn from)."""
    obs, nobs, acts, rews, terms, truncs, starts, returns = [], [], [], [], [], [], [], []
    n = empty = 0
    dataset_id = ds.spec.dataset_id
    for i, ep in enumerate(ds.iterate_episodes()):
        T = len(ep.rewards)
        if T == 0:
            empty += 1
            continue
        o = flatten_obs(ep.observations).reshape(T + 1, -1)
        a = np.asarray(ep.actions, np.float64)
        if a.ndim != 2 or a.shape[0] != T:
            raise DatasetError(f"Dataset '{dataset_id}': episode {i} has actions of shape {a.shape}; offrl needs one "
                               f"flat action vector per step ({T}, action size).")
        obs.append(o[:-1])
        nobs.append(o[1:])
        acts.append(a)
        rews.append(np.asarray(ep.rewards, np.float64).reshape(T))
        terms.append(_flags(ep.terminations, "terminations", i, dataset_id, T))
        truncs.append(_flags(ep.truncations, "truncations", i, dataset_id, T))
        starts.append(n)
        returns.append(float(np.sum(ep.rewards)))
        n += T
    if n == 0:
        raise DatasetError(f"Dataset '{dataset_id}' holds no transitions.")
    if empty:
        print(f"warning: dataset '{dataset_id}': skipped {empty} episode{'s' if empty != 1 else ''} without a "
              "transition.", file=sys.stderr, flush=True)
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


#: Dataset actions may lie outside the action space by this fraction of its half-width (float rounding of
#: recorded actions); beyond it they are clipped with a warning, and beyond FAR_OUTSIDE the dataset is refused.
OUTSIDE_TOLERANCE = 1e-3
FAR_OUTSIDE = 0.5


def check_action_bounds(unit: np.ndarray, arrays: TransitionArrays, dataset_id: str, act_space: Any) -> None:
    """Actions rescaled to [−1, 1] by the action space: far outside it means the space is wrong (refused, never
    trained on clipped garbage); slightly outside is clipped, and said."""
    excess = np.abs(unit).max(axis=1) - 1.0
    worst = int(np.argmax(excess))
    if excess[worst] > FAR_OUTSIDE:
        episode = int(np.searchsorted(arrays.episode_starts, worst, side="right") - 1)
        raise DatasetError(
            f"Dataset '{dataset_id}' has actions far outside its action space {act_space} (e.g. "
            f"{np.round(arrays.actions[worst], 4).tolist()} at transition {worst}, episode {episode}); its action "
            "space does not describe its actions. Fix the dataset's action_space.")
    outside = int((excess > OUTSIDE_TOLERANCE).sum())
    if outside:
        print(f"warning: dataset '{dataset_id}': {outside} actions lie outside the action space by up to "
              f"{float(excess.max()):.1%} of its half-width; they are clipped to it.", file=sys.stderr, flush=True)


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


def read_transitions(ds: Any, dataset_id: str, meta: dict[str, Any], decl: Declarations) -> TransitionArrays:
    """The flattened transitions: from the cache, or from the dataset's file after checking its structure."""
    data_dir = Path(ds.spec.data_path)

    def build() -> TransitionArrays:
        if meta.get("data_format", "hdf5") == "hdf5":
            check_hdf5(dataset_id, data_dir, decl.total_episodes, ds.spec.observation_space, ds.spec.action_space)
            where = data_dir / HDF5_FILE
        else:  # Minari's arrow format: no structural check, read errors are still translated
            where = data_dir
        with reading(dataset_id, where):
            return flatten_episodes(ds)

    return cached(data_dir, build)


def load_offline_dataset(
    dataset_id: str,
    reward: str = "auto",
    normalize_obs: bool = False,
    action_clip_eps: float = 1e-5,
    obs_normalizer: ObsNormalizer | None = None,
    check_env: bool = True,
    eval_env: str = "",
) -> OfflineDataset:
    """Load, check and preprocess ``dataset_id`` (see module docstring).

    ``reward='auto'`` applies the dataset's declared reward mode (metadata
    ``offrl_reward_mode``), else one guessed from the id. ``obs_normalizer``
    reuses saved statistics (on resume) instead of refitting. ``eval_env`` (``eval.env``): a registered
    gymnasium id to evaluate in instead of the dataset's recorded environment (its spaces are checked).
    """
    ds, meta, decl = open_dataset(dataset_id)
    arrays = read_transitions(ds, dataset_id, meta, decl)
    check_finite(arrays, dataset_id)
    obs_space, act_space = ds.spec.observation_space, ds.spec.action_space
    if not isinstance(act_space, gym.spaces.Box):
        raise DatasetError(f"Dataset '{dataset_id}' has a {type(act_space).__name__} action space; offrl needs continuous (Box) actions.")
    if len(act_space.shape) != 1:
        raise DatasetError(f"Dataset '{dataset_id}' has actions of shape {act_space.shape}; offrl needs a flat (1-D) "
                           "Box action space.")
    check_shapes(arrays, obs_space, act_space, dataset_id, "dataset's")
    make_env, eval_unavailable = env_factory(ds, meta)
    if eval_env:
        from offrl.data.evalenv import checked_env_factory

        make_env, eval_unavailable = checked_env_factory(
            eval_env, flat_dim(obs_space), act_space.low, act_space.high, f"dataset '{dataset_id}'"), None
    elif make_env is not None and check_env:
        env = make_env()
        try:
            check_shapes(arrays, env.observation_space, env.action_space, dataset_id, "environment's")
        finally:
            env.close()

    low = np.asarray(act_space.low, np.float64).reshape(-1)
    high = np.asarray(act_space.high, np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise DatasetError(f"Dataset '{dataset_id}' has unbounded actions ({act_space}); offrl needs finite bounds.")
    if not np.all(low < high):
        raise DatasetError(f"Dataset '{dataset_id}' has empty or inverted action bounds (low {low}, high {high}).")
    scaler = ActionScaler(low, high)
    limit = 1.0 - action_clip_eps
    unit = scaler.to_unit(arrays.actions)
    check_action_bounds(unit, arrays, dataset_id, act_space)
    arrays.actions = np.clip(unit, -limit, limit).astype(np.float32)

    mode = resolve_reward_mode(reward, dataset_id, declared=decl.reward_mode)
    source = "data.reward" if reward != "auto" else ("dataset metadata" if decl.reward_mode else "dataset id")
    arrays.rewards = preprocess_rewards(arrays.rewards, arrays.episode_returns, mode).astype(np.float32)

    if obs_normalizer is not None and obs_normalizer.mean.size != arrays.observations.shape[1]:
        raise DatasetError(f"The observation statistics saved with the run (obs_stats.json) hold "
                           f"{obs_normalizer.mean.size} values, but '{dataset_id}' has {arrays.observations.shape[1]} "
                           "observation values: the file comes from another run. Restore it, or start a new run.")
    if obs_normalizer is None:
        obs_normalizer = (
            ObsNormalizer.fit(arrays.observations) if normalize_obs else ObsNormalizer.identity(arrays.observations.shape[1])
        )
    arrays.observations = obs_normalizer(arrays.observations)
    arrays.next_observations = obs_normalizer(arrays.next_observations)

    score_unavailable = score_unavailable_reason(decl.ref_min_score, decl.ref_max_score, decl.primary_metric)
    primary = decl.primary_metric or ("normalized_score" if score_unavailable is None else "return")
    return OfflineDataset(
        dataset_id=dataset_id,
        arrays=arrays,
        observation_space=obs_space,
        action_space=act_space,
        action_scaler=scaler,
        obs_normalizer=obs_normalizer,
        reward_mode=mode,
        ref_min_score=decl.ref_min_score,
        ref_max_score=decl.ref_max_score,
        make_env=make_env,
        metadata=meta,
        reward_mode_source=source,
        primary_metric=primary,
        success_key=decl.success_key,
        success_timing=decl.success_timing,
        eval_episode_steps=decl.eval_episode_steps,
        eval_unavailable=eval_unavailable,
        score_unavailable=score_unavailable,
    )
