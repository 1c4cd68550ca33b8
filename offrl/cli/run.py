"""``offrl run``: train and evaluate one (critic, actor) pair on one dataset, for one seed or many."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from offrl.errors import ConfigError, RunDirError

#: Explicit flags and the config key each one sets.
FLAG_KEYS = {
    "critic": ("critic", "name"),
    "actor": ("actor", "name"),
    "dataset": ("data", "dataset"),
    "steps": ("trainer", "steps"),
    "seed": ("trainer", "seed"),
    "seeds": ("trainer", "seeds"),
    "device": ("trainer", "device"),
    "compile": ("trainer", "compile"),
    "eval_every": ("trainer", "eval_every"),
    "eval_episodes": ("trainer", "eval_episodes"),
    "save_every": ("trainer", "save_every"),
    "threads": ("trainer", "threads"),
    "eval_env": ("eval", "env"),
    "online_steps": ("online", "steps"),
}

#: Exit code of a run in which a seed diverged (non-finite losses or weights).
EXIT_DIVERGED = 3


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from offrl.cli.terminal import HelpFormatter

    p = sub.add_parser(
        "run",
        help="train and evaluate a critic + actor pair on a dataset",
        description="Train and evaluate a (critic, actor) pair. Precedence, lowest first: "
        "defaults < --preset < --config < --set and explicit flags.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--critic", help="critic name (see: offrl list critic; default expectile)")
    p.add_argument("--actor", help="actor name (see: offrl list actor; default diffusion-resample)")
    p.add_argument("--dataset", help="Minari dataset id (default offrl/bandit/multimodal-v0, built in)")
    p.add_argument("--steps", help="trainer iterations (trainer.steps)")
    p.add_argument("--seed", help="seed (trainer.seed)")
    p.add_argument("--seeds", help="train several seeds in one process, e.g. 0-7 or 0,3,5 (trainer.seeds); "
                                   "each seed gets its own run directory OUT/seed<S>")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (trainer.device)")
    p.add_argument("--compile", help="speed mode: auto | off | on | graph (trainer.compile, see docs/performance.md)")
    p.add_argument("--out", help="run directory (default: runs/<critic>_<actor>_<dataset>_seed<S>_<time>)")
    p.add_argument("--eval-every", dest="eval_every", help="evaluate every N iterations")
    p.add_argument("--eval-episodes", dest="eval_episodes", help="episodes per evaluation")
    p.add_argument("--eval-env", dest="eval_env", metavar="ENV_ID",
                   help="evaluate in this registered gymnasium environment instead of the dataset's (eval.env; "
                        "its spaces must match the data)")
    p.add_argument("--save-every", dest="save_every", help="checkpoint every N iterations")
    p.add_argument("--online-steps", dest="online_steps",
                   help="environment steps per seed after the offline steps (online.steps; docs/online.md)")
    p.add_argument("--threads", help="CPU intra-op threads (0 = 1 thread, the measured fastest)")
    p.add_argument("--preset", help="a paper's hyperparameter set (see: offrl list preset)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, to register your own critics/actors (repeatable; recorded in the "
                        "run's config; also OFFRL_PLUGINS and installed 'offrl.plugins' entry points)")
    p.add_argument("--config", help="TOML or JSON file with [critic]/[actor]/[data]/[trainer] tables")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="set any hyperparameter, e.g. critic.tau=0.9, data.reward=locomotion; actor@NAME.KEY=V applies only "
                        "when NAME is the actor (likewise critic@NAME.KEY), actor@CRITIC+ACTOR.KEY=V only to that "
                        "pairing (repeatable)")
    p.add_argument("--resume", nargs="+", metavar="RUN_DIR",
                   help="continue the run(s) in RUN_DIR from the latest checkpoint; a multi-seed run's directory "
                        "continues all its seeds (device, threads and compile may change, nothing else)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def build_layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Config layers from the command line, lowest precedence first (presets, file, --set/flags)."""
    from offrl.config import load_config_file, parse_set
    from offrl.presets import PRESETS

    file_layer = load_config_file(args.config) if args.config else None
    preset = args.preset
    if file_layer is not None and "preset" in file_layer:
        named = file_layer.pop("preset")
        if not isinstance(named, str) or (preset is not None and named != preset):
            raise ConfigError(f"The config file {args.config} names preset {named!r} but --preset is {preset!r}; "
                              "give one preset.")
        preset = named
    layers: list[dict[str, Any]] = []
    if preset is not None:  # an empty name is an unknown preset, not "no preset"
        layers.append(PRESETS.get(preset).layer())
    if file_layer is not None:
        layers.append(file_layer)
    top = parse_set(args.sets)
    for flag, (section, key) in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            top.setdefault(section, {})[key] = value
    if getattr(args, "plugins", None):
        top["plugins"] = list(args.plugins)
    layers.append(top)
    return layers


