"""``offrl ope``: off-policy evaluation (FQE) of a run's saved policy from its dataset alone (offrl.ope)."""
from __future__ import annotations

import argparse
from typing import Any

#: FQE settings exposed as flags: (flag, FQEConfig field, type).
FLAGS = (("--steps", "steps", int), ("--bootstrap", "bootstrap", int), ("--gamma", "gamma", float),
         ("--batch-size", "batch_size", int), ("--lr", "lr", float), ("--hidden", "hidden", int),
         ("--action-samples", "action_samples", int), ("--confidence", "confidence", float), ("--seed", "seed", int))


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from offrl.cli.terminal import HelpFormatter
    from offrl.ope.fqe import FQEConfig

    p = sub.add_parser(
        "ope",
        help="estimate a run's policy value from its dataset alone (fitted Q evaluation, bootstrap CI)",
        description="Fitted Q evaluation (FQE, as d3rlpy's) of the run's saved policy on its dataset: the mean "
        "initial-state value (discounted, raw rewards) with a bootstrap CI over episodes; written to "
        "RUN/ope_WHICH.json, which `offrl report` ranks by when the runs have no evaluation. No environment is needed.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="a run directory (for a multi-seed run: one of its seed<S> folders)")
    p.add_argument("--which", choices=["final", "best"], default="final", help="which saved policy")
    p.add_argument("--split", default="all", help="all (every episode) | train (the run's training episodes) | "
                   "heldout (the episodes it held out: data.validation_fraction)")
    defaults = FQEConfig()
    for flag, key, typ in FLAGS:
        help_ = FQEConfig.__dataclass_fields__[key].metadata["help"]
        p.add_argument(flag, dest=key, type=typ, default=None, help=f"{help_} (default {getattr(defaults, key)})")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: the plugin a run of your own critic or actor needs (repeatable)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from offrl.ope import evaluate_run
    from offrl.ope.fqe import FQEConfig

    cfg = FQEConfig(**{key: getattr(args, key) for _, key, _ in FLAGS if getattr(args, key) is not None})

    def progress(step: int, total: int) -> None:
        if not args.quiet and not args.json:
            print(f"\rFQE {step}/{total} steps", end="", file=sys.stderr, flush=True)

    out = evaluate_run(args.run_dir, args.which, args.split, cfg, tuple(args.plugins), progress=progress)
    if not args.quiet and not args.json:
        print(file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(out))
        return 0
    ci = out["ci"]
    level = f"{100 * cfg.confidence:g}%"
    text = (f"FQE of {args.run_dir} ({args.which} policy, step {out['policy_step']}) on {out['dataset']} "
            f"[{out['split']}: {out['episodes']:,} episodes, {out['transitions']:,} transitions]\n"
            f"  initial-state value (γ = {out['gamma']:g}, raw rewards): {out['estimate']:.4g}"
            + (f"  ({level} bootstrap CI {ci[0]:.4g} … {ci[1]:.4g}, {cfg.bootstrap} resamples)" if ci else ""))
    if out.get("normalized_score_100") is not None:
        sci = out.get("normalized_score_100_ci")
        text += (f"\n  = expected return; normalised score {out['normalized_score_100']:.1f}"
                 + (f" ({sci[0]:.1f} … {sci[1]:.1f})" if sci else ""))
    text += f"\n  TD loss {out['td_loss']:.3g}, {out['seconds']:.1f} s; written to {args.run_dir}/ope_{args.which}.json"
    print(text)
    return 0
