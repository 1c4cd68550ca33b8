"""Online SAC (stable-baselines3) training that keeps what D4RL's recipe needs.

D4RL's locomotion datasets come from one online SAC run: a checkpoint at
about a third of the final return ("medium"), the final policy ("expert"), the
randomly initialised policy ("random"), and the replay buffer up to the medium
checkpoint ("medium-replay"). So training here evaluates the deterministic
policy every ``eval_every`` steps, snapshots its weights (a few MB each), and
keeps the whole replay buffer (``buffer_size`` = training steps, nothing is
overwritten) in time order.

stable-baselines3 is the ecosystem's standard SAC, so behaviour policies are
ordinary SB3 policy files (``SACPolicy.load(path)``) anyone can reload to
regenerate or extend a dataset. It lives in the ``datagen`` extra: it is
imported lazily and a missing install is a clear error naming the extra.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from offrl.datagen.recipes.locomotion_rollout import evaluate_returns, sb3_policy
from offrl.errors import OfflineRLError

EXTRA = "datagen"


def import_sb3() -> Any:
    """Import stable-baselines3, or fail naming the ``datagen`` extra."""
    try:
        import stable_baselines3
    except ImportError:
        raise OfflineRLError(
            "Generating the locomotion datasets trains SAC with stable-baselines3: "
            "`pip install 'offrl[datagen]'` (or `pip install stable-baselines3`)."
        ) from None
    return stable_baselines3


@dataclass(frozen=True)
class SACBudget:
    """What one SAC run costs and how densely it is checkpointed."""

    sac_steps: int = 300_000  # environment steps of online SAC (one gradient step each)
    eval_every: int = 15_000  # checkpoint + deterministic evaluation interval (steps)
    eval_episodes: int = 5  # episodes per checkpoint evaluation
    learning_starts: int = 10_000  # uniformly random steps before the first update
    net_arch: tuple[int, ...] = (256, 256)  # actor and critic hidden layers (D4RL: 256x256)
    threads: int = 1  # torch intra-op threads while training (1 is steadiest on small CPUs)

    def __post_init__(self) -> None:
        if self.sac_steps < 2 or not 0 < self.eval_every < self.sac_steps:
            raise OfflineRLError(
                f"SAC budget needs sac_steps >= 2 and 0 < eval_every < sac_steps "
                f"(got sac_steps={self.sac_steps}, eval_every={self.eval_every}): the medium "
                "checkpoint must lie strictly inside the run."
            )
        if self.learning_starts < 1 or self.eval_episodes < 1:
            raise OfflineRLError("learning_starts and eval_episodes must be positive.")


@dataclass
class Checkpoint:
    """Policy weights at ``step`` environment steps and their mean deterministic return."""

    step: int
    eval_return: float
    state: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass
class SACRun:
    """A finished run: the model (final weights), checkpoints in step order, wall time."""

    model: Any
    checkpoints: list[Checkpoint]
    seconds: float

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]

    def curve(self) -> list[tuple[int, float]]:
        return [(c.step, round(c.eval_return, 3)) for c in self.checkpoints]

    def replay(self, upto: int) -> dict[str, np.ndarray]:
        """The first ``upto`` transitions of the replay buffer, actions in environment units."""
        rb = self.model.replay_buffer
        if upto > rb.pos and not rb.full:
            raise ValueError(f"replay buffer holds {rb.pos} transitions, asked for {upto}")
        dones = rb.dones[:upto, 0].astype(bool)
        timeouts = rb.timeouts[:upto, 0].astype(bool)
        return {
            "observations": rb.observations[:upto, 0].astype(np.float64),
            "next_observations": rb.next_observations[:upto, 0].astype(np.float64),
            "actions": self.model.policy.unscale_action(rb.actions[:upto, 0]).astype(np.float32),
            "rewards": rb.rewards[:upto, 0].astype(np.float64),
            "terminations": dones & ~timeouts,
            "truncations": timeouts,
        }


def train_sac(
    make_env: Callable[[], Any],
    budget: SACBudget,
    seed: int,
    on_progress: Callable[[int, float | None], None] | None = None,
) -> SACRun:
    """Train SAC for ``budget.sac_steps`` steps; deterministic for ``seed`` on CPU."""
    import_sb3()
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    old_threads = torch.get_num_threads()
    torch.set_num_threads(budget.threads)
    try:
        model = SAC(
            "MlpPolicy",
            make_env(),
            seed=seed,
            learning_starts=budget.learning_starts,
            buffer_size=budget.sac_steps + 1,
            policy_kwargs={"net_arch": list(budget.net_arch)},
            device="cpu",
            verbose=0,
        )

        def snapshot(step: int) -> Checkpoint:
            act = sb3_policy(model.policy, deterministic=True)
            returns = evaluate_returns(make_env, act, budget.eval_episodes, seed=seed + 10_000)
            ckpt = Checkpoint(step, float(returns.mean()), copy.deepcopy(model.policy.state_dict()))
            if on_progress is not None:
                on_progress(0, ckpt.eval_return)
            return ckpt

        checkpoints = [snapshot(0)]

        class _Checkpointer(BaseCallback):
            def _on_step(self) -> bool:
                if on_progress is not None:
                    on_progress(1, None)
                if self.num_timesteps % budget.eval_every == 0 or self.num_timesteps == budget.sac_steps:
                    checkpoints.append(snapshot(self.num_timesteps))
                return True

        start = time.perf_counter()
        model.learn(total_timesteps=budget.sac_steps, callback=_Checkpointer())
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(old_threads)
    return SACRun(model, checkpoints, seconds)


def choose_medium(run: SACRun, final_return: float | None = None) -> Checkpoint:
    """The intermediate checkpoint whose return is closest to a third of the final return."""
    target = (run.final.eval_return if final_return is None else final_return) / 3.0
    inside = [c for c in run.checkpoints if 0 < c.step < run.final.step]
    return min(inside, key=lambda c: (abs(c.eval_return - target), c.step))


def save_policy(run: SACRun, ckpt: Checkpoint, path: Path) -> None:
    """Save ``ckpt`` as a stable-baselines3 policy file (``SACPolicy.load(path)`` reloads it)."""
    final_state = copy.deepcopy(run.model.policy.state_dict())
    run.model.policy.load_state_dict(ckpt.state)
    try:
        run.model.policy.save(str(path))
    finally:
        run.model.policy.load_state_dict(final_state)


def load_policy(path: Path) -> Any:
    import_sb3()
    from stable_baselines3.sac.policies import SACPolicy

    policy = SACPolicy.load(str(path), device="cpu")
    policy.set_training_mode(False)
    return policy


def write_training_record(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")


def budget_record(budget: SACBudget) -> dict[str, Any]:
    d = asdict(budget)
    d["net_arch"] = list(budget.net_arch)
    return d


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)
