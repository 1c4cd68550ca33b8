"""Off-policy evaluation: how good is a run's policy, from its logged data alone (no environment).

:func:`evaluate_run` (``offrl ope RUN``) fits FQE (:mod:`offrl.ope.fqe`) for the
run's saved policy on its dataset — every episode, the run's training episodes,
or the episodes it held out (``data.validation_fraction``) — and writes
``RUN/ope_<which>.json``: the initial-state value, its bootstrap CI, and, where
the discounted value is the return (γ = 1, or every transition terminal as in
the bandit), the return and the normalised score. ``offrl report`` ranks runs
by it when their dataset's runs have no evaluation. ``eval.ope=true``
writes it at the end of training (``eval.ope_steps``, ``eval.ope_split``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from offrl.errors import ConfigError, unknown
from offrl.ope.fqe import SPLITS, FQEConfig, FQEResult, fit_fqe

#: The file an OPE estimate is written to, per saved policy.
OPE_FILE = "ope_{which}.json"


def ope_path(run_dir: str | Path, which: str = "final") -> Path:
    return Path(run_dir) / OPE_FILE.format(which=which)


def split_arrays(policy: Any, split: str) -> tuple[Any, Any]:
    """(transitions of ``split`` with raw observations and rewards, the loaded dataset) for ``policy``'s run."""
    from offrl.data.dataset import load_offline_dataset
    from offrl.data.split import split_dataset, take_episodes

    if split not in SPLITS:
        raise unknown("OPE split (--split)", split, SPLITS)
    d = policy.config.data
    ds = load_offline_dataset(d.dataset, reward="none", normalize_obs=False, action_clip_eps=d.action_clip_eps,
                              check_env=False)
    if split == "all":
        return ds.arrays, ds
    parts = split_dataset(ds.arrays, d)
    if split == "heldout":
        if parts.validation is None:
            raise ConfigError(f"--split heldout needs episodes the run never trained on, but this run held none out "
                              f"(data.validation_fraction={d.validation_fraction}). Train with --set "
                              "data.validation_fraction=0.1 (say), or use --split all / train.")
        return parts.validation, ds
    train_eps = np.setdiff1d(np.arange(parts.episodes.n_episodes), parts.episodes.validation)
    return take_episodes(ds.arrays, train_eps), ds


def evaluate_run(run_dir: str | Path, which: str = "final", split: str = "all", cfg: FQEConfig | None = None,
                 plugins: tuple[str, ...] = (), write: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """FQE of ``run_dir``'s ``which`` policy on ``split``; the result (also written to ``ope_<which>.json``)."""
    from offrl import rundir
    from offrl.policy import load_policy

    cfg = cfg or FQEConfig()
    policy = load_policy(run_dir, which=which, device="cpu", plugins=plugins, seed=cfg.seed)
    arrays, ds = split_arrays(policy, split)
    gamma = cfg.gamma if cfg.gamma >= 0 else float(getattr(policy.config.critic_cfg, "discount", 0.99))
    result: FQEResult = fit_fqe(policy, arrays, cfg, gamma, progress)
    out: dict[str, Any] = {"method": "fqe", "run_dir": str(run_dir), "which": which, "policy_step": policy.step,
                           "dataset": policy.config.data.dataset, "split": split, **result.to_dict()}
    is_return = gamma == 1.0 or bool(np.all(np.asarray(arrays.terminals) == 1))
    out["estimate_is_return"] = is_return  # the discounted value equals the return the environment reports
    if is_return:
        out["return_estimate"] = result.estimate
        score = ds.normalized_score_100(np.asarray([result.estimate, *(result.ci or ())]))
        if score is not None:
            out["normalized_score_100"] = float(score[0])
            out["normalized_score_100_ci"] = [float(score[1]), float(score[2])] if result.ci else None
    if write:
        rundir.write_json(ope_path(run_dir, which), out)
    return out


def after_training(results: list[Any], cfg: Any) -> list[dict[str, Any]]:
    """``eval.ope=true``: the FQE estimate of each finished run's final policy, written beside it."""
    if not getattr(cfg.eval, "ope", False):
        return []
    out = []
    for r in results:
        if r.summary.get("status") == "finished" and (Path(r.run_dir) / "policy_final.pt").is_file():
            out.append(evaluate_run(r.run_dir, "final", cfg.eval.ope_split, FQEConfig(steps=cfg.eval.ope_steps,
                                                                                         seed=int(r.summary.get("seed", 0))),
                                    plugins=tuple(cfg.plugins)))
    return out


def read_ope(run_dir: str | Path, which: str = "final") -> dict[str, Any] | None:
    """The OPE estimate written for ``run_dir`` (None when there is none)."""
    from offrl import rundir

    return rundir.read_json(ope_path(run_dir, which))


__all__ = ["FQEConfig", "OPE_FILE", "SPLITS", "after_training", "evaluate_run", "fit_fqe", "ope_path", "read_ope", "split_arrays"]