def run(args: argparse.Namespace) -> int:
    from offrl.config import resolve
    from offrl.trainer.api import start

    if args.resume:
        trainer = _resume(args)
        from offrl.cli.terminal import print_warning

        for note in getattr(trainer, "notes", []):  # a checkpoint that could not be used: continued from another
            print_warning(f"not used: {note}")
    else:
        layers = build_layers(args)
        cfg = resolve(layers)
        note = default_steps_note(layers, cfg.trainer.steps)
        if note:
            from offrl.cli.terminal import print_warning

            print_warning(note)
        trainer = start(cfg, Path(args.out) if args.out else default_run_dir(cfg), show_progress=not args.quiet)
    try:
        results = trainer.run()
    except KeyboardInterrupt:
        import sys

        target = trainer.group_dir if trainer.group_dir is not None else " ".join(str(r.run_dir) for r in trainer.runs)
        print(f"Stopped at step {trainer.step}; checkpoint saved. Continue with:\n  offrl run --resume {target}",
              file=sys.stderr, flush=True)
        return 130
    print_summary([r.summary for r in results], trainer.cfg.trainer.steps + trainer.cfg.online.steps)
    if trainer.cfg.eval.ope:
        from offrl.ope import after_training

        for est in after_training(results, trainer.cfg):
            ci = est["ci"]
            print(f"OPE (FQE, {est['split']}) {est['run_dir']}: initial-state value {est['estimate']:.4g}"
                  + (f" (CI {ci[0]:.4g} … {ci[1]:.4g})" if ci else ""), flush=True)
    diverged = [r for r in results if r.summary.get("status") == "diverged"]
    for r in diverged:
        from offrl.cli.terminal import print_error

        kept = r.summary.get("last_checkpoint_step")
        print_error(f"seed {r.summary['seed']} diverged at {r.summary.get('diverged')}; "
                    + (f"its last good checkpoint (step {kept}) is kept in {r.run_dir}. "
                       if kept is not None else "it had no checkpoint yet. ")
                    + "Lower the learning rates or clip gradients (critic.max_grad_norm, actor.max_grad_norm).")
    return EXIT_DIVERGED if diverged else 0


def default_steps_note(layers: list[dict[str, Any]], steps: int) -> str | None:
    """Said up front when no layer chose trainer.steps: a bare ``offrl run`` is a papers'-budget run of hours."""
    if any("steps" in layer.get("trainer", {}) for layer in layers):
        return None
    return (f"{steps:,} training steps: trainer.steps' default (the papers' budget), as neither --steps, a preset "
            "nor a config file sets it; the progress line shows the time left once the rate is measured. A first "
            "run that ends in under a minute: offrl run --preset bandit")


