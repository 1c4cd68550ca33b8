"""Measure the rates `offrl sweep --dry-run` estimates a sweep's cost from; write them to offrl/sweep/rates_table.py.

    python benchmarks/sweep_rates.py                          # every family below (~15 min on one idle core)
    python benchmarks/sweep_rates.py --families bandit --print # measure one family, print, write nothing

For each family (a preset, or offrl's default networks: "") and each of its pairings, one `offrl run` on the
built-in bandit dataset (made in a temporary Minari store), in a fresh process pinned to one CPU with one thread,
eager (``trainer.compile=off``). From its summary.json and the process's own wall time:

- ``it_per_s``: training iterations per second, ``steps / (wall_time_s - setup_s - eval_s)``;
- ``setup_s``: the run's setup (data, networks, optimisers), as the summary says;
- ``eval_round_step_s``: seconds per step of one evaluation round (``eval_s / (evaluations × rounds)``, a round
  being ``trainer.eval_envs`` episodes run together; a bandit episode is one step);
- ``startup_s`` (one number for the table): the process's wall time minus the run's own, the median over runs
  (interpreter, torch and offrl imports).

The family sets the networks and batch sizes; the bandit's small observations and actions change only the first
and last layers, so a family's rates stand for its datasets at large. Measurements share the machine with
whatever else runs; the table records where and when they were taken.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALL_CRITICS = ["expectile", "quantile", "exponential", "sarsa", "td3"]
ALL_ACTORS = ["gaussian-awr", "diffusion-resample", "edp", "ddpg-bc", "fql", "flow-resample"]
#: family (preset, "" = offrl's defaults) -> (critics, actors, iterations measured): the benchmark suites' grids.
FAMILIES: dict[str, tuple[list[str], list[str], int]] = {
    "bandit": (ALL_CRITICS, ALL_ACTORS, 600),  # benchmarks/bandit.toml, bottleneck-bandit.toml
    "": (ALL_CRITICS, ALL_ACTORS, 100),
    "iql-locomotion": (["expectile", "quantile", "exponential"],
                       ["gaussian-awr", "diffusion-resample", "edp", "ddpg-bc"], 100),  # locomotion.toml
    "ogbench-manipulation": (["expectile", "td3"], ALL_ACTORS, 40),  # ogbench.toml, ogbench-puzzle.toml
}
DATASET = "offrl/bandit/multimodal-v0"
EVAL_EPISODES = 20  # two rounds of the default 10 evaluation environments
TABLE = REPO / "offrl" / "sweep" / "rates_table.py"


def measure(family: str, critic: str, actor: str, steps: int, store: Path, cpu: int) -> dict[str, float]:
    """One run of the pairing; its rates (raises with the run's output when it fails)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = [sys.executable, "-m", "offrl", "run", "--critic", critic, "--actor", actor, "--dataset", DATASET,
                "--steps", str(steps), "--eval-every", str(steps // 2), "--eval-episodes", str(EVAL_EPISODES),
                "--save-every", str(steps), "--device", "cpu", "--out", str(out), "--quiet",
                "--set", "trainer.threads=1", "--set", "trainer.compile=off", "--set", "trainer.eval_async=off"]
        argv += ["--preset", family] if family else []
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MINARI_DATASETS_PATH": str(store),
               "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OFFRL_AUTO_DEVICE": "cpu"}
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO,
                              preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        process_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{family or 'default'} {critic}+{actor} failed:\n{proc.stdout}\n{proc.stderr}")
        s = json.loads((out / "summary.json").read_text())
    config_rounds = math.ceil(EVAL_EPISODES / 10)
    train_s = max(s["wall_time_s"] - s["setup_s"] - s["eval_s"], 1e-6)
    return {"it_per_s": s["steps"] / train_s, "setup_s": s["setup_s"],
            "eval_round_step_s": s["eval_s"] / max(1, s["evaluations"] * config_rounds),
            "startup_s": process_s - s["wall_time_s"]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_table(rates: dict[tuple[str, str, str], dict[str, float]], startup: float) -> None:
    import torch

    from offrl import __version__

    machine = {"cpu": cpu_name(), "threads": 1, "torch": torch.__version__, "offrl": __version__,
               "date": time.strftime("%Y-%m-%d"), "dataset": DATASET, "compile": "off"}
    lines = [
        '"""Rates measured by benchmarks/sweep_rates.py (generated: rerun it to refresh); see offrl.sweep.cost.',
        "",
        "``RATES[(family, critic, actor)] = (iterations/s, setup s, s per evaluation round-step)``, the family being",
        'a preset or "" for offrl\'s default networks; one CPU thread, eager.',
        '"""',
        "",
        "MACHINE = {",
        *(f"    {k!r}: {v!r}," for k, v in machine.items()),
        "}",
        "#: Seconds from a process's start to its run's start (interpreter, torch and offrl imports).",
        f"STARTUP_S = {startup:.2f}",
        "RATES: dict[tuple[str, str, str], tuple[float, float, float]] = {",
    ]
    for (family, critic, actor), r in sorted(rates.items()):
        lines.append(f"    ({family!r}, {critic!r}, {actor!r}): "
                     f"({r['it_per_s']:.4g}, {r['setup_s']:.3g}, {r['eval_round_step_s']:.3g}),")
    lines.append("}")
    TABLE.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="PRESET",
                        help="families to measure ('' for the defaults)")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)), help="the CPU to pin runs to")
    parser.add_argument("--print", action="store_true", help="print the rates; do not write the table")
    args = parser.parse_args()
    from offrl.data.store import minari_root
    from offrl.datagen.builtins import ensure_dataset

    rates: dict[tuple[str, str, str], dict[str, float]] = {}
    startups: list[float] = []
    with tempfile.TemporaryDirectory() as store:
        with minari_root(store):
            ensure_dataset(DATASET)
        measure("bandit", "expectile", "gaussian-awr", 50, Path(store), args.cpu)  # warm-up: caches, page cache
        for family in args.families:
            critics, actors, steps = FAMILIES[family]
            for critic in critics:
                for actor in actors:
                    r = measure(family, critic, actor, steps, Path(store), args.cpu)
                    rates[(family, critic, actor)] = r
                    startups.append(r["startup_s"])
                    print(f"{family or 'default':22s} {critic:12s} {actor:20s} {r['it_per_s']:9.1f} it/s  "
                          f"setup {r['setup_s']:.2f} s  eval {1000 * r['eval_round_step_s']:.2f} ms/round-step  "
                          f"start-up {r['startup_s']:.2f} s", flush=True)
    if not args.print:
        write_table(rates, statistics.median(startups))
        print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
