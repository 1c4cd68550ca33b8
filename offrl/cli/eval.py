"""``offrl eval``: evaluate a run's saved policy on its dataset's evaluation environment, optionally on video."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable



def add_parser(sub: Any) -> argparse.ArgumentParser:
    from offrl.cli.terminal import HelpFormatter

    p = sub.add_parser(
        "eval",
        help="evaluate a run's saved policy (final or best), optionally recording videos",
        description="Evaluate the policy a run saved (policy_final.pt or policy_best.pt) on the evaluation "
        "environment of the run's dataset: the same protocol as training's evaluations (episode seeds from "
        "--seed), reported as returns, normalised score and success rate where the dataset declares one.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", help="a run directory (for a multi-seed run: one of its seed<S> directories)")
    p.add_argument("--which", choices=["final", "best"], default="final", help="which saved policy")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the episodes and of the policy's sampling (default: the run's seed, which "
                        "reproduces the evaluation logged at the policy's step)")
    p.add_argument("--device", default=None,
                   help="cpu | cuda | cuda:N | auto (default: the device type the run trained on, which reproduces "
                        "its logged scores; cpu when that is not available here)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: the plugin a run of your own critic or actor needs (repeatable; the "
                        "plugins a policy file names are never imported for you)")
    p.add_argument("--video", metavar="DIR",
                   help="also write an MP4 of every episode to DIR (needs `pip install 'offrl[video]'`; rendering is "
                        "headless: MUJOCO_GL defaults to egl)")
    p.add_argument("--env", metavar="ENV_ID",
                   help="evaluate in this registered gymnasium environment instead of the run's (its spaces must "
                        "match the policy's); the dataset need not be present")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from offrl.cli.terminal import console
    from offrl.data.dataset import score_unavailable_reason
    from offrl.data.preprocess import ObsNormalizer
    from offrl.errors import ConfigError
    from offrl.policy import load_policy
    from offrl.trainer.evaluation import EvalSpec, Evaluator

    from offrl.validation import MAX_SEED

    if args.episodes < 1 or args.episodes > 100_000:
        raise ConfigError(f"--episodes must be between 1 and 100,000, got {args.episodes}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}")
    if args.video and Path(args.video).exists() and not Path(args.video).is_dir():
        raise ConfigError(f"--video '{args.video}' is a file; give a folder for the MP4s (it is created if needed).")
    device, note = _device(args.device, args.run_dir, args.which)
    if note:
        from offrl.cli.terminal import console as _console

        _console(stderr=True).print(f"note: {note}")
    policy = load_policy(args.run_dir, which=args.which, device=device, plugins=args.plugins)
    if args.seed is None:
        args.seed = policy.config.trainer.seed
    policy.seed(args.seed)
    dataset_id = policy.config.data.dataset
    render = "rgb_array" if args.video else None
    if args.video:
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            import moviepy  # noqa: F401  (gymnasium's RecordVideo writes MP4s with it)
        except ImportError:
            raise ConfigError("--video needs moviepy: `pip install 'offrl[video]'`.") from None
    make_env, scoring = evaluation_target(policy, args.env, args.run_dir, render)
    if args.video:
        make_env = _recording(make_env, Path(args.video), f"{args.which}-step{policy.step}")
    target = EvalSpec(make_env, policy.scaler, ObsNormalizer.identity(policy.obs_dim), scoring.get("success_key"),
                      scoring.get("ref_min_score"), scoring.get("ref_max_score"),
                      score_unavailable_reason(scoring.get("ref_min_score"), scoring.get("ref_max_score"),
                                               "success_rate" if scoring.get("success_key") else None))
    envs = 1 if args.video else min(10, args.episodes)
    evaluator = Evaluator(target, 1, envs, device)

    def act(obs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        # the evaluator hands over flat raw observations [1, n, O] and the evaluation's generator (so that
        # --seed S at the policy's step reproduces the evaluation training logged for seed S)
        unit = policy.act_unit(obs[0].cpu().numpy(), generator=gens[0])
        return torch.as_tensor(unit).unsqueeze(0)

    try:
        [result] = evaluator.evaluate(act, args.episodes, [args.seed], step=policy.step)
    finally:
        evaluator.close()
    result = {"run_dir": str(args.run_dir), "which": args.which, "policy_step": policy.step, **result}
    if args.video:
        result["videos"] = sorted(str(p) for p in Path(args.video).glob("*.mp4"))
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.table import Table

    table = Table(title=f"{policy.config.critic} + {policy.config.actor} on {dataset_id}: {args.which} policy "
                        f"(step {policy.step}), {args.episodes} episode{'s' if args.episodes != 1 else ''}")
    for col in ("return", "score (0-100)", "success (%)", "length"):
        table.add_column(col)

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    table.add_row(f"{result['return_mean']:.2f} ± {result['return_std']:.2f}", fmt(result.get("normalized_score_100")),
                  fmt(result.get("success_rate_100")), f"{result['length_mean']:.0f}")
    if args.video:
        from offrl.cli.terminal import plural

        table.caption = f"{plural(len(result['videos']), 'video')} in {args.video}"
    console().print(table)
    return 0


def evaluation_target(policy: Any, env_id: str | None, run_dir: str, render: str | None
                      ) -> tuple[Callable[[], Any], dict[str, Any]]:
    """(environment factory, scoring: reference scores and success key) for evaluating ``policy``.

    The environment: ``--env``, else the run's ``eval.env``, else the dataset's recorded one — read from the
    dataset when it is in the store, else from what the policy file recorded of it (so the dataset need not be
    present). The scoring: what the policy file recorded, else the dataset's metadata."""
    from offrl.data.dataset import open_dataset
    from offrl.data.evalenv import EnvFactory, checked_env_factory, env_factory
    from offrl.data.store import is_local
    from offrl.errors import DatasetError

    dataset_id = policy.config.data.dataset
    recorded = dict(policy.scoring)
    scoring = {k: recorded.get(k) for k in ("ref_min_score", "ref_max_score", "success_key")}
    local = is_local(dataset_id)
    decl = meta = ds = None
    if local and (not recorded or not (env_id or policy.config.eval.env)):
        ds, meta, decl = open_dataset(dataset_id, make_missing=False)
        if not recorded:
            scoring = {"ref_min_score": decl.ref_min_score, "ref_max_score": decl.ref_max_score,
                       "success_key": decl.success_key if decl.primary_metric == "success_rate" else None}
    chosen = env_id or policy.config.eval.env
    if chosen:
        return checked_env_factory(chosen, policy.obs_dim, policy.scaler.low, policy.scaler.high,
                                   f"the policy of '{run_dir}'", render), scoring
    if ds is not None:
        make_env, why = env_factory(ds, meta, render_mode=render)
        if make_env is None:
            raise DatasetError(f"'{dataset_id}' cannot be evaluated: {why}; give an environment with --env ENV_ID.")
        return make_env, scoring
    if recorded.get("env_id"):
        return checked_env_factory(recorded["env_id"], policy.obs_dim, policy.scaler.low, policy.scaler.high,
                                   f"the policy of '{run_dir}'", render), scoring
    if recorded.get("env_spec"):
        from gymnasium.envs.registration import EnvSpec

        return EnvFactory(EnvSpec.from_json(recorded["env_spec"]), recorded.get("env_entry_point"), dataset_id,
                          render), scoring
    raise DatasetError(f"The dataset '{dataset_id}' is not in the local store and the policy file records no "
                       "evaluation environment (it predates offrl recording one, or its run had none): give one "
                       "with --env ENV_ID, or make the dataset available.")


