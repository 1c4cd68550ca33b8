"""Training throughput, side by side in one run: offrl's speed modes and seed counts, and d3rlpy as the peer.

    python benchmarks/throughput.py                                  # IQL, IDQL, EDP, FQL on CPU, 1 pinned thread
    python benchmarks/throughput.py --pairings iql --seeds 1 8 32 --peer d3rlpy --rounds 3
    python benchmarks/throughput.py --device cuda --modes off on graph --seeds 1 8 32 --eval --json

On CPU every measurement runs in a fresh process pinned to one CPU (``--cpu``), after a warm-up that
includes compilation (its time is reported apart); rounds are interleaved (A B C, A B C, …) so load drift
hits every row alike, and the table shows medians. On CUDA the rows of one pairing share a process (the GPU
is not shared with anything; process start-up and data loading would dominate a short check).

What is timed: a window of at least ``--seconds`` of *whole* training calls after the warm-up — in ``graph``
mode only replays of captured graphs (warm-up iterations and captures happen before the window), the
once-per-log metric read included. With ``--eval``, evaluation is timed too: vector-environment steps of all
E × ``eval_envs`` environments with one batched policy call each, extrapolated to the pairing's preset
protocol (episodes, horizon, cadence) to give the evaluation's share of a run and the time of the preset's
whole budget (training + evaluation, in-process and in evaluation workers).

Rows:

- ``offrl`` for each pairing × speed mode (``off`` eager, ``on`` torch.compile, ``graph`` CUDA graphs) × seeds
  per process (E seeds trained together on a vmapped seed axis); a configuration that fails is a failed row
  (its error shown), one that is left out says why;
- the peer: d3rlpy's IQL ``fit`` on the same data (exported to .npz) in d3rlpy's own virtual environment,
  prepared on first use (d3rlpy 2.8.1 pins gymnasium 1.0.0, so it cannot share offrl's).

``--json`` prints one object per row instead of the table (keys ``impl``, ``pairing``, ``mode``, ``seeds``,
``updates_per_s``, ``seed_updates_per_s``, ``eval_share``, ``budget_min``, ``error``, …). No thresholds here:
targets and results are in docs/performance.md.

The data: ``bench/hopper-random-v0``, Hopper-v5 transitions with random actions (1M by default,
``--data-steps``), made on first use in ``$OFFRL_BENCH_DIR`` (speed depends on shapes and size, not on the
data's quality); or ``--dataset ID`` from the local Minari store.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The pairings benchmarked, as presets of their papers (networks, batch sizes, update ratios, budgets).
PAIRINGS = {
    "iql": {"preset": "iql-locomotion", "critic": "expectile", "actor": "gaussian-awr"},
    "idql": {"preset": "idql-1-locomotion", "critic": "expectile", "actor": "diffusion-resample"},
    "edp": {"preset": "edp-iql-locomotion", "critic": "expectile", "actor": "edp"},
    "fql": {"preset": "fql-d4rl", "critic": "td3", "actor": "fql"},
}
#: Pairings whose CPU rows at many seeds take minutes per measurement (left out above --max-seeds-heavy).
HEAVY = ("idql", "edp", "fql")
#: Locomotion episodes last at most this many steps (the horizon an evaluation is extrapolated to).
HORIZON = 1000


def measure(spec: dict) -> dict:
    """One measurement (in a worker process): training rate over whole calls, optionally evaluation."""
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
                 "trainer.compile": spec["mode"], "data.reward": "none", "trainer.eval_async": "off",
                 **dict(spec.get("set", {}))}
    if e > 1:
        overrides["trainer.seeds"] = f"0-{e - 1}"
    with minari_root(spec["store"] or store()), tempfile.TemporaryDirectory() as d:
        preset_cfg = offrl.make_config(critic=pairing["critic"], actor=pairing["actor"], preset=pairing["preset"],
                                       dataset=spec["dataset"])
        cfg = offrl.make_config(critic=pairing["critic"], actor=pairing["actor"], preset=pairing["preset"],
                                dataset=spec["dataset"], overrides=overrides)
        trainer = start(cfg, Path(d) / "run")
        learner = trainer.learner
        sync = (lambda: torch.cuda.synchronize(trainer.device)) if trainer.device.type == "cuda" else (lambda: None)
        call = learner.steps_per_call if learner.mode == "graph" else 1
        warmup = max(spec["warmup"], learner.WARMUP_ITERATIONS + 2 * call)  # captures happen here, not later
        warmup += (-(learner.iterations + warmup)) % max(call, 1)  # the timed calls start where a graph does
        t0 = time.perf_counter()
        learner.train(warmup)
        learner.read_metrics()
        sync()
        warm_s = time.perf_counter() - t0
        chunk = max(call, min(spec["chunk"], 1000) // call * call)
        done, t0 = 0, time.perf_counter()
        while True:
            learner.train(chunk)
            done += chunk
            if done % 1000 < chunk:
                learner.read_metrics()  # the once-per-log host sync is part of training
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= spec["seconds"] and done >= spec["min_updates"]:
                break
        rate = done / elapsed
        row = {"impl": "offrl", "pairing": spec["pairing"], "mode": spec["mode"], "seeds": e,
               "device": str(trainer.device), "threads": spec["threads"], "updates_per_s": rate,
               "seed_updates_per_s": rate * e, "timed_updates": done, "compile_s": learner.compile_seconds,
               "warmup_s": warm_s, "graph": learner.graph_kind or None,
               "matmul_precision": torch.get_float32_matmul_precision()}
        if spec.get("eval"):
            row.update(time_evaluation(trainer, preset_cfg.trainer, spec["eval_steps"], rate))
        trainer.release()
    return row


def time_evaluation(trainer, protocol, steps: int, rate: float) -> dict:  # noqa: ANN001
    """Seconds per vector-environment step of E × eval_envs environments (a batched policy call each), and
    what that makes of the preset's evaluation protocol: one evaluation, its share of a run, the budget."""
    import gymnasium as gym
    import numpy as np
    import torch

    from offrl.data.flatten import flatten_obs
    from offrl.trainer.evaluation import EvalSpec

    spec = EvalSpec.of(trainer.dataset)
    if spec.make_env is None:
        return {"eval_error": "the dataset records no environment"}
    E, n = len(trainer.runs), min(protocol.eval_envs, protocol.eval_episodes)
    envs = gym.vector.SyncVectorEnv([spec.make_env for _ in range(E * n)])
    gens = [torch.Generator(device=trainer.device).manual_seed(s) for s in range(E)]
    obs, _ = envs.reset(seed=list(range(E * n)))
    learner = trainer.learner
    for i in range(steps + 10):
        if i == 10:  # the first calls compile/allocate: not timed
            t0 = time.perf_counter()
        x = spec.obs_normalizer(flatten_obs(obs).reshape(E * n, -1).astype(np.float64))
        x = torch.as_tensor(x, dtype=torch.float32, device=trainer.device).reshape(E, n, -1)
        unit = learner.act(x, gens).reshape(E * n, -1).cpu().numpy()
        obs, *_ = envs.step(spec.action_scaler.to_env(unit).astype(np.float32))  # autoreset keeps every env busy
    vstep = (time.perf_counter() - t0) / steps
    envs.close()
    rounds = math.ceil(protocol.eval_episodes / n)
    one_eval = rounds * HORIZON * vstep
    evals = protocol.steps // protocol.eval_every + 1
    train_s = protocol.steps / rate
    eval_total = evals * one_eval
    interval = protocol.eval_every / rate  # training time between evaluations, which a worker can hide behind
    async_wait = evals * max(0.0, one_eval - interval)
    return {"eval_vstep_ms": 1e3 * vstep, "eval_envs_total": E * n, "eval_s": one_eval,
            "eval_share": eval_total / (train_s + eval_total),
            "eval_share_async": async_wait / (train_s + async_wait),
            "budget_steps": protocol.steps, "budget_min": (train_s + eval_total) / 60,
            "budget_min_async": (train_s + async_wait) / 60}


