"""Parity with seohongpark/fql's own JAX agents: FQL, IFQL and ReBRAC, offrl and FQL's code on the same data.

    MINARI_DATASETS_PATH=STORE python benchmarks/parity_fql.py --fql FQL_CHECKOUT \\
        --dataset offrl/ogbench/cube-single-play-singletask-task2-v0 --hidden 256,256 \\
        --updates 50000 --seeds 0 1 2 --eval-every 10000 --eval-episodes 50 --out runs/parity-fql --jobs 2
    python benchmarks/parity_fql.py --out runs/parity-fql --plot-only        # redraw the figure and tables
    MINARI_DATASETS_PATH=STORE python benchmarks/parity_fql.py --fql FQL_CHECKOUT --throughput \\
        --dataset offrl/ogbench/cube-single-play-singletask-task2-v0 --sizes 4x512 4x256 2x256

Runs (``--only`` picks a subset, so the study can be run in parts; ``parity.json`` keeps every command):

- ``offrl:fql``     ``td3 + fql`` with the ``fql-ogbench-cube`` preset (α = 300), joint update order;
- ``fql:fql``       agents/fql.py with ``--agent.alpha=300``;
- ``offrl:ifql``    ``expectile + flow-resample`` with the ``ifql`` preset (τ = 0.9, N = 32, online min-Q);
- ``fql:ifql``      agents/ifql.py (its defaults: expectile 0.9, 32 samples);
- ``offrl:rebrac``  ``td3 + ddpg-bc`` with the ``ogbench-manipulation`` preset (its FQL's-ReBRAC cell:
                    α_actor = 1 → actor.alpha = 1, α_critic = 0, smoothing 0.2 / 0.5, actor every 2nd step);
- ``fql:rebrac``    agents/rebrac.py with ``--agent.alpha_actor=1 --agent.alpha_critic=0``.

Both sides: the same hidden widths for every network (``--hidden``; FQL's default is 512,512,512,512), the
same number of updates at batch 256, evaluation every ``--eval-every`` updates over ``--eval-episodes``
episodes of OGBench's single-task environment (``success_timing='post'``, horizon 200 for cube-single),
success = ``info['success']`` at the episode's end. Episode start states are not paired: FQL's
``evaluate`` resets without seeds, offrl seeds episodes from (seed, step). The data: the offrl dataset,
exported once to OGBench's ``.npz`` layout (benchmarks/common.py ``export_ogbench_npz``) for FQL's own
loader, which relabels rewards from qpos; the peer checks that they equal offrl's before training.

offrl trains a configuration's seeds in one process; FQL runs one process per seed (its code has no seed
axis). Commands are interleaved (offrl, FQL, offrl, …) across ``--jobs`` processes, so both libraries run
under the same load. At the end: ``offrl report`` over both libraries (mean ± std, IQM with stratified
bootstrap CIs), the success table, the losses of both over the same windows, and ``parity_fql_curves.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.parity import loss_table, read_curves, record_commands, run_all  # noqa: E402

#: name -> (offrl critic, actor, preset, FQL's agent file, its --agent.KEY=VALUE settings).
AGENTS = {
    "fql": ("td3", "fql", "fql-ogbench-cube", "fql", ["alpha=300"]),
    "ifql": ("expectile", "flow-resample", "ifql", "ifql", ["num_samples=32", "expectile=0.9"]),
    "rebrac": ("td3", "ddpg-bc", "ogbench-manipulation", "rebrac", ["alpha_actor=1", "alpha_critic=0"]),
}
LOSSES = ("critic/q_loss", "critic/v_loss", "actor/loss")
METRIC = "success_rate_100"
COLOURS = {"fql": "tab:red", "ifql": "tab:blue", "rebrac": "tab:green"}


def hidden_list(hidden: str) -> str:
    return "[" + ",".join(str(int(h)) for h in hidden.split(",")) + "]"


def offrl_command(name: str, args: argparse.Namespace, hidden: str | None = None,
                  steps: int | None = None) -> list[str]:
    critic, actor, preset, _, _ = AGENTS[name]
    h = hidden_list(hidden or args.hidden)
    cmd = [sys.executable, "-m", "offrl", "run", "--critic", critic, "--actor", actor, "--preset", preset,
           "--dataset", args.dataset, "--steps", str(steps or args.updates), "--eval-every", str(args.eval_every),
           "--eval-episodes", str(args.eval_episodes), "--save-every", str(args.eval_every),
           "--seeds", ",".join(map(str, args.seeds)), "--out", str(args.out / f"offrl-{name}"),
           "--set", f"critic.hidden_dims={h}", "--set", f"actor.hidden_dims={h}",
           "--set", f"trainer.log_every={args.log_every}", "--set", "trainer.eval_envs=10",
           "--set", f"trainer.compile={args.compile}", "--device", "cpu", "--quiet"]
    return cmd


def peer_command(name: str, seed: int, args: argparse.Namespace, python: Path, data_dir: Path,
                 env_name: str) -> list[str]:
    *_, agent, sets = AGENTS[name]
    cmd = [str(python), str(Path(__file__).parent / "peers" / "fql_peer.py"), "train", "--fql", str(args.fql),
           "--data-dir", str(data_dir), "--env-name", env_name, "--agent", agent, "--hidden", args.hidden,
           "--dataset", args.dataset, "--seed", str(seed), "--updates", str(args.updates),
           "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
           "--log-every", str(args.log_every), "--out", str(args.out / f"fql-{name}" / f"seed{seed}")]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def interleave(offrl: list, peer: list) -> list:
    """offrl, FQL, offrl, FQL, … (then the rest): neither library runs while the other waits."""
    out = []
    for i in range(max(len(offrl), len(peer))):
        out += offrl[i:i + 1] + peer[i:i + 1]
    return out


def success_table(out: Path) -> str:
    """Markdown: final and best success rate per group, mean ± sample std over seeds, each seed's final."""
    import statistics

    lines = ["| run | seeds | final success (%) | per seed | best |", "|---|---:|---:|---|---:|"]
    for group in sorted(d.name for d in out.iterdir() if d.is_dir() and any(d.glob("seed*/eval.jsonl"))):
        runs = read_curves(out, group, METRIC)
        if not runs:
            continue
        finals = [r[max(r)] for r in runs]
        bests = [max(r.values()) for r in runs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        lines.append(f"| {group} | {len(runs)} | {statistics.mean(finals):.1f} ± {sd(finals):.1f} | "
                     f"{', '.join(f'{f:.0f}' for f in finals)} | {statistics.mean(bests):.1f} ± {sd(bests):.1f} |")
    return "\n".join(lines)


def plot_curves(out: Path, path: Path) -> None:
    """One panel per agent: offrl (solid) and FQL's code (dashed), mean over seeds and the min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(AGENTS), figsize=(5 * len(AGENTS), 4.2), sharey=True)
    for ax, name in zip(axes, AGENTS):
        for lib, style in (("offrl", "-"), ("fql", "--")):
            runs = read_curves(out, f"{lib}-{name}", METRIC)
            if not runs:
                continue
            steps = sorted(set().union(*runs))
            values = [[r[s] for r in runs if s in r] for s in steps]
            label = f"{'offrl' if lib == 'offrl' else 'seohongpark/fql'} ({len(runs)} seeds)"
            ax.plot(steps, [sum(v) / len(v) for v in values], style, color=COLOURS[name], label=label)
            ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], color=COLOURS[name],
                            alpha=0.12)
        ax.set_title(name.upper() if name != "rebrac" else "ReBRAC", fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.set_ylim(-2, 102)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("success rate (%)")
    fig.text(0.01, 0.005, "Line: mean over seeds at each evaluation; band: min–max over seeds.", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(args: argparse.Namespace) -> None:
    plot_curves(args.out, args.out / "parity_fql_curves.png")
    print(success_table(args.out))
    print()
    print(loss_table(args.out, args.updates - args.eval_every, args.updates, LOSSES))


# --- throughput: updates/s per core of both libraries ------------------------------------------------------------
def offrl_rate(spec: dict) -> dict:
    """offrl's iterations/s for one agent and size (runs in a fresh worker pinned to one CPU)."""
    import offrl
    from offrl.trainer.api import start

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})
    critic, actor, preset, _, _ = AGENTS[spec["agent"]]
    h = hidden_list(spec["hidden"])
    cfg = offrl.make_config(critic=critic, actor=actor, preset=preset, dataset=spec["dataset"], overrides={
        "critic.hidden_dims": h, "actor.hidden_dims": h, "trainer.threads": 1, "trainer.device": "cpu",
        "trainer.compile": spec["compile"], "trainer.steps": 10**7})
    with tempfile.TemporaryDirectory() as d:
        trainer = start(cfg, Path(d) / "run")
        learner = trainer.learner
        learner.train(spec["warmup"])
        learner.read_metrics()
        t0 = time.perf_counter()
        learner.train(spec["updates"])
        learner.read_metrics()
        rate = spec["updates"] / (time.perf_counter() - t0)
        trainer.release()
    return {"impl": "offrl", "agent": spec["agent"], "hidden": spec["hidden"], "compile": spec["compile"],
            "updates_per_s": rate, "compile_s": learner.compile_seconds}


