"""Evaluation of every seed at once: one vector env of E × n environments, one policy call per step.

Seed ``s``'s episodes are seeded from (s, training step) and its policy noise
comes from a generator derived from (s, step, round), so a seed evaluated in a
group scores exactly what it scores alone: the extra steps other seeds' envs
take at the end of a round consume nothing of its own randomness. Evaluations
draw nothing from the training generators.

Where the dataset declares a success signal (e.g. OGBench's ``info["success"]``),
each episode counts as a success when that signal is set at its last step, and
``success_rate_100`` (0–100) is reported beside the returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from offrl.data.flatten import flatten_obs
from offrl.data.preprocess import ActionScaler, ObsNormalizer
from offrl.trainer.runtime import derived_seed

Policy = Callable[[torch.Tensor, list[torch.Generator]], torch.Tensor]


@dataclass
class EvalSpec:
    """What evaluation reads of a dataset: the environment factory, the observation and action maps, the
    score's references and the success signal. Plain and picklable, so a worker process can evaluate."""

    make_env: Callable[[], Any] | None
    action_scaler: ActionScaler
    obs_normalizer: ObsNormalizer
    success_key: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    score_unavailable: str | None = None

    @classmethod
    def of(cls, dataset: Any) -> "EvalSpec":
        """The spec of a loaded :class:`~offrl.data.dataset.OfflineDataset`."""
        return cls(dataset.make_env, dataset.action_scaler, dataset.obs_normalizer,
                   getattr(dataset, "success_key", None), dataset.ref_min_score, dataset.ref_max_score,
                   dataset.score_unavailable)

    def normalized_score_100(self, returns: np.ndarray) -> np.ndarray | None:
        """D4RL normalised score on the 0–100 scale, or None (``score_unavailable`` says why)."""
        if self.score_unavailable is not None or self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (np.asarray(returns) - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


def scoring_record(spec: EvalSpec) -> dict[str, Any]:
    """What a policy file keeps of its evaluation, so ``offrl eval`` needs no dataset: the environment (a
    gymnasium id, or the dataset's recorded spec as JSON), the reference scores and the success key."""
    out: dict[str, Any] = {"ref_min_score": spec.ref_min_score, "ref_max_score": spec.ref_max_score,
                           "success_key": spec.success_key, "score_unavailable": spec.score_unavailable}
    env = spec.make_env
    if getattr(env, "env_id", None):  # GymEnvFactory (eval.env)
        out["env_id"] = env.env_id
    elif getattr(env, "spec", None) is not None:  # EnvFactory (the dataset's recorded environment)
        try:
            out["env_spec"] = env.spec.to_json()
            out["env_entry_point"] = env.entry_point
        except Exception:  # a spec with kwargs that are not JSON: eval then needs the dataset
            pass
    return out


class Evaluator:
    """Owns the vector env (made once, reused) and runs evaluations for ``members`` seeds.

    On CUDA, observations and actions cross between host and device through pinned buffers of the
    round's fixed shape (asynchronous copies; one synchronisation per environment step, the
    environments' need for the action)."""

    def __init__(self, spec: EvalSpec | Any, members: int, num_envs: int, device: torch.device) -> None:
        self.dataset = spec if isinstance(spec, EvalSpec) else EvalSpec.of(spec)
        self.members = members
        self.num_envs = num_envs
        self.device = device
        self.success_key: str | None = self.dataset.success_key
        self.envs = None
        self._pinned: dict[str, torch.Tensor] = {}
        if self.dataset.make_env is not None:
            self.envs = gym.vector.SyncVectorEnv([self.dataset.make_env for _ in range(members * num_envs)])

    @property
    def available(self) -> bool:
        return self.envs is not None

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()

    def evaluate(self, policy: Policy, episodes: int, seeds: list[int], step: int,
                 observer: Any = None) -> list[dict[str, Any]]:
        """Per seed: mean/std return, D4RL-normalised score (0–100), success rate where declared.

        ``observer`` (e.g. :class:`offrl.bottleneck.visits.VisitRecorder`) sees every round start
        (``round(counted)``) and step (``step(obs, actions, rewards, next_obs, terminated, live)``)."""
        if self.envs is None:
            return [{} for _ in seeds]
        n = self.num_envs
        episode_seeds = [np.random.SeedSequence([s, step, 7]).generate_state(episodes).tolist() for s in seeds]
        returns: list[list[float]] = [[] for _ in seeds]
        lengths: list[list[int]] = [[] for _ in seeds]
        successes: list[list[float]] = [[] for _ in seeds]
        for r, start in enumerate(range(0, episodes, n)):
            k = min(n, episodes - start)
            round_seeds = [es[start:start + k] + [x + 1 for x in es[: n - k]] for es in episode_seeds]  # padding
            gens = [torch.Generator(device=self.device).manual_seed(derived_seed(s, step, 11, r)) for s in seeds]
            if observer is not None:
                observer.round(k)
            total, length, success = self._round(policy, round_seeds, gens, observer)
            for e in range(len(seeds)):
                returns[e] += total[e, :k].tolist()
                lengths[e] += length[e, :k].tolist()
                successes[e] += success[e, :k].tolist()
        return [self._stats(np.asarray(returns[e]), lengths[e], successes[e]) for e in range(len(seeds))]

    def _stats(self, ret: np.ndarray, lengths: list[int], success: list[float]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "return_mean": float(ret.mean()),
            "return_std": float(ret.std()),
            "length_mean": float(np.mean(lengths)),
            "episodes": len(ret),
        }
        score = self.dataset.normalized_score_100(ret)
        out["normalized_score_100"] = None if score is None else float(score.mean())
        out["normalized_score_100_std"] = None if score is None else float(score.std())
        if self.success_key is not None:
            out["success_rate_100"] = 100.0 * float(np.mean(success))
        return out

    def _round(self, policy: Policy, seeds: list[list[int]], gens: list[torch.Generator], observer: Any = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One episode in every env (finished envs keep stepping but are not counted)."""
        assert self.envs is not None
        E, n = len(seeds), self.num_envs
        obs, _ = self.envs.reset(seed=[s for row in seeds for s in row])
        done = np.zeros(E * n, bool)
        total = np.zeros(E * n)
        length = np.zeros(E * n, np.int64)
        success = np.zeros(E * n)
        scaler, norm = self.dataset.action_scaler, self.dataset.obs_normalizer
        x = norm(flatten_obs(obs).reshape(E * n, -1).astype(np.float64))
        while not done.all():
            unit = self._to_host(policy(self._to_device(x, (E, n, -1)), gens).reshape(E * n, -1))
            obs, reward, term, trunc, info = self.envs.step(scaler.to_env(unit).astype(np.float32))
            live = ~done
            x_next = norm(flatten_obs(obs).reshape(E * n, -1).astype(np.float64))
            if observer is not None:
                observer.step(x, unit, reward, x_next, term, live)
            x = x_next
            total[live] += reward[live]
            length[live] += 1
            ended = live & (term | trunc)
            if self.success_key is not None and self.success_key in info:
                flag = np.asarray(info[self.success_key], dtype=float)
                success[ended] = flag[ended]
            done |= term | trunc
        return total.reshape(E, n), length.reshape(E, n), success.reshape(E, n)

    def _to_device(self, x: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(shape)
        if self.device.type != "cuda":
            return host.to(self.device)
        pinned = self._pinned.get("obs")
        if pinned is None or pinned.shape != host.shape:
            pinned = self._pinned["obs"] = torch.empty(host.shape, dtype=torch.float32).pin_memory()
        pinned.copy_(host)
        return pinned.to(self.device, non_blocking=True)

    def _to_host(self, actions: torch.Tensor) -> np.ndarray:
        actions = actions.float()
        if self.device.type != "cuda":
            return actions.cpu().numpy()
        pinned = self._pinned.get("act")
        if pinned is None or pinned.shape != actions.shape:
            pinned = self._pinned["act"] = torch.empty(actions.shape, dtype=torch.float32).pin_memory()
        pinned.copy_(actions, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()  # the environments need the action now
        return pinned.numpy().copy()
