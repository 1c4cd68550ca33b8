"""Recipes for ``offrl/{hopper,halfcheetah,walker2d}/{random,medium,expert,medium-replay,medium-expert}-v0``.

D4RL's locomotion recipe on gymnasium's v5 MuJoCo environments, so offline RL
can be benchmarked without downloading anything:

1. train online SAC (stable-baselines3, :mod:`locomotion_sac`), checkpointing
   the deterministic policy's return every ``eval_every`` steps;
2. ``random``: ``steps`` transitions of the *randomly initialised* SAC policy
   (D4RL's definition, not uniform actions);
3. ``medium``: ``steps`` transitions of the checkpoint whose return is closest
   to a third of the final policy's return;
4. ``expert``: ``steps`` transitions of the final policy;
5. ``medium-replay``: the replay buffer from step 0 up to the medium
   checkpoint (including SAC's ``learning_starts`` uniform steps);
6. ``medium-expert``: the medium episodes followed by the expert episodes.

Behaviour actions are sampled from the stochastic SAC policies, as in D4RL.
Reference scores (``ref_min_score`` / ``ref_max_score``): a uniformly random
policy (D4RL's convention) and the expert policy acting deterministically,
both on the evaluation environment (the same v5 environment, 1000 steps).

The SAC run is the expensive part, so making any dataset of a family makes
all of its missing datasets from one run (under a family lock: concurrent
makers of one family wait instead of training twice). The three behaviour
policies are saved as stable-baselines3 policy files under
``<store>/offrl/<env>/policies/seed<S>-sac<N>/`` with ``training.json`` (the
learning curve, the chosen checkpoints, the budget); a later ``make`` with the
same seed and SAC budget reuses them, so random/medium/expert can be
regenerated or extended (``--steps``) without retraining. ``medium-replay``
needs the replay buffer, so remaking it retrains (deterministically).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from offrl.data.metadata import REWARD_MODE
from offrl.datagen.recipes.locomotion_rollout import (
    collect_episodes,
    evaluate_returns,
    sb3_policy,
    transitions_to_episodes,
    uniform_policy,
)
from offrl.datagen.recipes.locomotion_sac import (
    EXTRA,
    SACBudget,
    budget_record,
    choose_medium,
    import_sb3,
    load_policy,
    save_policy,
    train_sac,
    write_training_record,
)
from offrl.datagen.progress import recipe_progress
from offrl.datagen.tempdirs import clean_dead_temps, private_temp_dir
from offrl.errors import OfflineRLError

ENVS: dict[str, str] = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
KINDS: tuple[str, ...] = ("random", "medium", "expert", "medium-replay", "medium-expert")
POLICY_KINDS: tuple[str, ...] = ("random", "medium", "expert")
DEFAULT_BUDGET: dict[str, Any] = {"steps": 1_000_000, "sac_steps": 300_000}
QUICK_BUDGET: dict[str, Any] = {"steps": 2_000, "sac_steps": 2_000}
#: Offsets that give each collection its own reproducible random streams.
_SEED_OFFSETS = {"random": 101, "medium": 202, "expert": 303, "ref_min": 404, "ref_max": 505}


def default_sac_budget(sac_steps: int, **overrides: Any) -> SACBudget:
    """20 checkpoints per run (5 for smoke-test runs, where evaluation would dominate the cost);
    random warm-up: a quarter of short runs, 10k steps otherwise."""
    values: dict[str, Any] = {
        "sac_steps": int(sac_steps),
        "eval_every": max(int(sac_steps) // (20 if sac_steps >= 20_000 else 5), 1),
        "learning_starts": max(min(10_000, int(sac_steps) // 4), 1),
        "eval_episodes": 5 if sac_steps >= 20_000 else 2,
    }
    fields = set(SACBudget.__dataclass_fields__)
    unknown_keys = sorted(set(overrides) - fields)
    if unknown_keys:
        raise OfflineRLError(f"Unknown SAC budget option(s) {unknown_keys}; valid: {sorted(fields)}.")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "net_arch" in values:
        values["net_arch"] = tuple(values["net_arch"])
    return SACBudget(**values)


def family_ids(prefix: str) -> dict[str, str]:
    return {kind: f"{prefix}/{kind}-v0" for kind in KINDS}


def parse_id(dataset_id: str) -> tuple[str, str]:
    """``offrl/hopper/medium-replay-v0`` -> (``hopper``, ``medium-replay``)."""
    parts = dataset_id.split("/")
    if len(parts) == 3 and parts[0] == "offrl" and parts[1] in ENVS and parts[2].endswith("-v0"):
        kind = parts[2][: -len("-v0")]
        if kind in KINDS:
            return parts[1], kind
    from offrl.errors import unknown

    raise unknown("locomotion dataset", dataset_id, [i for e in ENVS for i in family_ids(f"offrl/{e}").values()])


def make(
    dataset_id: str,
    seed: int = 0,
    steps: int = DEFAULT_BUDGET["steps"],
    sac_steps: int = DEFAULT_BUDGET["sac_steps"],
    replace: bool = False,
    **sac_options: Any,
) -> Path:
    """Make ``dataset_id`` and the other missing datasets of its family; return its directory.

    ``replace`` remakes ``dataset_id`` even if it exists (swapped in once complete);
    its siblings are only made when missing.
    """
    env_name, kind = parse_id(dataset_id)
    paths = make_family(
        ENVS[env_name], f"offrl/{env_name}", seed=seed, steps=steps, sac_steps=sac_steps,
        replace=(kind,) if replace else (), **sac_options,
    )
    return paths[kind]


def make_family(
    env_id: str,
    prefix: str,
    seed: int = 0,
    steps: int = DEFAULT_BUDGET["steps"],
    sac_steps: int = DEFAULT_BUDGET["sac_steps"],
    ref_episodes: int | None = None,
    n_envs: int = 8,
    replace: tuple[str, ...] = (),
    **sac_options: Any,
) -> dict[str, Path]:
    """Write the missing datasets ``<prefix>/<kind>-v0`` of any gymnasium env id; return all five paths.

    Kinds listed in ``replace`` are remade even when present.

    ``sac_options`` override :class:`SACBudget` fields (``eval_every``,
    ``learning_starts``, ``eval_episodes``, ``net_arch``, ``threads``).
    """
    import gymnasium as gym

    from offrl.datagen.writer import dataset_lock

    import_sb3()
    if steps < 1:
        raise OfflineRLError(f"steps must be positive (got {steps}).")
    budget = default_sac_budget(sac_steps, **sac_options)
    ref_episodes = ref_episodes or (100 if steps >= 100_000 else 3)
    ids = family_ids(prefix)

    def make_env() -> Any:
        return gym.make(env_id)

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(budget.threads)  # small nets: 1 thread is steadiest on shared CPUs
    try:
        with dataset_lock(f"{prefix}/.family"):
            return _make_missing(make_env, env_id, prefix, ids, seed, steps, budget, ref_episodes, n_envs, replace)
    finally:
        torch.set_num_threads(threads)


def _make_missing(
    make_env: Callable[[], Any],
    env_id: str,
    prefix: str,
    ids: dict[str, str],
    seed: int,
    steps: int,
    budget: SACBudget,
    ref_episodes: int,
    n_envs: int,
    replace: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Train (or reuse saved policies) and write every missing dataset of the family (and those in ``replace``)."""
    from offrl.data.store import DatasetState, dataset_dir, dataset_state, datasets_root

    # A sibling whose directory exists without metadata is broken, not missing: left for `make --force`.
    missing = [k for k in KINDS if dataset_state(ids[k]) is DatasetState.MISSING or k in replace]
    if not missing:
        return {k: dataset_dir(i) for k, i in ids.items()}
    policy_dir = datasets_root() / prefix / "policies" / f"seed{seed}-sac{budget.sac_steps}"
    with recipe_progress() as progress:
        record = _reusable_record(policy_dir, budget, env_id)
        replay: dict[str, np.ndarray] | None = None
        if record is None or "medium-replay" in missing:
            record, replay = _train_and_save(make_env, env_id, budget, seed, ref_episodes, policy_dir, progress)
        policies = {k: load_policy(policy_dir / f"{k}.zip") for k in POLICY_KINDS}
        spec = make_env().spec
        episodes: dict[str, list[Any]] = {}
        for kind in missing:
            start = time.perf_counter()
            if kind == "medium-replay":
                assert replay is not None
                eps = transitions_to_episodes(**replay)
            elif kind == "medium-expert":
                eps = _collected("medium", episodes, policies, make_env, steps, seed, n_envs, progress, ids)
                eps = eps + _collected("expert", episodes, policies, make_env, steps, seed, n_envs, progress, ids)
            else:
                eps = _collected(kind, episodes, policies, make_env, steps, seed, n_envs, progress, ids)
            task = progress.add_task(f"{ids[kind]}: writing", total=None)
            meta = _recipe_metadata(kind, env_id, seed, steps, budget, record, policy_dir, len(eps))
            meta["generation_seconds"] = round(time.perf_counter() - start, 1)
            from offrl.datagen.writer import write_minari_dataset

            write_minari_dataset(
                ids[kind],
                eps,
                env=spec,
                eval_env=spec,
                ref_min_score=record["ref_min_score"],
                ref_max_score=record["ref_max_score"],
                algorithm_name="offrl D4RL locomotion recipe (stable-baselines3 SAC)",
                description=f"{env_id} {kind}: D4RL locomotion recipe with SAC ({budget.sac_steps} steps)",
                extra_metadata={
                    "offrl_recipe": meta, "num_episodes_average_score": record["ref_episodes"], REWARD_MODE: "locomotion"
                },
                requirements=["mujoco>=3", "gymnasium>=1.0"],
                replace=kind in replace,
            )
            progress.update(task, total=1, completed=1)
            if kind == "medium-replay":
                replay = None
    return {k: dataset_dir(i) for k, i in ids.items()}


