"""Named preprocessing options with the papers' defaults.

- Rewards: ``locomotion`` (r · 1000 / (R_max − R_min), per-episode returns R,
  IQL for MuJoCo), ``antmaze`` (r − 1, IQL for AntMaze), ``none``, or ``auto``:
  the mode the dataset declares in its metadata (``offrl_reward_mode``; e.g.
  OGBench's single-task datasets declare ``none``: their rewards are already
  OGBench's −k…0), else one guessed from the dataset id (see
  :func:`resolve_reward_mode`).
- Actions: rescaled from the environment bounds to [−1, 1] (the tanh mean and
  the diffusion clip assume unit bounds) and clipped to ±(1 − eps).
- Observations: optional normalisation by dataset mean/std; the statistics are
  saved with the run and applied at evaluation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from offrl.errors import ConfigError, unknown

REWARD_MODES = ("auto", "none", "locomotion", "antmaze")

_LOCOMOTION = re.compile(r"(hopper|halfcheetah|half_cheetah|walker2d|walker|humanoid|swimmer|(?<!anti)\bant\b)")


def resolve_reward_mode(mode: str, dataset_id: str, declared: str | None = None) -> str:
    """``auto`` -> the dataset's ``declared`` mode if any; else ``antmaze`` for AntMaze ids,
    ``locomotion`` for MuJoCo locomotion ids, ``none`` otherwise (datasets that predate the
    declaration, and datasets from other tools)."""
    if mode not in REWARD_MODES:
        raise unknown("reward preprocessing (data.reward)", mode, REWARD_MODES)
    if mode != "auto":
        return mode
    if declared is not None:
        if declared not in REWARD_MODES[1:]:
            raise unknown("declared reward mode (metadata offrl_reward_mode)", declared, REWARD_MODES[1:])
        return declared
    lowered = dataset_id.lower()
    if "antmaze" in lowered:
        return "antmaze"
    if _LOCOMOTION.search(lowered.replace("/", " ").replace("-", " ")):
        return "locomotion"
    return "none"


def preprocess_rewards(rewards: np.ndarray, episode_returns: np.ndarray, mode: str) -> np.ndarray:
    """Apply a resolved reward mode (``none``, ``locomotion`` or ``antmaze``)."""
    if mode == "none":
        return rewards
    if mode == "antmaze":
        return rewards - 1.0
    if mode == "locomotion":
        spread = float(episode_returns.max() - episode_returns.min()) if len(episode_returns) else 0.0
        if spread <= 0:
            raise ConfigError(
                "data.reward=locomotion needs episodes with different returns (R_max − R_min > 0); "
                "this dataset's returns are all equal. Use data.reward=none."
            )
        return rewards * (1000.0 / spread)
    raise unknown("reward preprocessing (data.reward)", mode, REWARD_MODES[1:])


@dataclass(frozen=True)
class ActionScaler:
    """Affine map between environment action bounds [low, high] and [−1, 1]."""

    low: np.ndarray
    high: np.ndarray

    def to_unit(self, actions: np.ndarray) -> np.ndarray:
        return 2.0 * (actions - self.low) / (self.high - self.low) - 1.0

    def to_env(self, unit: np.ndarray) -> np.ndarray:
        return self.low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)


@dataclass(frozen=True)
class ObsNormalizer:
    """(obs − mean) / std with IQL's epsilon; identity when disabled."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, observations: np.ndarray, eps: float = 1e-3) -> "ObsNormalizer":
        return cls(observations.mean(0).astype(np.float32), (observations.std(0) + eps).astype(np.float32))

    @classmethod
    def identity(cls, dim: int) -> "ObsNormalizer":
        return cls(np.zeros(dim, np.float32), np.ones(dim, np.float32))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]], size: int | None = None) -> "ObsNormalizer":
        """Statistics read back from a file; ``ValueError`` saying what is wrong when they are not ``size``
        finite means and positive finite stds (a damaged or foreign ``obs_stats.json`` or policy file)."""
        try:
            mean, std = np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64)
        except (KeyError, TypeError, ValueError):
            raise ValueError("it needs 'mean' and 'std' lists of numbers") from None
        if mean.ndim != 1 or mean.shape != std.shape or mean.size == 0:
            raise ValueError(f"'mean' and 'std' must be lists of equal length, got shapes {mean.shape} and {std.shape}")
        if size is not None and mean.size != size:
            raise ValueError(f"it holds statistics of {mean.size} observation values, the data has {size}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("its means must be finite and its stds finite and positive")
        return cls(mean.astype(np.float32), std.astype(np.float32))
