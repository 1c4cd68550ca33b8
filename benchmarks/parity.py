"""Parity with a trusted implementation: offrl and d3rlpy on the same locomotion data, budget and evaluation.

    MINARI_DATASETS_PATH=STORE python benchmarks/parity.py --dataset offrl/hopper/medium-expert-v0 \\
        --updates 100000 --seeds 0 1 2 --out runs/parity
    offrl report runs/parity --out runs/parity/report          # (run by the script at the end)
    python benchmarks/parity.py --out runs/parity --plot-only  # redraw runs/parity/parity_curves.png

Runs, each with the same number of updates, evaluation cadence and episodes (episode seeds from
(seed, step) as offrl evaluates; deterministic actions):

- ``offrl:iql``        offrl ``expectile + gaussian-awr`` with the ``iql-locomotion`` preset;
- ``d3rlpy:iql``       d3rlpy 2.8.1's IQL with its reproduction settings (1000/(R_max − R_min) reward
                       scaling, cosine actor LR), in its own virtual environment;
- ``offrl:ddpgbc``     offrl ``expectile + ddpg-bc`` (``ddpgbc-locomotion``: TD3+BC's actor loss on an
                       IQL critic, states normalised, policy delay 2);
- ``offrl:td3bc``      offrl ``td3 + ddpg-bc`` (``td3bc-locomotion``: TD3+BC itself);
- ``d3rlpy:td3+bc``    d3rlpy's TD3+BC (standardised observations);
- ``offrl:idql``, ``offrl:edp``  the extraction families on the same critic and budget (``expectile`` with
                       ``diffusion-resample`` and ``edp`` at reduced sizes, see ``ACTOR_RUNS``).

Every run is chosen by default; ``--only`` picks a subset, so a study can be run in parts.

offrl trains each configuration's seeds in one process (``--seeds``); d3rlpy runs one process per seed.
``--jobs`` processes run at once (default 2: one per core of a 2-core machine, each single-threaded).
Every run directory is offrl's format, so ``offrl report`` aggregates both libraries: mean ± std, IQM with
stratified-bootstrap CIs, and learning curves of all runs on one figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: offrl configurations: name -> (critic, actor, preset, extra --set values).
OFFRL_RUNS = {
    "iql": ("expectile", "gaussian-awr", "iql-locomotion", []),
    "ddpgbc": ("expectile", "ddpg-bc", "ddpgbc-locomotion", []),
    "td3bc": ("td3", "ddpg-bc", "td3bc-locomotion", []),
}
#: The extraction families on the IQL critic, sized to fit a CPU budget (the papers' networks do not:
#: docs/performance.md), on the IQL critic of ``iql-locomotion`` (τ = 0.7, its reward scaling).
#: IDQL: its LN-ResNet at half width (128 → 512 → 128) with 2 blocks instead of 3, T = 5, 32 candidates
#: (IDQL's AntMaze N); EDP: its 3×256 Mish MLP denoiser, T = 1000 with 15 DPM-Solver calls, 10 candidates
#: (EDP's paper; its code: 50). Candidates × solver calls × 10 environments × 3 seeds is what evaluation costs.
ACTOR_RUNS = {
    "idql": ("expectile", "diffusion-resample", "iql-locomotion",
             ["actor.hidden=128", "actor.depth=2", "actor.num_samples=32"]),
    "edp": ("expectile", "edp", "iql-locomotion", ["actor.hidden=256", "actor.depth=3", "actor.num_samples=10"]),
}
PEER_RUNS = {"iql": "iql", "td3+bc": "td3+bc"}


def offrl_command(name: str, spec: tuple, args: argparse.Namespace) -> list[str]:
    critic, actor, preset, sets = spec
    cmd = [sys.executable, "-m", "offrl", "run", "--critic", critic, "--actor", actor, "--preset", preset,
           "--dataset", args.dataset, "--steps", str(args.updates), "--eval-every", str(args.eval_every),
           "--eval-episodes", str(args.eval_episodes), "--save-every", str(args.eval_every),
           "--seeds", ",".join(map(str, args.seeds)), "--out", str(args.out / f"offrl-{name}"),
           "--set", "trainer.eval_envs=10", "--set", f"trainer.compile={args.compile}", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def peer_command(algo: str, seed: int, args: argparse.Namespace, npz: Path, ref: tuple[float, float],
                 env_id: str) -> list[str]:
    from benchmarks.common import peer_python

    return [str(peer_python("d3rlpy")), str(Path(__file__).parent / "peers" / "d3rlpy_peer.py"), "train",
            "--data", str(npz), "--dataset", args.dataset, "--algo", algo, "--updates", str(args.updates),
            "--seed", str(seed), "--out", str(args.out / f"d3rlpy-{algo}" / f"seed{seed}"), "--env", env_id,
            "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
            "--ref-min", str(ref[0]), "--ref-max", str(ref[1])]


def run_all(commands: list[tuple[str, list[str]]], jobs: int, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def one(item: tuple[str, list[str]]) -> tuple[str, int, float]:
        name, cmd = item
        t0 = time.time()
        with open(log_dir / f"{name}.log", "w") as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"  {name}: exit {code} after {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        return name, code, time.time() - t0

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, commands))
    failed = [n for n, code, _ in results if code not in (0, 3)]
    if failed:
        raise SystemExit(f"failed: {failed} (logs in {log_dir})")


#: Groups of the figure: directory under OUT -> (label, colour, line style); left panel the peer comparisons,
#: right panel the extraction families on the IQL critic.
PARITY_CURVES = {"offrl-iql": ("offrl IQL (expectile + gaussian-awr)", "tab:red", "-"),
                 "d3rlpy-iql": ("d3rlpy IQL", "tab:blue", "--"),
                 "offrl-td3bc": ("offrl TD3+BC (td3 + ddpg-bc)", "tab:orange", "-"),
                 "offrl-ddpgbc": ("offrl expectile + ddpg-bc", "tab:green", "-"),
                 "d3rlpy-td3+bc": ("d3rlpy TD3+BC", "tab:purple", "--")}
ACTOR_CURVES = {"offrl-iql": ("gaussian-awr (IQL)", "tab:red", "-"),
                "offrl-ddpgbc": ("ddpg-bc", "tab:green", "-"),
                "offrl-idql": ("diffusion-resample (IDQL, reduced)", "tab:brown", "-"),
                "offrl-edp": ("edp (EDP, reduced)", "tab:cyan", "-")}


def read_curves(out: Path, group: str, metric: str = "normalized_score_100") -> list[dict[int, float]]:
    """Each seed's ``metric`` by update count, from ``OUT/GROUP/seed*/eval.jsonl`` (both libraries)."""
    runs = []
    for f in sorted((out / group).glob("seed*/eval.jsonl")):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        runs.append({r["step"]: r[metric] for r in rows if metric in r})
    return [r for r in runs if r]


