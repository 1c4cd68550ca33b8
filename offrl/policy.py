"""Trained policies as small files, and a policy object that acts in your own environment loop.

Every evaluation writes ``RUN_DIR/policy_final.pt`` (the latest evaluated
policy: at the end of a run, the final one) and, when the score improves,
``RUN_DIR/policy_best.pt``. A policy file holds only plain values and tensors
— the run's config, the critic's and actor's weights (the critic is needed by
actors that select among candidates), the observation normalisation, the
action bounds, and what it belongs to (the run's seed, a fingerprint of its
configuration, critic, actor, dataset and dimensions) — so it loads with
``torch.load(weights_only=True)``, and needs neither the dataset nor the
training checkpoint::

    policy = offrl.load_policy("runs/my-run", which="best")
    action = policy(observation)          # raw env observation (array or dict) -> action in the env's bounds

Flattening dict observations, normalising them, rescaling actions to the
environment's bounds and sampling/selecting candidates all happen inside.

A policy file is data from wherever it came from: loading it never imports the
plugins its config names (pass ``plugins=[...]``, see :mod:`offrl.plugins`),
and :func:`check_payload` refuses, with one message, a file that is damaged
(no step, a dimension of 0, non-finite bounds or weights, weights of the wrong
shape) or that was copied into another run's directory.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

import offrl.envs.bandit  # noqa: F401  (registers offrl's own environments, for the user's gym.make)
from offrl import rundir
from offrl.errors import ConfigError, RunDirError

#: Version of the policy-file layout; 2 = it records what it belongs to (``belongs``).
FORMAT = 2
#: Layouts this offrl loads.
READABLE = (1, 2)
WHICH = ("final", "best")


def policy_file(run_dir: str | Path, which: str) -> Path:
    if which not in WHICH:
        from offrl.errors import unknown

        raise unknown("policy (which)", which, WHICH)
    return Path(run_dir) / f"policy_{which}.pt"


def save_policy(path: Path, *, config: dict[str, Any], state: dict[str, torch.Tensor], obs_normalizer: dict,
                action_low: np.ndarray, action_high: np.ndarray, obs_dim: int, act_dim: int, step: int,
                evaluation: dict[str, Any], device: str = "cpu", scoring: dict[str, Any] | None = None) -> None:
    """Write a policy file atomically (plain values and tensors only: loadable with ``weights_only=True``).

    The bytes are serialised in memory first, so a full disk is an ``OSError`` of the write, never a failure
    inside torch's zip writer; the previous file stays in place."""
    from offrl.config import fingerprint
    from offrl.trainer.checkpoint import plain, serialise

    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
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
        # the evaluation environment and reference scores (offrl.trainer.evaluation.scoring_record): `offrl eval`
        # works without the dataset
        "scoring": {k: v for k, v in (scoring or {}).items() if isinstance(v, (int, float, str, type(None)))},
        "belongs": {"seed": trainer.get("seed"), "config_sha256": fingerprint(config),
                    "critic": (config.get("critic") or {}).get("name"), "actor": (config.get("actor") or {}).get("name"),
                    "dataset": (config.get("data") or {}).get("dataset"), "obs_dim": int(obs_dim),
                    "act_dim": int(act_dim)},
    }
    data = serialise(plain(payload, "policy file"))
    fd, tmp = rundir.make_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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

    def __init__(self, payload: dict[str, Any], device: str | torch.device = "cpu", seed: int = 0,
                 source: str = "the policy file") -> None:
        from offrl.actors import ACTORS
        from offrl.config import resolve_saved
        from offrl.critics import CRITICS
        from offrl.data.preprocess import ActionScaler, ObsNormalizer
        from offrl.learner.members import Agent

        check_payload(payload, source)
        cfg = resolve_saved(payload["config"], source, "`offrl eval RUN_DIR --plugin MODULE` (Python: "
                            "`offrl.load_policy(RUN_DIR, plugins=['MODULE'])`)")
        self.config = cfg
        self.step = payload["step"]
        self.evaluation = payload["evaluation"]
        self.obs_dim, self.act_dim = payload["obs_dim"], payload["act_dim"]
        self.trained_on = str(payload.get("device", "cpu"))
        scoring = payload.get("scoring")
        self.scoring: dict[str, Any] = dict(scoring) if isinstance(scoring, dict) else {}  # older files: none
        self.device = torch.device(device)
        critic = CRITICS.get(cfg.critic)(cfg.critic_cfg, self.obs_dim, self.act_dim)
        actor = ACTORS.get(cfg.actor)(cfg.actor_cfg, self.obs_dim, self.act_dim, 1)
        self.agent = Agent(critic, actor)
        try:
            missing, unexpected = self.agent.load_state_dict(payload["state"], strict=False)
        except RuntimeError as e:  # a weight of the wrong shape
            detail = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), _first(e))
            raise RunDirError(f"'{source}' does not match the networks its config describes ({detail}); it is "
                              "damaged or was edited.") from None
        if missing or unexpected:
            raise RunDirError(f"'{source}' does not match the networks its config describes (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}); it is damaged or was edited.")
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
                seed: int = 0, plugins: Iterable[str] = ()) -> Policy:
    """The policy a run saved at its last evaluation (``which="final"``) or its best one (``"best"``).

    ``plugins``: modules to import first, for a run trained with your own critic or actor (the plugins a
    policy file names are never imported for you; see :mod:`offrl.plugins`).
    """
    from offrl import rundir
    from offrl.plugins import load_plugins
    from offrl.trainer.runtime import resolve_device

    device = resolve_device(str(device))  # an unknown or unavailable device is one DeviceError
    load_plugins(plugins)
    path = policy_file(run_dir, which)
    if path.is_symlink():
        raise RunDirError(f"'{path}' is a symbolic link; offrl does not follow links among a run's files.")
    if not path.is_file() and (Path(run_dir) / rundir.GROUP).is_file():
        raise RunDirError(f"'{run_dir}' is a multi-seed run: its policies are in its seed directories "
                          f"(e.g. {Path(run_dir) / 'seed0'}).")
    if not path.is_file():
        raise RunDirError(f"'{path}' does not exist: the run saves its policies at each evaluation "
                          f"(runs made before offrl saved policies, or with no evaluation, have none).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        from offrl.trainer.checkpoint import holds_objects

        why = ("it holds Python objects besides tensors and plain values, and offrl loads policy files as data "
               "only" if holds_objects(e) else f"{type(e).__name__}")
        raise RunDirError(f"'{path}' cannot be read ({why}); it is damaged or not a policy file.") from None
    if not isinstance(payload, dict) or payload.get("format") not in READABLE:
        raise RunDirError(f"'{path}' is not an offrl policy file (format {', '.join(map(str, READABLE))}).")
    policy = Policy(payload, device=device, seed=seed, source=str(path))
    if (Path(run_dir) / rundir.CONFIG).is_file():
        check_belongs(payload, policy.config, Path(run_dir), path)
    return policy


def _first(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def check_payload(payload: dict[str, Any], source: str) -> None:
    """Refuse a policy file whose parts are missing, mistyped or non-finite (one :class:`RunDirError`)."""
    def bad(why: str) -> RunDirError:
        return RunDirError(f"'{source}' is damaged: {why}.")

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(payload.get("config"), dict):
        raise bad("it holds no config")
    if "step" not in payload:
        raise bad("it records no step")
    if not whole(payload["step"]) or payload["step"] < 0:
        raise bad(f"its step {payload['step']!r} is not a whole number")
    for key in ("obs_dim", "act_dim"):
        if not whole(payload.get(key)) or not 1 <= payload[key] <= 1_000_000:
            raise bad(f"{key} is {payload.get(key)!r}, not a positive size")
    low, high = payload.get("action_low"), payload.get("action_high")
    for name, b in (("action_low", low), ("action_high", high)):
        if not isinstance(b, list) or len(b) != payload["act_dim"] or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in b):
            raise bad(f"{name} is not {payload['act_dim']} finite numbers (got {b!r:.80})")
    if not all(lo < hi for lo, hi in zip(low, high)):
        raise bad(f"its action bounds are empty or inverted (low {low}, high {high})")
    norm = payload.get("obs_normalizer")
    if not isinstance(norm, dict):
        raise bad("it holds no observation normalisation")
    from offrl.data.preprocess import ObsNormalizer

    try:
        ObsNormalizer.from_dict(norm, size=payload["obs_dim"])
    except ValueError as e:
        raise bad(f"its observation normalisation is unusable ({e})") from None
    state = payload.get("state")
    if not isinstance(state, dict) or not state or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise bad("it holds no weights")
    nonfinite = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if nonfinite:
        raise bad(f"it holds non-finite weights ({', '.join(nonfinite[:3])}); a policy of a diverged run is never "
                  "saved, so the file was damaged or edited")
    if not isinstance(payload.get("evaluation"), dict):
        raise bad("it holds no evaluation record")
    belongs = payload.get("belongs")
    if belongs is not None:
        from offrl.config import fingerprint

        try:
            same = isinstance(belongs, dict) and fingerprint(payload["config"]) == belongs.get("config_sha256")
        except (TypeError, ValueError):  # a config that is not plain JSON-like data
            same = False
        if not same:
            raise bad("its config is not the one it was trained with (edited after the file was written)")


def check_belongs(payload: dict[str, Any], cfg: Any, run_dir: Path, path: Path) -> None:
    """A policy file in ``run_dir`` must be that run's: the same configuration (seed included) as its
    ``config.json``. Refused with one message otherwise (a file copied from another run)."""
    from offrl import rundir
    from offrl.config import config_diff, fingerprint, resolve_saved

    try:
        run_cfg = resolve_saved(rundir.read_config(run_dir), str(run_dir / rundir.CONFIG), "")
    except (ConfigError, RunDirError):
        return  # the run's config.json is damaged or not usable here: the policy file stands on its own
    belongs = payload.get("belongs")
    recorded = belongs.get("config_sha256") if isinstance(belongs, dict) else fingerprint(cfg)  # format 1
    if recorded == fingerprint(run_cfg):
        return
    diff = config_diff(payload["config"], run_cfg.to_dict())  # empty: only defaults a later offrl added differ
    if diff:
        raise RunDirError(f"'{path}' does not belong to the run in '{run_dir}': it was trained with another "
                          f"configuration ({'; '.join(diff)}: policy file vs config.json). A policy file copied "
                          "from another run is not evaluated as this one.")


def as_config(cfg: Any) -> dict[str, Any]:
    """A run config as the plain dict a policy file stores (non-finite numbers as text)."""
    from offrl.rundir import floats_as_text

    return floats_as_text(cfg.to_dict() if dataclasses.is_dataclass(cfg) else dict(cfg))


__all__ = ["Policy", "WHICH", "check_belongs", "check_payload", "load_policy", "policy_file", "save_policy"]