def _recording(make_env: Callable[[], Any], folder: Path, prefix: str) -> Callable[[], Any]:
    """Every episode to ``folder/PREFIX-episode-N.mp4`` (RecordVideo makes the folder and warns only when it
    already holds videos, which this may overwrite)."""
    import gymnasium as gym

    def make() -> Any:
        return gym.wrappers.RecordVideo(make_env(), str(folder), episode_trigger=lambda _: True,
                                        name_prefix=prefix, disable_logger=True)

    return make


def _device(requested: str | None, run_dir: str, which: str) -> tuple[Any, str]:
    """The device to evaluate on and a note: ``requested`` (checked), else the run's own device type when
    this machine has it — so the acting noise, drawn on that device, is the logged evaluation's."""
    import torch

    from offrl.policy import policy_file
    from offrl.trainer.runtime import resolve_device

    if requested is not None:
        return resolve_device(requested), ""
    try:
        saved = torch.load(policy_file(run_dir, which), map_location="cpu", weights_only=True)
        trained_on = str(saved.get("device", "cpu")) if isinstance(saved, dict) else "cpu"
    except Exception:  # load_policy reports an unreadable file properly
        return torch.device("cpu"), ""
    kind = trained_on.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), (f"the run trained on {trained_on}; evaluating on cpu here, so sampling actors "
                                     "draw other noise than the logged evaluations did (scores agree statistically, "
                                     "not exactly)")
    return resolve_device("cuda" if kind == "cuda" else "cpu"), ""