def _resume(args: argparse.Namespace) -> Any:
    """Continue runs; flags that change how the run executes apply, anything else must match.

    Only the plugins named here (``--plugin``, the ``--config`` file, ``OFFRL_PLUGINS``, entry points) are
    imported, never those the run's config.json records (see offrl.plugins)."""
    from offrl.config import RUNTIME_KEYS, resolve
    from offrl.plugins import load_plugins
    from offrl.trainer.api import continue_runs, load_run_config, resume_dirs, saved_config_layer

    if args.out:
        raise RunDirError("--out cannot be combined with --resume: a run continues in its own directory.")
    requested = build_layers(args)
    plugins = [m for layer in requested for m in layer.get("plugins", [])]
    load_plugins(plugins)
    runtime = {k: requested[-1]["trainer"].pop(k) for k in list(requested[-1].get("trainer", {}))
               if k in RUNTIME_KEYS and k != "seeds"}
    if "seeds" in requested[-1].get("trainer", {}):
        raise RunDirError("--seeds cannot be combined with --resume: the run continues the seeds it has.")
    first = resume_dirs(args.resume[0])[0][0]
    saved = load_run_config(first)  # the plugins it needs are loaded (or one message says which)
    if any(layer for layer in requested if any(v for k, v in layer.items() if k != "plugins") or "preset" in layer):
        _check_same(saved, resolve([saved_config_layer(first), *requested]), first)
    return continue_runs(args.resume, show_progress=not args.quiet, runtime=runtime)


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
    seeds = f"seeds{cfg.trainer.seeds.replace(',', '_')}" if cfg.trainer.seeds else f"seed{cfg.trainer.seed}"
    return Path("runs") / f"{cfg.critic}_{cfg.actor}_{ds}_{seeds}_{stamp}"


def print_summary(summaries: list[dict[str, Any]], total_steps: int) -> None:
    from rich.table import Table

    from offrl.cli.terminal import console

    def fmt(v: Any, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    first = summaries[0]
    key = first.get("score_key", "normalized_score_100")
    label = {"success_rate_100": "success (0-100)", "normalized_score_100": "score (0-100)"}.get(key, "return")
    final_key = {"success_rate_100": "final_success_rate_100", "return_mean": "final_return"}.get(key, "final_score_100")
    best_key = {"success_rate_100": "best_success_rate_100", "return_mean": "best_return"}.get(key, "best_score_100")
    seeds = ", ".join(str(s["seed"]) for s in summaries)
    out = console()

    def build(with_path: bool) -> Table:
        table = Table(title=f"{first['critic']} + {first['actor']} on {first['dataset']} "
                            f"({'seed' if len(summaries) == 1 else 'seeds'} {seeds})")
        columns = ["seed", f"final {label}", f"best {label}", "status", "steps", "wall time"]
        for col in columns + (["run directory"] if with_path else []):
            table.add_column(col, overflow="fold", no_wrap=col == "run directory")
        for s in summaries:
            status = s["status"] if s["status"] != "diverged" else f"diverged ({s.get('diverged', '')})"
            row = [str(s["seed"]), fmt(s.get(final_key)), f"{fmt(s.get(best_key))} @ {s.get('best_step')}",
                   status, f"{s['steps']}/{total_steps}", f"{s['wall_time_s']:.1f} s"]
            table.add_row(*row, *([s["run_dir"]] if with_path else []))
        finals = [s.get(final_key) for s in summaries if s.get(final_key) is not None and s["status"] == "finished"]
        if len(summaries) > 1 and finals:
            mean = sum(finals) / len(finals)
            table.add_row("mean", f"{mean:.1f} (n={len(finals)})", *[""] * (len(table.columns) - 2))
        if first.get("evaluation_unavailable"):
            table.caption = f"No evaluation: {first['evaluation_unavailable']}."
        elif first.get("score_unavailable") and key == "return_mean":
            table.caption = f"Scores are raw returns: {first['score_unavailable']}."
        return table

    # a run directory is something to copy: never folded inside a cell. Where the table with it would not
    # fit the terminal, the paths go below the table, one whole (soft-wrapped) line each.
    table = build(with_path=True)
    from rich.measure import Measurement

    paths_below = Measurement.get(out, out.options.update_width(10_000), table).maximum > out.width
    if paths_below:
        table = build(with_path=False)
    out.print(table)
    if paths_below:
        for s in summaries:
            out.print(f"seed {s['seed']}: {s['run_dir']}", markup=False)
    if first.get("evaluations"):
        out.print(evaluation_line(first))


def evaluation_line(summary: dict[str, Any]) -> str:
    """What evaluation cost the run: time evaluating, where, and the share of wall time training waited."""
    share = summary.get("eval_share")
    waited = "" if share is None else (f", training waited {summary.get('eval_blocking_s', 0.0):.1f} s "
                                       f"= {100 * share:.0f}% of wall time")
    return (f"evaluation: {summary['evaluations']} × ({summary.get('eval_where', 'in-process')}), "
            f"{summary.get('eval_s', 0.0):.1f} s evaluating{waited}")