def plot_curves(out: Path, path: Path) -> None:
    """Mean over seeds at each evaluation (line) and min–max over seeds (band), one panel per question."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    titles = ("offrl vs d3rlpy 2.8.1, same data and evaluation", "extraction families on offrl's IQL critic")
    for ax, groups, title in zip(axes, (PARITY_CURVES, ACTOR_CURVES), titles):
        for group, (label, colour, style) in groups.items():
            runs = read_curves(out, group)
            if not runs:
                continue
            steps = sorted(set().union(*runs))
            values = [[r[s] for r in runs if s in r] for s in steps]
            counts = [len(v) for v in values]
            mean = [sum(v) / len(v) for v in values]
            note = f"{max(counts)} seeds" + (f"; {min(counts)} reached {steps[-1] // 1000}k"
                                              if min(counts) != max(counts) else "")
            ax.plot(steps, mean, style, color=colour, label=f"{label} ({note})")
            ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], color=colour, alpha=0.15)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("normalised score (0 random, 100 expert checkpoint)")
    fig.text(0.01, 0.005, "Line: mean over seeds at each evaluation (10 episodes each); band: min–max over seeds.",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


LOSSES = ("critic/q_loss", "critic/v_loss", "actor/loss")


def loss_table(out: Path, start: int, end: int, losses: tuple[str, ...] = LOSSES) -> str:
    """Markdown: each group's training losses averaged over updates (start, end] and then over seeds — the
    same window for both libraries (d3rlpy's rows are epoch averages, offrl's the logged ones in the window),
    so a difference in what the two optimise shows before it shows in the scores."""
    lines = [f"Training losses, mean over updates {start + 1:,}–{end:,}, then over seeds:", "",
             f"| run | seeds | {' | '.join(losses)} |", "|---|---:|" + "---:|" * len(losses)]
    for group in sorted(d.name for d in out.iterdir() if d.is_dir() and any(d.glob("seed*/train.jsonl"))):
        per_seed = []
        for f in sorted((out / group).glob("seed*/train.jsonl")):
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            rows = [r for r in rows if start < r.get("step", -1) <= end]
            if rows:
                per_seed.append({k: sum(r[k] for r in rows if k in r) / max(1, sum(k in r for r in rows))
                                 for k in losses if any(k in r for r in rows)})
        if per_seed:
            cells = [f"{sum(s[k] for s in per_seed) / len(per_seed):.2f}" if all(k in s for s in per_seed) else "–"
                     for k in losses]
            lines.append(f"| {group} | {len(per_seed)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def record_commands(args: argparse.Namespace, commands: list[tuple[str, list[str]]],
                    extra: dict | None = None) -> None:
    """Add this invocation's commands to ``OUT/parity.json`` (runs of one study may be started in parts,
    e.g. ``--only``; the file keeps every command that made a run in OUT). A different protocol is refused."""
    path = args.out / "parity.json"
    protocol = {"dataset": args.dataset, "updates": args.updates, "eval_every": args.eval_every,
                "eval_episodes": args.eval_episodes, **(extra or {})}
    record = {**protocol, "seeds": [], "commands": {}}
    if path.exists():
        record = json.loads(path.read_text())
        differs = {k: (record.get(k), v) for k, v in protocol.items() if record.get(k) != v}
        if differs:
            raise SystemExit(f"{args.out} holds a parity study with another protocol "
                             f"({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in differs.items())}); "
                             "choose another --out")
    record["seeds"] = sorted(set(record["seeds"]) | set(args.seeds))
    record["commands"].update(dict(commands))
    path.write_text(json.dumps(record, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="offrl/hopper/medium-expert-v0")
    p.add_argument("--updates", type=int, default=100_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/parity"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--compile", default="auto", help="offrl's trainer.compile")
    p.add_argument("--only", nargs="+", default=None,
                   help="a subset of: offrl:iql offrl:ddpgbc offrl:td3bc d3rlpy:iql d3rlpy:td3+bc offrl:idql offrl:edp")
    p.add_argument("--plot-only", action="store_true",
                   help="only redraw OUT/parity_curves.png and print the loss table from the runs in OUT")
    args = p.parse_args()
    if args.plot_only:
        study = args.out / "parity.json"  # the study's own budget, when it was recorded
        if study.exists():
            recorded = json.loads(study.read_text())
            args.updates, args.eval_every = recorded["updates"], recorded["eval_every"]
        plot_curves(args.out, args.out / "parity_curves.png")
        print(loss_table(args.out, args.updates - args.eval_every, args.updates))
        return

    from offrl.data.dataset import load_offline_dataset

    from benchmarks.common import export_npz

    ds = load_offline_dataset(args.dataset, reward="none", check_env=False)
    ref = (ds.ref_min_score, ds.ref_max_score)
    env_id = ds.make_env().spec.id
    npz = export_npz(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or ["offrl:iql", "offrl:ddpgbc", "offrl:td3bc", "d3rlpy:iql", "d3rlpy:td3+bc",
                               "offrl:idql", "offrl:edp"])
    commands: list[tuple[str, list[str]]] = []
    for name, spec in {**OFFRL_RUNS, **ACTOR_RUNS}.items():
        if f"offrl:{name}" in wanted:
            commands.append((f"offrl-{name}", offrl_command(name, spec, args)))
    for algo in PEER_RUNS:
        if f"d3rlpy:{algo}" in wanted:
            commands += [(f"d3rlpy-{algo}-seed{s}", peer_command(algo, s, args, npz, ref, env_id)) for s in args.seeds]
    # the longest first, so two workers stay busy to the end
    commands.sort(key=lambda c: ("idql" not in c[0], "edp" not in c[0], not c[0].startswith("offrl")))
    record_commands(args, commands)
    t0 = time.time()
    run_all(commands, args.jobs, args.out / "logs")
    print(f"all runs done in {time.time() - t0:.0f} s", file=sys.stderr)
    subprocess.call([sys.executable, "-m", "offrl", "report", str(args.out), "--out", str(args.out / "report")])
    plot_curves(args.out, args.out / "parity_curves.png")
    print(loss_table(args.out, args.updates - args.eval_every, args.updates))


if __name__ == "__main__":
    main()
