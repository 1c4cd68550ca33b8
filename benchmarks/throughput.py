"""Training throughput, side by side in one run: offrl's speed modes and seed counts, and d3rlpy as the peer.

    python benchmarks/throughput.py                                  # IQL, IDQL, EDP on CPU, 1 pinned thread
    python benchmarks/throughput.py --pairings iql --seeds 1 8 32 --peer d3rlpy --rounds 3
    python benchmarks/throughput.py --device cuda --modes off graph --seeds 1 32 --json

Every measurement runs in a fresh process pinned to one CPU (``--cpu``), after a warm-up that includes
compilation (its time is reported apart); rounds are interleaved (A B C, A B C, …) so load drift hits every
row alike, and the table shows medians. Rows:

- ``offrl`` for each pairing × speed mode (``off`` eager, ``on`` torch.compile, ``graph`` CUDA graphs) × seeds
  per process (E seeds trained together on a vmapped seed axis);
- the peer: d3rlpy's IQL ``fit`` on the same data (exported to .npz) in d3rlpy's own virtual environment,
  prepared on first use (d3rlpy 2.8.1 pins gymnasium 1.0.0, so it cannot share offrl's).

Columns: updates/s (trainer iterations per second: one critic and one actor update for IQL), seed-updates/s
(× E), and ratios to the peer and to offrl's eager single seed. ``--json`` prints one object per row instead
(keys ``impl``, ``pairing``, ``mode``, ``seeds``, ``updates_per_s``, ``seed_updates_per_s``, …). No
thresholds here: targets and results are in docs/performance.md.

The data: ``bench/hopper-random-v0``, 1M Hopper-v5 transitions with random actions, made on first use in
``$OFFRL_BENCH_DIR`` (speed depends on shapes and size, not on the data's quality); or ``--dataset ID`` from
the local Minari store.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The pairings benchmarked, as presets of their papers (networks, batch sizes, update ratios).
PAIRINGS = {
    "iql": {"preset": "iql-locomotion", "critic": "expectile", "actor": "gaussian-awr"},
    "idql": {"preset": "idql-1-locomotion", "critic": "expectile", "actor": "diffusion-resample"},
    "edp": {"preset": "edp-iql-locomotion", "critic": "expectile", "actor": "edp"},
}


def measure(spec: dict) -> dict:
    """One measurement (runs in a fresh, pinned worker process)."""
    import torch

    import offrl
    from offrl.datagen.writer import minari_root
    from offrl.trainer.api import start

    from benchmarks.common import store

    if spec["device"] == "cpu" and spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})
    pairing = PAIRINGS[spec["pairing"]]
    e = spec["seeds"]
    overrides = {"trainer.device": spec["device"], "trainer.threads": spec["threads"], "trainer.steps": 10**7,
                 "trainer.compile": spec["mode"], "data.reward": "none", **dict(spec.get("set", {}))}
    if e > 1:
        overrides["trainer.seeds"] = f"0-{e - 1}"
    with minari_root(spec["store"] or store()), tempfile.TemporaryDirectory() as d:
        cfg = offrl.make_config(critic=pairing["critic"], actor=pairing["actor"], preset=pairing["preset"],
                                dataset=spec["dataset"], overrides=overrides)
        trainer = start(cfg, Path(d) / "run")
        learner = trainer.learner
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        learner.train(spec["warmup"])
        learner.read_metrics()
        sync()
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        learner.train(spec["updates"])
        learner.read_metrics()  # the once-per-log host sync is part of training
        sync()
        rate = spec["updates"] / (time.perf_counter() - t0)
        trainer.release()
    return {"impl": "offrl", "pairing": spec["pairing"], "mode": spec["mode"], "seeds": e, "device": spec["device"],
            "threads": spec["threads"], "updates_per_s": rate, "seed_updates_per_s": rate * e,
            "compile_s": learner.compile_seconds, "warmup_s": warm_s}


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=spec.get("timeout", 3600))
    if proc.returncode != 0:
        raise SystemExit(f"worker failed for {spec}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_peer(spec: dict) -> dict:
    from benchmarks.common import peer_python

    python = peer_python("d3rlpy")
    cmd = [str(python), str(Path(__file__).parent / "peers" / "d3rlpy_peer.py"), "throughput", "--data",
           spec["npz"], "--algo", "iql", "--updates", str(spec["peer_updates"]), "--threads", str(spec["threads"])]
    if spec.get("cpu") is not None:
        cmd = ["taskset", "-c", str(spec["cpu"]), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])},
                          timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"d3rlpy peer failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**row, "pairing": "iql", "mode": "fit", "seeds": 1, "device": "cpu", "threads": spec["threads"],
            "seed_updates_per_s": row["updates_per_s"], "compile_s": 0.0}


def plan(args: argparse.Namespace, dataset: str) -> list[dict]:
    rows = []
    for pairing in args.pairings:
        for e in args.seeds:
            if pairing != "iql" and e > args.max_seeds_heavy:
                continue  # diffusion pairings at many seeds take minutes per update on a CPU
            for mode in args.modes:
                heavy = pairing != "iql"
                updates = max(5, args.updates // (10 if heavy else 1) // max(1, e // 8 if args.device == "cpu" else 1))
                rows.append({"pairing": pairing, "mode": mode, "seeds": e, "device": args.device,
                             "threads": args.threads, "cpu": args.cpu, "dataset": dataset, "store": args.store,
                             "updates": updates, "warmup": args.warmup, "set": args.set})
    if args.peer == "d3rlpy" and "iql" in args.pairings:
        from benchmarks.common import export_npz, store
        from offrl.datagen.writer import minari_root

        with minari_root(args.store or store()):
            npz = str(export_npz(dataset))
        rows.append({"peer": "d3rlpy", "npz": npz, "threads": args.threads, "cpu": args.cpu,
                     "peer_updates": args.updates})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--pairings", nargs="+", default=list(PAIRINGS), choices=list(PAIRINGS))
    p.add_argument("--modes", nargs="+", default=None, help="speed modes (default: off on; CUDA: off graph)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 8, 32], help="seeds per process")
    p.add_argument("--max-seeds-heavy", type=int, default=8, help="largest E for the diffusion pairings")
    p.add_argument("--peer", choices=["d3rlpy", "none"], default="d3rlpy")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin workers to (default: the last one)")
    p.add_argument("--updates", type=int, default=1000, help="timed iterations per IQL measurement")
    p.add_argument("--warmup", type=int, default=30, help="untimed iterations first (compilation included)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the table shows medians")
    p.add_argument("--dataset", default=None, help="a local Minari dataset id (default: the benchmark Hopper data)")
    p.add_argument("--store", default=None, help="Minari store of --dataset (default: the benchmark store)")
    p.add_argument("--data-steps", type=int, default=1_000_000, help="size of the benchmark Hopper dataset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every row")
    p.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return
    args.set = [tuple(s.split("=", 1)) for s in args.set]
    args.modes = args.modes or (["off", "graph"] if args.device.startswith("cuda") else ["off", "on"])
    if args.cpu is None and args.device == "cpu":
        args.cpu = (os.cpu_count() or 1) - 1
    if args.device.startswith("cuda"):
        args.peer, args.cpu = "none", None
    if args.dataset is None:
        from benchmarks.common import ensure_hopper_random

        dataset, args.store = ensure_hopper_random(args.data_steps), None
    else:
        dataset = args.dataset
        args.store = args.store or os.environ.get("MINARI_DATASETS_PATH")
    rows = plan(args, dataset)
    results: dict[int, list[dict]] = {i: [] for i in range(len(rows))}
    for _ in range(args.rounds):
        for i, spec in enumerate(rows):
            results[i].append(run_peer(spec) if "peer" in spec else run_worker(spec))
            print(f"  measured {json.dumps({k: v for k, v in results[i][-1].items() if k != 'set'})}",
                  file=sys.stderr)
    report([_median(r) for r in results.values()], args)


def _median(runs: list[dict]) -> dict:
    out = dict(runs[0])
    for key in ("updates_per_s", "seed_updates_per_s", "compile_s"):
        out[key] = statistics.median(r.get(key, 0.0) for r in runs)
    out["rounds"] = len(runs)
    out["min_updates_per_s"] = min(r["updates_per_s"] for r in runs)
    out["max_updates_per_s"] = max(r["updates_per_s"] for r in runs)
    return out


def report(rows: list[dict], args: argparse.Namespace) -> None:
    peer = next((r["updates_per_s"] for r in rows if r["impl"] == "d3rlpy"), None)
    base = {r["pairing"]: r["seed_updates_per_s"] for r in rows
            if r["impl"] == "offrl" and r["mode"] == "off" and r["seeds"] == 1}
    for r in rows:
        r["vs_peer"] = r["updates_per_s"] / peer if peer and r["pairing"] == "iql" else None
        r["vs_eager_1"] = r["seed_updates_per_s"] / base[r["pairing"]] if base.get(r["pairing"]) else None
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    from rich.table import Table

    from offrl.cli.terminal import console

    where = f"{args.device}, {args.threads} thread{'s' if args.threads != 1 else ''}"
    table = Table(title=f"Training throughput ({where}; median of {args.rounds} interleaved rounds)")
    for col in ("impl", "pairing", "mode", "seeds", "updates/s", "seed-updates/s", "× d3rlpy", "× eager E=1",
                "compile s"):
        table.add_column(col, justify="right" if col not in ("impl", "pairing", "mode") else "left")
    for r in rows:
        ratio = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        table.add_row(r["impl"], r["pairing"], r["mode"], str(r["seeds"]), f"{r['updates_per_s']:,.1f}",
                      f"{r['seed_updates_per_s']:,.1f}", ratio(r["vs_peer"]), ratio(r["vs_eager_1"]),
                      f"{r['compile_s']:.1f}")
    console().print(table)


if __name__ == "__main__":
    main()