def throughput(args: argparse.Namespace, python: Path, data_dir: Path, env_name: str) -> None:
    """Interleaved rounds: offrl (eager and compiled) and FQL's code, each agent × size, one pinned core."""
    rows = []
    for _ in range(args.rounds):
        for size in args.sizes:
            depth, width = size.split("x")
            hidden = ",".join([width] * int(depth))
            for agent in args.agents:
                for mode in args.modes:
                    spec = {"agent": agent, "hidden": hidden, "dataset": args.dataset, "compile": mode,
                            "cpu": args.cpu, "updates": args.bench_updates, "warmup": args.bench_warmup}
                    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
                    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                                          capture_output=True, text=True, timeout=3600)
                    if proc.returncode != 0:
                        raise SystemExit(proc.stderr[-3000:])
                    rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "size": size})
                    print(json.dumps(rows[-1]), flush=True)
                *_, fql_agent, sets = AGENTS[agent]
                peer = str(Path(__file__).parent / "peers" / "fql_peer.py")
                cmd = ["taskset", "-c", str(args.cpu), str(python), peer,
                       "throughput", "--fql", str(args.fql), "--data-dir", str(data_dir), "--env-name", env_name,
                       "--agent", fql_agent, "--hidden", hidden, "--updates", str(args.bench_updates),
                       "--warmup", str(args.bench_warmup), *[x for s in sets for x in ("--set", s)]]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"})
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-3000:])
                rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "size": size})
                print(json.dumps(rows[-1]), flush=True)
    print_throughput(rows)


