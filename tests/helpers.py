"""Helpers shared by tests: running the CLI, writing small datasets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

TINY = ["--actor", "gaussian-awr", "--set", "critic.hidden_dims=[32,32]", "--set", "actor.hidden_dims=[32,32]",
        "--set", "critic.batch_size=64", "--set", "actor.batch_size=64"]


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m offrl ARGS`` in a subprocess (same env, one thread)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "offrl", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_episodes(dataset_id: str, episodes: list[dict[str, Any]], obs_space: Any, act_space: Any,
                   env: Any = None, **kwargs: Any) -> Path:
    """Write episodes given as dicts of arrays (observations has T+1 rows)."""
    from offrl.data.writer import episode_buffer, write_minari_dataset

    bufs = [episode_buffer(e["observations"], e["actions"], e["rewards"], e["terminations"], e["truncations"])
            for e in episodes]
    if env is None:
        kwargs.setdefault("observation_space", obs_space)
        kwargs.setdefault("action_space", act_space)
    return write_minari_dataset(dataset_id, bufs, env=env, **kwargs)


def episode(T: int, obs_dim: int, act_dim: int, rng: np.random.Generator, terminated: bool,
            act_scale: float = 1.0) -> dict[str, Any]:
    return {
        "observations": rng.standard_normal((T + 1, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-act_scale, act_scale, (T, act_dim)).astype(np.float32),
        "rewards": rng.standard_normal(T),
        "terminations": np.array([False] * (T - 1) + [terminated]),
        "truncations": np.array([False] * (T - 1) + [not terminated]),
    }


class PlainTrainer:
    """Plain autograd steps on one component's losses (unit tests of a loss against stub critics;
    the shared learner itself is tested in test_learner.py)."""

    def __init__(self, component: Any, lr: float | None = None) -> None:
        import torch

        self.component = component
        self.opts = {name: torch.optim.Adam(g.params, lr=lr if lr is not None else g.lr)
                     for name, g in component.param_groups().items()}

    def step(self, batch: Any, other: Any, noise: dict | None = None) -> dict:
        metrics: dict = {}
        for stage in self.component.stages():
            loss, metrics = stage.loss(batch, noise or {}, other)
            self.opts[stage.group].zero_grad(set_to_none=True)
            loss.backward()
            self.opts[stage.group].step()
        return metrics
