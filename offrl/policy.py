"""Trained policies as small files, and a policy object that acts in your own environment loop.

Every evaluation writes ``RUN_DIR/policy_final.pt`` (the latest evaluated
policy: at the end of a run, the final one) and, when the score improves,
``RUN_DIR/policy_best.pt``. A policy file holds only plain values and tensors
— the run's config, the critic's and actor's weights (the critic is needed by
actors that select among candidates), the observation normalisation and the
action bounds — so it loads with ``torch.load(weights_only=True)``, and needs
neither the dataset nor the training checkpoint::

    policy = offrl.load_policy("runs/my-run", which="best")
    action = policy(observation)          # raw env observation (array or dict) -> action in the env's bounds

Flattening dict observations, normalising them, rescaling actions to the
environment's bounds and sampling/selecting candidates all happen inside.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import offrl.envs.bandit  # noqa: F401  (registers offrl's own environments, for the user's gym.make)
from offrl.errors import ConfigError, RunDirError

#: Version of the policy-file layout.
FORMAT = 1
WHICH = ("final", "best")


def policy_file(run_dir: str | Path, which: str) -> Path:
    if which not in WHICH:
        from offrl.errors import unknown

        raise unknown("policy (which)", which, WHICH)
    return Path(run_dir) / f"policy_{which}.pt"


def save_policy(path: Path, *, config: dict[str, Any], state: dict[str, torch.Tensor], obs_normalizer: dict,
                action_low: np.ndarray, action_high: np.ndarray, obs_dim: int, act_dim: int, step: int,
                evaluation: dict[str, Any], device: str = "cpu") -> None:
    """Write a policy file atomically (plain values and tensors only: loadable with ``weights_only=True``)."""
    payload = {
        "format": FORMAT,
        "config": config,
        "state": {k: v.detach().cpu().clone() for k, v in state.items()},
        "obs_normalizer": {k: [float(x) for x in v] for k, v in obs_normalizer.items()},
        "action_low": [float(x) for x in np.asarray(action_low).reshape(-1)],
        "action_high": [float(x) for x in np.asarray(action_high).reshape(-1)],
        "obs_dim": int(obs_dim),
        "act_dim": int(act_dim),
        "step": int(step),
        "evaluation": {k: v for k, v in evaluation.items() if isinstance(v, (int, float, str, type(None)))},
        "device": str(device),  # where the run trained and evaluated: `offrl eval` reproduces its score there
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Policy:
    """A trained policy acting on raw environment observations (see the module docstring).

    ``policy(obs)`` takes one observation or a batch (arrays [B, ...] or dicts of them) and returns
    actions in the environment's bounds (numpy, float32). Stochastic parts (diffusion sampling,
    candidate selection) draw from the policy's own generator: ``policy.seed(s)`` makes it repeatable.
    """

    def __init__(self, payload: dict[str, Any], device: str | torch.device = "cpu", seed: int = 0) -> None:
        from offrl.actors import ACTORS
        from offrl.config import resolve
        from offrl.critics import CRITICS
        from offrl.data.preprocess import ActionScaler, ObsNormalizer
        from offrl.learner.members import Agent
        from offrl.plugins import load_plugins

        config = dict(payload["config"])
        config.pop("offrl_version", None)
        load_plugins(config.get("plugins") or [])
        cfg = resolve([config])
        self.config = cfg
        self.step = payload["step"]
        self.evaluation = payload["evaluation"]
        self.obs_dim, self.act_dim = payload["obs_dim"], payload["act_dim"]
        self.trained_on = str(payload.get("device", "cpu"))
        self.device = torch.device(device)
        critic = CRITICS.get(cfg.critic)(cfg.critic_cfg, self.obs_dim, self.act_dim)
        actor = ACTORS.get(cfg.actor)(cfg.actor_cfg, self.obs_dim, self.act_dim, 1)
        self.agent = Agent(critic, actor)
        missing, unexpected = self.agent.load_state_dict(payload["state"], strict=False)
        if missing or unexpected:
            raise RunDirError(f"The policy file does not match its networks (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}).")
        self.agent.to(self.device).eval()
        self.normalizer = ObsNormalizer.from_dict(payload["obs_normalizer"])
        self.scaler = ActionScaler(np.asarray(payload["action_low"], np.float64),
                                   np.asarray(payload["action_high"], np.float64))
        self.generator = torch.Generator(device=self.device)
        self.seed(seed)

    def seed(self, seed: int) -> "Policy":
        self.generator.manual_seed(int(seed))
        return self

    def __call__(self, obs: Any) -> np.ndarray:
        """Actions in the environment's bounds for one raw observation or a batch."""
        from offrl.data.flatten import flatten_obs

        flat = np.asarray(flatten_obs(obs), np.float64)
        if flat.size % self.obs_dim:
            raise ConfigError(f"observation of {flat.size} values does not match the policy's observation size "
                              f"{self.obs_dim} (nor a batch of them)")
        actions = self.scaler.to_env(self.act_unit(flat.reshape(-1, self.obs_dim))).astype(np.float32)
        return actions[0] if flat.size == self.obs_dim else actions

    @torch.no_grad()
    def act_unit(self, flat_obs: np.ndarray, generator: torch.Generator | None = None) -> np.ndarray:
        """Actions in [−1, 1] for flat raw observations [B, O] (normalised here); noise from ``generator``
        (default: the policy's own)."""
        x = torch.as_tensor(self.normalizer(np.asarray(flat_obs, np.float64)), dtype=torch.float32, device=self.device)
        actor, critic = self.agent.actor, self.agent.critic
        gen = self.generator if generator is None else generator
        noise = {k: n.draw(gen, self.device) for k, n in actor.act_noise(x.shape[0]).items()}
        return actor.act(x, critic, noise).clamp(-1.0, 1.0).cpu().numpy().astype(np.float64)

    act = __call__


def load_policy(run_dir: str | Path, which: str = "final", device: str | torch.device = "cpu",
                seed: int = 0) -> Policy:
    """The policy a run saved at its last evaluation (``which="final"``) or its best one (``"best"``)."""
    path = policy_file(run_dir, which)
    if not path.exists():
        raise RunDirError(f"'{path}' does not exist: the run saves its policies at each evaluation "
                          f"(runs made before offrl saved policies, or with no evaluation, have none).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RunDirError(f"'{path}' cannot be read ({type(e).__name__}); it is damaged or not a policy file.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RunDirError(f"'{path}' is not an offrl policy file of format {FORMAT}.")
    return Policy(payload, device=device, seed=seed)


def as_config(cfg: Any) -> dict[str, Any]:
    """A run config as the plain dict a policy file stores (non-finite numbers as text)."""
    from offrl.rundir import floats_as_text

    return floats_as_text(cfg.to_dict() if dataclasses.is_dataclass(cfg) else dict(cfg))


__all__ = ["Policy", "WHICH", "load_policy", "policy_file", "save_policy"]