def print_throughput(rows: list[dict]) -> None:
    import statistics

    groups: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["agent"], r["size"], r["impl"] if r["impl"] != "offrl" else f"offrl ({r['compile']})")
        groups.setdefault(key, []).append(r["updates_per_s"])
    print("| agent | size | implementation | updates/s (1 core, median) | rounds |")
    print("|---|---|---|---:|---:|")
    for (agent, size, impl), rates in sorted(groups.items()):
        print(f"| {agent} | {size} | {impl} | {statistics.median(rates):.1f} | {len(rates)} |")


def prepare(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """The peer's interpreter, the exported data and OGBench's single-task name of the dataset."""
    from benchmarks.common import export_ogbench_npz, fql_python
    from offrl.datagen.recipes.ogbench import parse_id

    if args.fql is None or not (args.fql / "agents" / "fql.py").is_file():
        raise SystemExit(f"--fql must name a checkout of seohongpark/fql (agents/fql.py), got {args.fql}")
    env, task = parse_id(args.dataset)
    data_dir = export_ogbench_npz(args.dataset, args.data_dir or (args.out / "ogbench-data"))
    return fql_python(args.peer_venv, cuda=args.cuda), data_dir, env.dataset_name(task)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fql", type=lambda v: Path(v).resolve(), help="a checkout of seohongpark/fql (never copied)")
    p.add_argument("--dataset", default="offrl/ogbench/cube-single-play-singletask-task2-v0")
    p.add_argument("--hidden", default="256,256", help="hidden widths of every network, both libraries")
    p.add_argument("--updates", type=int, default=50_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--log-every", type=int, default=1_000)
    p.add_argument("--out", type=Path, default=Path("runs/parity-fql"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--compile", default="auto", help="offrl's trainer.compile")
    p.add_argument("--only", nargs="+", default=None,
                   help="a subset of: offrl:fql fql:fql offrl:ifql fql:ifql offrl:rebrac fql:rebrac")
    p.add_argument("--peer-venv", type=Path, default=None,
                   help="the FQL peer's virtual environment (default $OFFRL_FQL_VENV or the bench dir)")
    p.add_argument("--cuda", action="store_true", help="CUDA JAX in the peer's environment")
    p.add_argument("--data-dir", type=Path, default=None, help="where the OGBench-layout export goes")
    p.add_argument("--plot-only", action="store_true", help="only the figure and tables from the runs in OUT")
    p.add_argument("--throughput", action="store_true", help="measure updates/s per core of both libraries")
    p.add_argument("--sizes", nargs="+", default=["4x512", "4x256", "2x256"], help="DEPTHxWIDTH (--throughput)")
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--modes", nargs="+", default=["off", "on"], help="offrl's compile modes (--throughput)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cpu", type=int, default=0, help="the CPU every throughput process is pinned to")
    p.add_argument("--bench-updates", type=int, default=200)
    p.add_argument("--bench-warmup", type=int, default=20)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(offrl_rate(json.loads(args.worker))))
        return
    if args.plot_only:
        study = args.out / "parity.json"
        if study.exists():
            recorded = json.loads(study.read_text())
            args.updates, args.eval_every = recorded["updates"], recorded["eval_every"]
        summarize(args)
        return
    python, data_dir, env_name = prepare(args)
    if args.throughput:
        throughput(args, python, data_dir, env_name)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or [f"{lib}:{a}" for a in AGENTS for lib in ("offrl", "fql")])
    ours = [(f"offrl-{a}", offrl_command(a, args)) for a in AGENTS if f"offrl:{a}" in wanted]
    peer = [(f"fql-{a}-seed{s}", peer_command(a, s, args, python, data_dir, env_name))
            for s in args.seeds for a in AGENTS if f"fql:{a}" in wanted]
    commands = interleave(ours, peer)
    record_commands(args, commands, {"hidden": args.hidden})
    t0 = time.time()
    run_all(commands, args.jobs, args.out / "logs")
    print(f"all runs done in {time.time() - t0:.0f} s", file=sys.stderr)
    subprocess.call([sys.executable, "-m", "offrl", "report", str(args.out), "--out", str(args.out / "report")])
    summarize(args)


if __name__ == "__main__":
    main()
