"""Reference actions for the action-MSE diagnostics: the policy the data recipe knows to be good.

Park et al. 2024 measure how far the learned policy's actions are from an
expert's on three sets of states (training, held-out, visited at test time).
Where offrl made the dataset, its recipe knows such a policy:

- the bandit (``offrl.datagen.recipes.bandit``): the best reward modes are
  known exactly; the error is the distance to the *nearest* best mode (two
  modes pay the maximum, and a policy committing to either is optimal);
- PointMaze (``recipes.pointmaze``): the planner + PD controller that made the
  data, without its noise, heading for the goal in the observation;
- locomotion (``recipes.locomotion``): the final SAC policy (``expert.zip``,
  kept beside the datasets under ``<store>/offrl/<env>/policies/``), acting
  deterministically.

Anywhere else (downloaded datasets; OGBench, whose oracles plan over the
simulator's state rather than act on an observation) the reference is the
dataset's own action, which exists on training and held-out states only; the
diagnostics say which reference they used.

Errors are in the unit action space [−1, 1] (the actor's), averaged over the
action dimensions: ``mean_i (a_i − a*_i)²``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from offrl.data.preprocess import ActionScaler, ObsNormalizer

#: What the MSE is measured against when no recipe policy is used.
DATASET_ACTION = "the dataset action (training and held-out states only)"


class Reference:
    """A reference for unit actions at (normalised, flattened) observations; ``name`` says what it is."""

    name: str

    def errors(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Per state, ``mean_i (a_i − a*_i)²`` for actions [N, A] at observations [N, O]."""
        raise NotImplementedError


@dataclass
class BestActions(Reference):
    """A set of optimal actions (the same at every state): the error is to the nearest one."""

    best: np.ndarray  # [K, A], unit actions
    name: str = "the nearest best action"

    def errors(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, np.float64)[:, None, :]
        return ((a - self.best[None]) ** 2).mean(-1).min(-1)


@dataclass
class PolicyReference(Reference):
    """A policy on raw environment observations, returning environment actions (loaded lazily, so the
    object stays small and picklable for evaluation workers)."""

    name: str
    loader: Callable[[], Callable[[np.ndarray], np.ndarray]]
    obs_normalizer: ObsNormalizer
    action_scaler: ActionScaler
    _policy: Any = field(default=None, init=False, repr=False)

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """Reference unit actions [N, A] at normalised observations [N, O]."""
        if self._policy is None:
            self._policy = self.loader()
        norm = self.obs_normalizer
        raw = np.asarray(obs, np.float64) * norm.std + norm.mean
        return self.action_scaler.to_unit(np.asarray(self._policy(raw), np.float64))

    def errors(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return ((np.asarray(actions, np.float64) - self.actions(obs)) ** 2).mean(-1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_policy"] = None  # reloaded where it is used
        return state


# --------------------------------------------------------------------------- the recipes' policies


def bandit_reference() -> BestActions:
    from offrl.envs import bandit

    best = bandit.MODE_CENTERS[bandit.MODE_PAYOFFS == bandit.MODE_PAYOFFS.max()]
    return BestActions(best.astype(np.float64), name=f"the nearest of the bandit's {len(best)} best modes")


@dataclass(frozen=True)
class MazeController:
    """PointMaze's noiseless controller on flattened observations (achieved_goal, desired_goal, observation)."""

    dataset_id: str

    def __call__(self) -> Callable[[np.ndarray], np.ndarray]:
        from offrl.datagen.recipes.pointmaze import controller_for, maze_for

        controller = controller_for(maze_for(self.dataset_id))

        def act(obs: np.ndarray) -> np.ndarray:
            return np.stack([controller(o[4:6], o[6:8], o[2:4]) for o in obs])

        return act


@dataclass(frozen=True)
class SB3Expert:
    """A stable-baselines3 policy file, acting deterministically."""

    path: str

    def __call__(self) -> Callable[[np.ndarray], np.ndarray]:
        from offrl.datagen.recipes.locomotion_rollout import sb3_policy
        from offrl.datagen.recipes.locomotion_sac import load_policy

        return sb3_policy(load_policy(Path(self.path)), deterministic=True)


def locomotion_expert_file(recipe: dict[str, Any]) -> Path | None:
    """``expert.zip`` beside the family's training record, if it is still on disk."""
    from offrl.data.store import datasets_root

    record = recipe.get("training_record")
    if not isinstance(record, str):
        return None
    path = datasets_root() / Path(record).parent / "expert.zip"
    return path if path.is_file() else None


def reference_for(dataset: Any, choice: str) -> tuple[Reference | None, str]:
    """(the reference, what it is) for a loaded dataset; ``None`` means the dataset action.

    ``choice`` is ``eval.reference``: ``auto`` uses the recipe's policy where there is one, ``dataset``
    always the dataset action.
    """
    if choice == "dataset":
        return None, DATASET_ACTION
    recipe = (dataset.metadata or {}).get("offrl_recipe")
    name = recipe.get("recipe") if isinstance(recipe, dict) else None
    if name == "offrl.datagen.recipes.bandit":
        ref = bandit_reference()
        return ref, ref.name
    if name == "offrl.datagen.recipes.pointmaze":
        ref = PolicyReference("PointMaze's noiseless planner + PD controller (the data's behaviour policy without "
                              "noise)", MazeController(dataset.dataset_id), dataset.obs_normalizer,
                              dataset.action_scaler)
        return ref, ref.name
    if name == "offrl.datagen.recipes.locomotion":
        path = locomotion_expert_file(recipe)
        if path is None:
            return None, DATASET_ACTION + "; the recipe's expert policy file is not on disk"
        ref = PolicyReference(f"the locomotion expert (final SAC policy, deterministic: {path.name} of "
                              f"{path.parent.name})", SB3Expert(str(path)), dataset.obs_normalizer,
                              dataset.action_scaler)
        return ref, ref.name
    if name is not None and "ogbench" in name:
        return None, DATASET_ACTION + "; OGBench's oracles plan over the simulator state, not an observation"
    return None, DATASET_ACTION
