"""A dataset's ``metadata.json``: read it, check it, and what offrl's own keys declare.

Minari's keys (``total_episodes``, ``ref_min_score``, ...) and offrl's
declarations are checked here once, so a broken value is one clear error naming
the file, the key and the value -- not a ``ValueError`` deep inside Minari or a
crash while formatting ``offrl data list``.

offrl's declarations (all optional; datasets from other tools have none):

======================  ====================================================================
key                     meaning
======================  ====================================================================
``offrl_reward_mode``   reward preprocessing that ``data.reward=auto`` applies (``none``,
                        ``locomotion``, ``antmaze``); without it ``auto`` guesses from the id.
``offrl_primary_metric`` what evaluation reports first: ``normalized_score`` (D4RL scale,
                        needs reference scores), ``success_rate``, or ``return``.
``offrl_success_key``   the ``info`` key that carries per-step success (e.g. ``"success"``);
                        required when the primary metric is ``success_rate``.
``offrl_success_timing`` ``pre`` / ``post``: whether the evaluation env computes success from
                        the state before or after the action (OGBench's ``success_timing``).
``offrl_eval_episode_steps`` the evaluation horizon (also in the eval env spec).
``offrl_recipe``        how offrl made the dataset (recipe, seed, budget, offrl version, ...).
======================  ====================================================================
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from offrl.data.store import (
    DatasetState,
    broken_dataset_error,
    dataset_dir,
    dataset_state,
    missing_dataset_error,
    no_metadata_error,
)

REWARD_MODE = "offrl_reward_mode"
PRIMARY_METRIC = "offrl_primary_metric"
SUCCESS_KEY = "offrl_success_key"
SUCCESS_TIMING = "offrl_success_timing"
EVAL_EPISODE_STEPS = "offrl_eval_episode_steps"
RECIPE = "offrl_recipe"

PRIMARY_METRICS = ("normalized_score", "success_rate", "return")
SUCCESS_TIMINGS = ("pre", "post")
DECLARED_REWARD_MODES = ("none", "locomotion", "antmaze")


@dataclass(frozen=True)
class Declarations:
    """The checked values of a dataset's metadata that offrl uses."""

    total_episodes: int
    total_steps: int
    ref_min_score: float | None
    ref_max_score: float | None
    reward_mode: str | None
    primary_metric: str | None
    success_key: str | None
    success_timing: str | None
    eval_episode_steps: int | None


def metadata_path(dataset_id: str) -> Any:
    return dataset_dir(dataset_id) / "data" / "metadata.json"


def read_metadata(dataset_id: str) -> dict[str, Any]:
    """The raw ``metadata.json`` of a local dataset (cheap: no HDF5 access), or a clear error."""
    state = dataset_state(dataset_id)
    if state is DatasetState.MISSING:
        raise missing_dataset_error(dataset_id)
    if state is DatasetState.NO_METADATA:
        raise no_metadata_error(dataset_id)
    path = metadata_path(dataset_id)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise broken_dataset_error(dataset_id, f"{path} is not readable JSON ({e}).") from None
    if not isinstance(meta, dict):
        raise broken_dataset_error(dataset_id, f"{path} holds a {type(meta).__name__}, not a JSON object.")
    return meta


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metadata_problems(meta: dict[str, Any]) -> list[str]:
    """Every invalid value in ``meta``, one phrase each (empty when the metadata is usable)."""
    problems: list[str] = []
    for key in ("total_episodes", "total_steps"):
        if key not in meta:
            problems.append(f"{key} is missing")
        elif not _is_int(meta[key]) or meta[key] < 0:
            problems.append(f"{key}={meta[key]!r} is not a non-negative integer")
    for key in ("ref_min_score", "ref_max_score"):
        if meta.get(key) is not None and not _is_number(meta[key]):
            problems.append(f"{key}={meta[key]!r} is not a finite number")
    checks: list[tuple[str, tuple[str, ...]]] = [
        (REWARD_MODE, DECLARED_REWARD_MODES),
        (PRIMARY_METRIC, PRIMARY_METRICS),
        (SUCCESS_TIMING, SUCCESS_TIMINGS),
    ]
    for key, valid in checks:
        if meta.get(key) is not None and meta[key] not in valid:
            problems.append(f"{key}={meta[key]!r} is not one of {', '.join(valid)}")
    if meta.get(SUCCESS_KEY) is not None and (not isinstance(meta[SUCCESS_KEY], str) or not meta[SUCCESS_KEY]):
        problems.append(f"{SUCCESS_KEY}={meta[SUCCESS_KEY]!r} is not a non-empty string")
    if meta.get(PRIMARY_METRIC) == "success_rate" and not meta.get(SUCCESS_KEY):
        problems.append(f"{PRIMARY_METRIC}='success_rate' needs {SUCCESS_KEY} (the info key carrying success)")
    steps = meta.get(EVAL_EPISODE_STEPS)
    if steps is not None and (not _is_int(steps) or steps < 1):
        problems.append(f"{EVAL_EPISODE_STEPS}={steps!r} is not a positive integer")
    return problems


def check_metadata(dataset_id: str, meta: dict[str, Any]) -> Declarations:
    """The checked :class:`Declarations` of ``meta``, or one error naming every bad key and value."""
    problems = metadata_problems(meta)
    if problems:
        raise broken_dataset_error(dataset_id, f"{metadata_path(dataset_id)}: {'; '.join(problems)}.")

    def opt_float(key: str) -> float | None:
        return None if meta.get(key) is None else float(meta[key])

    return Declarations(
        total_episodes=int(meta["total_episodes"]),
        total_steps=int(meta["total_steps"]),
        ref_min_score=opt_float("ref_min_score"),
        ref_max_score=opt_float("ref_max_score"),
        reward_mode=meta.get(REWARD_MODE),
        primary_metric=meta.get(PRIMARY_METRIC),
        success_key=meta.get(SUCCESS_KEY),
        success_timing=meta.get(SUCCESS_TIMING),
        eval_episode_steps=meta.get(EVAL_EPISODE_STEPS),
    )
