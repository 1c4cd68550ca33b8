"""Speed baseline: trainer updates per second and evaluation time per episode.

    python benchmarks/throughput.py --critic expectile --actor gaussian-awr --device cpu --threads 1 2

Prints one row per thread count (CPU) with the median updates/s over repeats
(after warm-up), its ratio to the first row, and the evaluation time per
episode. No thresholds: this is the baseline later speed work is measured
against. Absolute numbers mean something only on a GPU or an idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import offrl  # noqa: E402
from offrl.trainer.evaluation import Evaluator  # noqa: E402
from offrl.trainer.trainer import start  # noqa: E402


def measure(args: argparse.Namespace, threads: int) -> dict[str, float]:
    overrides = {"trainer.device": args.device, "trainer.threads": threads, "trainer.steps": 10**6,
                 "trainer.compile": "off"}
    for item in args.set:
        k, v = item.split("=", 1)
        overrides[k] = v
    cfg = offrl.make_config(critic=args.critic, actor=args.actor, dataset=args.dataset, preset=args.preset,
                            overrides=overrides)
    with tempfile.TemporaryDirectory() as d:
        trainer = start(cfg, Path(d) / "run")
        learner = trainer.learner
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        learner.train(args.warmup)
        sync()
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            learner.train(args.updates)
            learner.read_metrics()  # include the once-per-log host sync
            sync()
            rates.append(args.updates / (time.perf_counter() - t0))
        evaluator = Evaluator(trainer.dataset, 1, min(10, args.eval_episodes), trainer.device)
        t0 = time.perf_counter()
        evaluator.evaluate(learner.act, args.eval_episodes, [0], 0)
        eval_s = (time.perf_counter() - t0) / args.eval_episodes
        evaluator.close()
        trainer.release()
    return {"updates_per_s": statistics.median(rates), "min": min(rates), "max": max(rates), "eval_s_per_episode": eval_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--critic", default="expectile")
    p.add_argument("--actor", default="gaussian-awr")
    p.add_argument("--dataset", default=None)
    p.add_argument("--preset", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--updates", type=int, default=200, help="trainer iterations per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    table = Table(title=f"{args.critic} + {args.actor} on {args.device} (median of {args.repeats} × {args.updates} iterations)")
    for col in ("threads", "iterations/s (median)", "min–max", "ratio", "eval s/episode"):
        table.add_column(col)
    base = None
    for threads in args.threads:
        r = measure(args, threads)
        base = base or r["updates_per_s"]
        table.add_row(str(threads), f"{r['updates_per_s']:.1f}", f"{r['min']:.1f}–{r['max']:.1f}",
                      f"{r['updates_per_s'] / base:.2f}", f"{r['eval_s_per_episode']:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
