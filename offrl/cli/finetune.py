"""``offrl finetune RUN_DIR --online-steps N --out NEW_DIR``: N more environment steps of a finished run
(its online phase, or the continuation of the one it had; docs/online.md)."""
from __future__ import annotations

import argparse
from typing import Any

from offrl.errors import ConfigError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("finetune", help="fine-tune a finished run in its environment (online phase)",
                       description="Copy a finished run (or multi-seed group) to --out and give it N more "
                                   "environment steps from its final checkpoint: an online phase after its offline "
                                   "steps, or, for a run that already had one (a fine-tuned run), that phase "
                                   "continued with its replay and environments. The new run records its parent.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run or multi-seed group directory")
    p.add_argument("--online-steps", dest="online_steps", required=True, help="environment steps per seed, after the parent's own")
    p.add_argument("--out", required=True, help="the new run directory")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="online.KEY=VALUE",
                   help="other online keys, e.g. online.offline_fraction=0.5 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def run(args: argparse.Namespace) -> int:
    from offrl.cli.run import print_summary
    from offrl.config import parse_set
    from offrl.online.finetune import finetune

    layer = parse_set(args.sets)
    if set(layer) - {"online"}:
        raise ConfigError(f"offrl finetune changes only online.* keys; got {', '.join(sorted(set(layer) - {'online'}))}.")
    online = {**layer.get("online", {}), "steps": args.online_steps}
    try:
        steps = int(str(online["steps"]).replace("_", ""))
    except ValueError:
        raise ConfigError(f"--online-steps={args.online_steps!r} is not an integer.") from None
    online["steps"] = steps
    trainer = finetune(args.run_dir, args.out, online, show_progress=not args.quiet)
    try:
        results = trainer.run()
    except KeyboardInterrupt:
        import sys

        print(f"Stopped during the online phase; continue with `offrl run --resume {args.out}` (from its last "
              "checkpoint: trainer.save_every environment steps, or the stop).", file=sys.stderr, flush=True)
        return 130
    print_summary([r.summary for r in results], trainer.cfg.trainer.steps + trainer.cfg.online.steps)
    return 0