def run_worker(specs: list[dict]) -> list[dict]:
    """Measure ``specs`` in one fresh process; a failure is a failed row, never a lost run."""
    spec = specs[0]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, __file__, "--worker", json.dumps(specs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=spec.get("timeout", 3600) * len(specs))
    except subprocess.TimeoutExpired:
        return [_failed(s, "timed out") for s in specs]
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rows.append(json.loads(line))
    if len(rows) < len(specs):
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        rows += [_failed(s, why) for s in specs[len(rows):]]
    return rows


def _failed(spec: dict, why: str) -> dict:
    return {"impl": "offrl", "pairing": spec["pairing"], "mode": spec["mode"], "seeds": spec["seeds"],
            "device": spec["device"], "error": why[-300:]}


def worker_main(specs: list[dict]) -> None:
    """Each spec's row on its own line; a spec that fails prints a failed row and the next one runs."""
    for spec in specs:
        try:
            row = measure(spec)
        except BaseException as e:  # noqa: BLE001 — reported as this row's error
            row = _failed(spec, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        print(json.dumps(row), flush=True)
        if spec["device"].startswith("cuda"):
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()


def run_peer(spec: dict) -> dict:
    from benchmarks.common import peer_python

    try:
        python = peer_python("d3rlpy")
    except Exception as e:  # noqa: BLE001 — no package index here: a failed row
        return {"impl": "d3rlpy", "pairing": "iql", "mode": "fit", "seeds": 1, "device": "cpu", "error": str(e)}
    cmd = [str(python), str(Path(__file__).parent / "peers" / "d3rlpy_peer.py"), "throughput", "--data",
           spec["npz"], "--algo", "iql", "--updates", str(spec["peer_updates"]), "--threads", str(spec["threads"])]
    if spec.get("cpu") is not None:
        cmd = ["taskset", "-c", str(spec["cpu"]), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}, timeout=3600)
    if proc.returncode != 0:
        return {"impl": "d3rlpy", "pairing": "iql", "mode": "fit", "seeds": 1, "device": "cpu",
                "error": proc.stderr.strip()[-300:]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**row, "pairing": "iql", "mode": "fit", "seeds": 1, "device": "cpu", "threads": spec["threads"],
            "seed_updates_per_s": row["updates_per_s"], "compile_s": 0.0}


