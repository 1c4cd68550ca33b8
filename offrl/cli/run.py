"""``offrl run``: train and evaluate one (critic, actor) pair on one dataset."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from offrl.errors import RunDirError

#: Explicit flags and the config key each one sets.
FLAG_KEYS = {
    "critic": ("critic", "name"),
    "actor": ("actor", "name"),
    "dataset": ("data", "dataset"),
    "steps": ("trainer", "steps"),
    "seed": ("trainer", "seed"),
    "device": ("trainer", "device"),
    "eval_every": ("trainer", "eval_every"),
    "eval_episodes": ("trainer", "eval_episodes"),
    "save_every": ("trainer", "save_every"),
    "threads": ("trainer", "threads"),
}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="train and evaluate a critic + actor pair on a dataset",
        description="Train and evaluate a (critic, actor) pair. Precedence, lowest first: "
        "defaults < --preset < --config < --set and explicit flags.",
    )
    p.add_argument("--critic", help="critic name (see `offrl list critic`); default expectile")
    p.add_argument("--actor", help="actor name (see `offrl list actor`); default diffusion-resample")
    p.add_argument("--dataset", help="Minari dataset id; default offrl/bandit/multimodal-v0 (built in)")
    p.add_argument("--steps", help="trainer iterations (trainer.steps)")
    p.add_argument("--seed", help="seed (trainer.seed)")
    p.add_argument("--device", help="auto | cpu | cuda (trainer.device)")
    p.add_argument("--out", help="run directory (default: runs/<critic>_<actor>_<dataset>_seed<S>_<time>)")
    p.add_argument("--eval-every", dest="eval_every", help="evaluate every N iterations")
    p.add_argument("--eval-episodes", dest="eval_episodes", help="episodes per evaluation")
    p.add_argument("--save-every", dest="save_every", help="checkpoint every N iterations")
    p.add_argument("--threads", help="CPU intra-op threads (0 = 1 thread, the measured fastest)")
    p.add_argument("--preset", help="a paper's hyperparameter set (see `offrl list preset`)")
    p.add_argument("--config", help="TOML or JSON file with [critic]/[actor]/[data]/[trainer] tables")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="set any hyperparameter, e.g. critic.tau=0.9, data.reward=locomotion (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Config layers from the command line, lowest precedence first (presets, file, --set/flags)."""
    from offrl.config import load_config_file, parse_set

    layers: list[dict[str, Any]] = []
    if args.preset:
        from offrl.presets import PRESETS

        layers.append(PRESETS.get(args.preset).layer())
    if args.config:
        layers.append(load_config_file(args.config))
    top = parse_set(args.sets)
    for flag, (section, key) in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            top.setdefault(section, {})[key] = value
    layers.append(top)
    return layers


def run(args: argparse.Namespace) -> int:
    from offrl.config import resolve
    from offrl.trainer.trainer import Trainer, load_run_config, saved_config_layer

    if args.resume:
        run_dir = Path(args.resume)
        cfg = load_run_config(run_dir)
        requested = build_layers(args)
        if any(layer for layer in requested):
            _check_same(cfg, resolve([saved_config_layer(run_dir), *requested]), run_dir)
        trainer = Trainer(cfg, run_dir, resume=True, show_progress=not args.quiet)
    else:
        cfg = resolve(build_layers(args))
        run_dir = Path(args.out) if args.out else default_run_dir(cfg)
        trainer = Trainer(cfg, run_dir, show_progress=not args.quiet)
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        from offrl.cli.main import print_error

        print_error(f"interrupted at step {trainer.step}; checkpoint saved. Continue with `offrl run --resume {run_dir}`.")
        return 130
    print_summary(result.summary, cfg.trainer.steps)
    return 0


def _check_same(saved: Any, requested: Any, run_dir: Path) -> None:
    a, b = saved.comparable(), requested.comparable()
    diffs = [
        f"{section}.{k}: run has {a[section].get(k)!r}, you asked {b[section].get(k)!r}"
        for section in ("critic", "actor", "data", "trainer")
        for k in sorted(set(a[section]) | set(b[section]))
        if a[section].get(k) != b[section].get(k)
    ]
    if a.get("preset") != b.get("preset") and b.get("preset") is not None:
        diffs.append(f"preset: run has {a.get('preset')!r}, you asked {b.get('preset')!r}")
    if diffs:
        raise RunDirError(
            f"Cannot resume '{run_dir}' with a different config ({'; '.join(diffs)}). "
            "Resume without those options, or start a new run with --out."
        )


def default_run_dir(cfg: Any) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ds = cfg.data.dataset.replace("/", "-")
    return Path("runs") / f"{cfg.critic}_{cfg.actor}_{ds}_seed{cfg.trainer.seed}_{stamp}"


def print_summary(summary: dict[str, Any], total_steps: int) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(v: Any, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    table = Table(title=f"{summary['critic']} + {summary['actor']} on {summary['dataset']} (seed {summary['seed']})")
    for col in ("final score (0-100)", "best score (0-100)", "final return", "steps", "wall time", "run directory"):
        table.add_column(col)
    table.add_row(
        fmt(summary.get("final_score_100")),
        f"{fmt(summary.get('best_score_100'))} @ {summary.get('best_step')}",
        fmt(summary.get("final_return"), ".4g"),
        f"{summary['steps']}/{total_steps}",
        f"{summary['wall_time_s']:.1f} s",
        summary["run_dir"],
    )
    Console().print(table)
