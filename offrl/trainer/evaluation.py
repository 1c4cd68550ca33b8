"""Evaluation on vectorised gymnasium environments with batched policy calls.

Each evaluation's episode seeds are derived from (run seed, step), and the
policy's sampling generator too, so an evaluation is reproducible on its own
-- also after a resume -- and draws nothing from the training RNGs.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from offrl.data.dataset import OfflineDataset
from offrl.data.flatten import flatten_obs
from offrl.trainer.runtime import derived_seed


class Evaluator:
    """Owns the vector env (made once, reused) and runs evaluations."""

    def __init__(self, dataset: OfflineDataset, num_envs: int, device: torch.device) -> None:
        if dataset.make_env is None:
            self.envs = None
        else:
            self.envs = gym.vector.SyncVectorEnv([dataset.make_env for _ in range(num_envs)])
        self.dataset = dataset
        self.num_envs = num_envs
        self.device = device

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()

    def evaluate(
        self, policy: Callable[[torch.Tensor, torch.Generator], torch.Tensor], episodes: int, seed: int, step: int
    ) -> dict[str, Any]:
        """Mean/std return and D4RL-normalised score (0–100) over ``episodes`` episodes."""
        if self.envs is None:
            return {}
        seeds = np.random.SeedSequence([seed, step, 7]).generate_state(episodes).tolist()
        gen = torch.Generator(device=self.device).manual_seed(derived_seed(seed, step, 11))
        returns: list[float] = []
        lengths: list[int] = []
        n = self.num_envs
        for start in range(0, episodes, n):
            k = min(n, episodes - start)
            round_seeds = seeds[start : start + k] + [s + 1 for s in seeds[: n - k]]  # padding envs
            r, length = self._round(policy, round_seeds, gen)
            returns += r[:k].tolist()
            lengths += length[:k].tolist()
        ret = np.asarray(returns)
        out: dict[str, Any] = {
            "return_mean": float(ret.mean()),
            "return_std": float(ret.std()),
            "length_mean": float(np.mean(lengths)),
            "episodes": len(ret),
        }
        score = self.dataset.normalized_score_100(ret)
        out["normalized_score_100"] = None if score is None else float(score.mean())
        out["normalized_score_100_std"] = None if score is None else float(score.std())
        return out

    def _round(self, policy: Callable, seeds: list[int], gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Run one episode in every env (finished envs keep stepping but are not counted)."""
        assert self.envs is not None
        obs, _ = self.envs.reset(seed=seeds)
        n = len(seeds)
        done = np.zeros(n, bool)
        total = np.zeros(n)
        length = np.zeros(n, np.int64)
        scaler, norm = self.dataset.action_scaler, self.dataset.obs_normalizer
        while not done.all():
            x = torch.as_tensor(norm(flatten_obs(obs).reshape(n, -1).astype(np.float64)), device=self.device)
            unit = policy(x, gen).float().cpu().numpy()
            obs, reward, term, trunc, _ = self.envs.step(scaler.to_env(unit).astype(np.float32))
            live = ~done
            total[live] += reward[live]
            length[live] += 1
            done |= term | trunc
        return total, length