def plan(args: argparse.Namespace, dataset: str) -> tuple[list[list[dict]], list[dict]]:
    """Groups of specs (each group one worker process) and the rows left out, with the reason."""
    groups: list[list[dict]] = []
    skipped: list[dict] = []
    cuda = args.device.startswith("cuda")
    for pairing in args.pairings:
        group = []
        for e in args.seeds:
            for mode in args.modes:
                if not cuda and pairing in HEAVY and e > args.max_seeds_heavy:
                    skipped.append({"impl": "offrl", "pairing": pairing, "mode": mode, "seeds": e, "device": args.device,
                                    "skipped": f"E > {args.max_seeds_heavy} on CPU (--max-seeds-heavy)"})
                    continue
                spec = {"pairing": pairing, "mode": mode, "seeds": e, "device": args.device, "threads": args.threads,
                        "cpu": args.cpu, "dataset": dataset, "store": args.store, "seconds": args.seconds,
                        "min_updates": args.min_updates, "chunk": args.chunk, "warmup": args.warmup,
                        "set": args.set, "eval": args.eval, "eval_steps": args.eval_steps}
                if cuda:
                    group.append(spec)
                else:
                    groups.append([spec])
        if group:
            groups.append(group)
    if args.peer == "d3rlpy" and "iql" in args.pairings and not cuda:
        from benchmarks.common import export_npz, store
        from offrl.datagen.writer import minari_root

        with minari_root(args.store or store()):
            npz = str(export_npz(dataset))
        groups.append([{"peer": "d3rlpy", "npz": npz, "threads": args.threads, "cpu": args.cpu,
                        "peer_updates": args.peer_updates}])
    return groups, skipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--pairings", nargs="+", default=list(PAIRINGS), choices=list(PAIRINGS))
    p.add_argument("--modes", nargs="+", default=None, help="speed modes (default: off on; CUDA: off on graph)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 8, 32], help="seeds per process")
    p.add_argument("--max-seeds-heavy", type=int, default=8,
                   help="on CPU, the largest E for IDQL, EDP and FQL (larger rows are listed as left out)")
    p.add_argument("--peer", choices=["d3rlpy", "none"], default="d3rlpy")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin workers to (default: the last one)")
    p.add_argument("--seconds", type=float, default=None, help="timed window per row (default: 10 on CPU, 2 on CUDA)")
    p.add_argument("--min-updates", type=int, default=20, help="at least this many timed iterations")
    p.add_argument("--chunk", type=int, default=96, help="iterations per training call (whole graphs in graph mode)")
    p.add_argument("--peer-updates", type=int, default=1000, help="timed updates of the d3rlpy peer")
    p.add_argument("--warmup", type=int, default=30, help="untimed iterations first (compilation included)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved repetitions (default: 2 on CPU, 1 on CUDA)")
    p.add_argument("--eval", action="store_true", help="time evaluation too (share of a run, budget ETA)")
    p.add_argument("--eval-steps", type=int, default=200, help="timed vector-environment steps with --eval")
    p.add_argument("--dataset", default=None, help="a local Minari dataset id (default: the benchmark Hopper data)")
    p.add_argument("--store", default=None, help="Minari store of --dataset (default: the benchmark store)")
    p.add_argument("--data-steps", type=int, default=1_000_000, help="size of the benchmark Hopper dataset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every row")
    p.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    p.add_argument("--out", default=None, help="also write the rows to this .jsonl file")
    args = p.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    cuda = args.device.startswith("cuda")
    args.set = [tuple(s.split("=", 1)) for s in args.set]
    args.modes = args.modes or (["off", "on", "graph"] if cuda else ["off", "on"])
    args.seconds = args.seconds if args.seconds is not None else (2.0 if cuda else 10.0)
    args.rounds = args.rounds or (1 if cuda else 2)
    if args.cpu is None and args.device == "cpu":
        args.cpu = (os.cpu_count() or 1) - 1
    if cuda:
        args.peer, args.cpu = "none", None
    if args.dataset is None:
        from benchmarks.common import ensure_hopper_random

        dataset, args.store = ensure_hopper_random(args.data_steps), None
    else:
        dataset = args.dataset
        args.store = args.store or os.environ.get("MINARI_DATASETS_PATH")
    groups, skipped = plan(args, dataset)
    results: dict[tuple[int, int], list[dict]] = {}
    for _ in range(args.rounds):
        for g, specs in enumerate(groups):
            rows = [run_peer(specs[0])] if "peer" in specs[0] else run_worker(specs)
            for i, row in enumerate(rows):
                results.setdefault((g, i), []).append(row)
                print(f"  measured {json.dumps(row)}", file=sys.stderr, flush=True)
    rows = [_median(r) for _, r in sorted(results.items())] + skipped
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    report(rows, args)


def _median(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    out = dict(ok[0])
    for key in ("updates_per_s", "seed_updates_per_s", "compile_s", "eval_share", "eval_share_async", "budget_min",
                "budget_min_async", "eval_s", "eval_vstep_ms"):
        if key in out:
            out[key] = statistics.median(r[key] for r in ok)
    out["rounds"] = len(ok)
    out["min_updates_per_s"] = min(r["updates_per_s"] for r in ok)
    out["max_updates_per_s"] = max(r["updates_per_s"] for r in ok)
    return out


def report(rows: list[dict], args: argparse.Namespace) -> None:
    measured = [r for r in rows if "updates_per_s" in r]
    peer = next((r["updates_per_s"] for r in measured if r["impl"] == "d3rlpy"), None)
    base = {r["pairing"]: r["seed_updates_per_s"] for r in measured
            if r["impl"] == "offrl" and r["mode"] == "off" and r["seeds"] == 1}
    for r in measured:
        r["vs_peer"] = r["updates_per_s"] / peer if peer and r["pairing"] == "iql" else None
        r["vs_eager_1"] = r["seed_updates_per_s"] / base[r["pairing"]] if base.get(r["pairing"]) else None
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    from rich.table import Table

    from offrl.cli.terminal import console

    where = f"{args.device}, {args.threads} thread{'s' if args.threads != 1 else ''}"
    table = Table(title=f"Training throughput ({where}; median of {args.rounds} round{'s' if args.rounds > 1 else ''}; "
                        f"windows of ≥ {args.seconds:g} s)")
    cols = ["impl", "pairing", "mode", "seeds", "updates/s", "seed-updates/s", "× d3rlpy", "× eager E=1", "compile s"]
    if args.eval:
        cols += ["eval s", "eval share (in-process / workers)", "budget min (in-process / workers)"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("impl", "pairing", "mode") else "right")
    ratio = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        head = [r["impl"], r["pairing"], r["mode"], str(r["seeds"])]
        if "updates_per_s" not in r:
            why = r.get("error") or r.get("skipped") or r.get("eval_error", "")
            label = "failed: " if "error" in r else "left out: "
            table.add_row(*head, label + why, *[""] * (len(cols) - 5))
            continue
        cells = [f"{r['updates_per_s']:,.1f}", f"{r['seed_updates_per_s']:,.1f}", ratio(r.get("vs_peer")),
                 ratio(r.get("vs_eager_1")), f"{r.get('compile_s', 0.0):.1f}"]
        if args.eval:
            if "eval_s" in r:
                cells += [f"{r['eval_s']:.1f}", f"{100 * r['eval_share']:.0f}% / {100 * r['eval_share_async']:.0f}%",
                          f"{r['budget_min']:.1f} / {r['budget_min_async']:.1f}"]
            else:
                cells += [r.get("eval_error", ""), "", ""]
        table.add_row(*head, *cells)
    console().print(table)


if __name__ == "__main__":
    main()