def _collected(
    kind: str,
    cache: dict[str, list[Any]],
    policies: dict[str, Any],
    make_env: Callable[[], Any],
    steps: int,
    seed: int,
    n_envs: int,
    progress: Any,
    ids: dict[str, str],
) -> list[Any]:
    """Episodes of the ``kind`` policy (stochastic actions), collected once per make."""
    if kind not in cache:
        import torch

        torch.manual_seed(seed + _SEED_OFFSETS[kind])  # SB3 samples actions from torch's global RNG
        task = progress.add_task(f"{ids[kind]}: collecting", total=steps)
        cache[kind] = collect_episodes(
            make_env,
            sb3_policy(policies[kind], deterministic=False),
            steps,
            seed=seed + _SEED_OFFSETS[kind] * 1000,
            n_envs=n_envs,
            on_steps=lambda n: progress.advance(task, n),
        )
    return cache[kind]


def _train_and_save(
    make_env: Callable[[], Any],
    env_id: str,
    budget: SACBudget,
    seed: int,
    ref_episodes: int,
    policy_dir: Path,
    progress: Any,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One SAC run -> saved random/medium/expert policies, training.json, reference scores, replay."""
    import offrl

    task = progress.add_task(f"{env_id}: SAC", total=budget.sac_steps)
    started = time.perf_counter()

    def on_progress(n: int, eval_return: float | None) -> None:
        progress.advance(task, n)
        if eval_return is not None:
            progress.update(task, description=f"{env_id}: SAC (last eval return {eval_return:.1f})")
            if not progress.console.is_terminal:  # logs and workers see no live bar: one line per checkpoint
                done = int(progress.tasks[task].completed)
                progress.console.log(
                    f"{env_id} SAC step {done}/{budget.sac_steps}: eval return {eval_return:.1f} "
                    f"({time.perf_counter() - started:.0f} s)"
                )

    run = train_sac(make_env, budget, seed, on_progress)
    ref_task = progress.add_task(f"{env_id}: reference scores ({ref_episodes} episodes x 2)", total=None)
    import torch

    torch.manual_seed(seed + _SEED_OFFSETS["ref_max"])
    expert_returns = evaluate_returns(
        make_env, sb3_policy(run.model.policy, deterministic=True), ref_episodes, seed + _SEED_OFFSETS["ref_max"] * 1000
    )
    space = make_env().action_space
    random_returns = evaluate_returns(
        make_env, uniform_policy(space, seed + _SEED_OFFSETS["ref_min"]), ref_episodes, seed + _SEED_OFFSETS["ref_min"] * 1000
    )
    progress.update(ref_task, total=1, completed=1)
    medium = choose_medium(run, float(expert_returns.mean()))
    import stable_baselines3

    record = {
        "env_id": env_id,
        "seed": seed,
        "sac_budget": budget_record(budget),
        "sac_seconds": round(run.seconds, 1),
        "learning_curve": run.curve(),
        "checkpoints": {"random": 0, "medium": medium.step, "expert": run.final.step},
        "checkpoint_returns": {"random": run.checkpoints[0].eval_return, "medium": medium.eval_return, "expert": run.final.eval_return},
        "ref_min_score": float(random_returns.mean()),
        "ref_max_score": float(expert_returns.mean()),
        "ref_episodes": ref_episodes,
        "offrl_version": offrl.__version__,
        "stable_baselines3_version": stable_baselines3.__version__,
    }
    policy_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_dead_temps(policy_dir.parent)
    tmp = private_temp_dir(policy_dir.parent, "policies")
    try:
        for kind, ckpt in (("random", run.checkpoints[0]), ("medium", medium), ("expert", run.final)):
            save_policy(run, ckpt, tmp / f"{kind}.zip")
        write_training_record(tmp / "training.json", record)
        if policy_dir.exists():
            shutil.rmtree(policy_dir)
        os.replace(tmp, policy_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record, run.replay(medium.step)


def _reusable_record(policy_dir: Path, budget: SACBudget, env_id: str) -> dict[str, Any] | None:
    """training.json of saved policies made with the same env and SAC budget, else None."""
    import json

    path = policy_dir / "training.json"
    if not path.is_file() or not all((policy_dir / f"{k}.zip").is_file() for k in POLICY_KINDS):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("env_id") != env_id or record.get("sac_budget") != budget_record(budget):
        return None
    return record


def _recipe_metadata(
    kind: str,
    env_id: str,
    seed: int,
    steps: int,
    budget: SACBudget,
    record: dict[str, Any],
    policy_dir: Path,
    n_episodes: int,
) -> dict[str, Any]:
    import offrl
    from offrl.data.store import datasets_root

    ckpt = record["checkpoints"]
    rel = policy_dir.relative_to(datasets_root()).as_posix()
    behaviour = {
        "random": "randomly initialised SAC policy (stochastic actions)",
        "medium": f"SAC checkpoint at step {ckpt['medium']} (~1/3 of the final return; stochastic actions)",
        "expert": f"final SAC policy at step {ckpt['expert']} (stochastic actions)",
        "medium-replay": f"SAC replay buffer, steps 0-{ckpt['medium']} (first {budget.learning_starts} uniformly random)",
        "medium-expert": "the medium episodes followed by the expert episodes",
    }[kind]
    policy_files = {
        "random": [f"{rel}/random.zip"],
        "medium": [f"{rel}/medium.zip"],
        "expert": [f"{rel}/expert.zip"],
        "medium-replay": [],
        "medium-expert": [f"{rel}/medium.zip", f"{rel}/expert.zip"],
    }[kind]
    return {
        "recipe": "offrl.datagen.recipes.locomotion",
        "behaviour_policy": behaviour,
        "policy_files": policy_files,
        "seed": seed,
        "budget": {"steps": steps, **budget_record(budget)},
        "offrl_version": offrl.__version__,
        "env_id": env_id,
        "kind": kind,
        "episodes": n_episodes,
        "checkpoint_steps": ckpt,
        "checkpoint_eval_returns": record["checkpoint_returns"],
        "sac_seconds": record["sac_seconds"],
        "training_record": f"{rel}/training.json",
        "ref_min_policy": f"uniform random actions, mean of {record['ref_episodes']} episodes",
        "ref_max_policy": f"expert (final SAC) policy, deterministic, mean of {record['ref_episodes']} episodes",
    }

