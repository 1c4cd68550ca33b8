"""IQL's early learning curve: offrl today against the trainer before the shared learner, on the same data.

    MINARI_DATASETS_PATH=STORE python benchmarks/iql_early.py --old-tree ../offrl-f6e667e \\
        --dataset offrl/hopper/medium-expert-v0 --seeds 0 1 2 3 4 --updates 50000 --out runs/iql-early/hme
    python benchmarks/iql_early.py --out runs/iql-early/hme --plot-only     # redraw the figure and the table

``--record FILE`` (e.g. ``benchmarks/results/iql_early_hopper_me.json``, committed) keeps every finished run's
curve with a digest of the dataset it trained on, so a study can grow over several sittings on machines that do
not keep ``--out``: runs already in the record are skipped, and the figure and table use the record and ``--out``
together. A record made on other data (another digest) is refused rather than mixed.

``--old-tree`` is a checkout of the last commit before the shared learner (f6e667e: ``git worktree add
../offrl-f6e667e f6e667e``); it runs with its own code and CLI. Variants (``--variants``):

- ``old``            f6e667e's trainer, ``iql-locomotion`` (critic, then actor on a fresh batch: V → Q → targets
                     → actor);
- ``main``           this checkout, ``iql-locomotion`` (one batch for V, the actor and Q in IQL's code order
                     V → actor → Q → targets: ``trainer.shared_batch=true``);
- ``main-separate``  this checkout with ``trainer.shared_batch=false`` (the old order on separate batches);
- ``main-joint``     this checkout with ``trainer.update_order=joint`` where that option exists.

Every run is a solo run in its own process with the same budget, evaluation cadence and episodes; runs are
started interleaved (seed by seed, variant by variant) ``--jobs`` at a time, so load drift hits every variant
alike. The figure: each variant's mean normalised score over its seeds, with a 95% percentile-bootstrap band
over seeds; the table: mean ± std at chosen steps and how many early evaluations fell below a threshold; the
comparison: each run's mean over its evaluations up to ``--until`` (one number per seed), every variant against each
of ``--against`` (default: old, then main), with a bootstrap CI of the difference and an exact permutation p-value.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import dataset_digest  # noqa: E402  (the record's data digest)

#: variant -> (code tree: "old" or "main", extra --set values)
VARIANTS = {
    "old": ("old", []),
    "main": ("main", []),
    "main-separate": ("main", ["trainer.shared_batch=false"]),
    "main-joint": ("main", ["trainer.update_order=joint"]),
}


def command(variant: str, seed: int, args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    tree, sets = VARIANTS[variant]
    out = args.out / variant / f"seed{seed}"
    cmd = [sys.executable, "-m", "offrl", "run", "--preset", "iql-locomotion", "--dataset", args.dataset,
           "--steps", str(args.updates), "--eval-every", str(args.eval_every), "--eval-episodes",
           str(args.eval_episodes), "--save-every", str(args.eval_every), "--seed", str(seed), "--out", str(out),
           "--quiet"]
    if tree == "main":
        cmd += ["--set", "trainer.eval_async=off", "--set", f"trainer.compile={args.compile}"]
    for s in sets:
        cmd += ["--set", s]
    path = str(args.old_tree.resolve()) if tree == "old" else str(ROOT)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return cmd, env


def read_record(path: Path | None, dataset: str, digest: str | None) -> dict:
    """The record at ``path`` (or an empty one); refuses one made on other data."""
    if path is None or not path.exists():
        return {"dataset": dataset, "dataset_sha256": digest, "runs": {}}
    rec = json.loads(path.read_text())
    if rec["dataset"] != dataset or (digest and rec.get("dataset_sha256") and rec["dataset_sha256"] != digest):
        raise SystemExit(f"{path} was recorded on {rec['dataset']} (sha256 {rec.get('dataset_sha256')}), not on "
                         f"{dataset} (sha256 {digest}): use another --record file")
    rec["dataset_sha256"] = rec.get("dataset_sha256") or digest
    return rec


def write_record(path: Path, rec: dict, out: Path, updates: int) -> None:
    """Add each finished run under ``out`` (its summary.json written, evaluated at ``updates``) to the record."""
    for v in VARIANTS:
        for seed, curve in curves(out, v).items():
            if (out / v / f"seed{seed}" / "summary.json").exists() and updates in curve:
                rec["runs"].setdefault(v, {})[str(seed)] = {str(k): curve[k] for k in sorted(curve)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1) + "\n")


def recorded(rec: dict | None, variant: str, seed: int, updates: int) -> bool:
    return rec is not None and str(updates) in rec["runs"].get(variant, {}).get(str(seed), {})


def run_all(args: argparse.Namespace, rec: dict | None = None) -> None:
    jobs = [(v, s) for s in args.seeds for v in args.variants  # interleaved: seed by seed, variant by variant
            if not recorded(rec, v, s, args.updates)]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def one(job: tuple[str, int]) -> str:
        variant, seed = job
        run_dir = args.out / variant / f"seed{seed}"
        if (run_dir / "summary.json").exists():
            return f"{variant} seed {seed}: done before"
        cmd, env = command(variant, seed, args)
        if (run_dir / "config.json").exists():  # interrupted: continue it
            cmd = [*cmd[:4], "--resume", str(run_dir), "--quiet"]
        t0 = time.time()
        with open(logs / f"{variant}-seed{seed}.log", "w") as log:
            rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=args.out).returncode
        return f"{variant} seed {seed}: exit {rc} after {time.time() - t0:.0f} s"

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(one, jobs):
            print(line, flush=True)


def curves(out: Path, variant: str, rec: dict | None = None) -> dict[int, dict[int, float]]:
    """seed -> {step: normalised score} of a variant's recorded, finished or partial runs (``out`` wins)."""
    from offrl.rundir import read_jsonl

    found = {int(seed): {int(k): x for k, x in c.items()} for seed, c in (rec or {}).get("runs", {})
             .get(variant, {}).items()}
    for d in sorted((out / variant).glob("seed*")):
        rows = read_jsonl(d / "eval.jsonl")
        found[int(d.name[4:])] = {int(r["step"]): r["normalized_score_100"] for r in rows
                                  if r.get("normalized_score_100") is not None}
    return found


def band(values: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean over seeds."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(out: Path, variants: list[str], at: list[int], below: float, until: int,
              rec: dict | None = None) -> str:
    lines = [f"| variant | seeds | " + " | ".join(f"{s // 1000}k" for s in at)
             + f" | evaluations < {below:g} up to {until // 1000}k |", "|---|---:|" + "---:|" * (len(at) + 1)]
    for v in variants:
        runs = curves(out, v, rec)
        if not runs:
            continue
        cells = []
        for step in at:
            vals = np.array([r[step] for r in runs.values() if step in r])
            cells.append(f"{vals.mean():.1f} ± {vals.std():.1f}" if len(vals) else "–")
        early = [x for r in runs.values() for s, x in r.items() if s <= until]
        low = sum(x < below for x in early)
        lines.append(f"| {v} | {len(runs)} | " + " | ".join(cells) + f" | {low} of {len(early)} |")
    return "\n".join(lines)


def early_means(runs: dict[int, dict[int, float]], until: int) -> np.ndarray:
    """Each seed's mean score over its evaluations up to ``until``: one number per run for the early curve."""
    return np.array([np.mean([x for step, x in r.items() if step <= until]) for _, r in sorted(runs.items())])


def permutation_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact permutation p-value of the difference in means (every split of the pooled runs)."""
    pool, n = np.concatenate([x, y]), len(x)
    diffs = []
    for idx in itertools.combinations(range(len(pool)), n):
        mask = np.zeros(len(pool), bool)
        mask[list(idx)] = True
        diffs.append(pool[mask].mean() - pool[~mask].mean())
    return float(np.mean(np.abs(diffs) >= abs(x.mean() - y.mean()) - 1e-9))


def compare(out: Path, variants: list[str], until: int, rec: dict | None = None, reps: int = 10_000,
            base: str | None = None) -> str:
    """Every variant's early mean against ``base``'s (default: the first variant's): difference, 95% bootstrap CI,
    permutation p.

    Why: single collapsed evaluations make per-step means noisy; one number per run over the whole early
    window tests "is this variant behind" with the seeds as the unit.
    """
    means = {v: early_means(curves(out, v, rec), until) for v in variants}
    means = {v: m for v, m in means.items() if len(m)}
    if not means:
        return ""
    base = base if base is not None else next(iter(means))
    if base not in means:
        return ""
    rng = np.random.default_rng(0)
    means = {base: means[base], **{v: m for v, m in means.items() if v != base}}
    lines = [f"| variant | mean score over evaluations up to {until // 1000}k, per seed | mean | "
             f"− {base} [95% CI] | permutation p |", "|---|---|---:|---:|---:|"]
    for v, m in means.items():
        cells = [v, " / ".join(f"{x:.1f}" for x in m), f"{m.mean():.1f}"]
        if v == base:
            cells += ["", ""]
        else:
            b = means[base]
            boot = rng.choice(m, (reps, len(m))).mean(1) - rng.choice(b, (reps, len(b))).mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            cells += [f"{m.mean() - b.mean():+.1f} [{lo:+.1f}, {hi:+.1f}]", f"{permutation_p(m, b):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(out: Path, variants: list[str], path: Path, title: str, rec: dict | None = None) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for v in variants:
        runs = curves(out, v, rec)
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(r) for r in runs.values())))
        if not steps:
            continue
        mean = np.array([np.mean([r[s] for r in runs.values()]) for s in steps])
        lo, hi = zip(*(band(np.array([r[s] for r in runs.values()])) for s in steps))
        (line,) = ax.plot(steps, mean, marker="o", ms=3, label=f"{v} (n={len(runs)})")
        ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
    ax.set_xlabel("updates")
    ax.set_ylabel("normalised score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old-tree", type=Path, help="checkout of f6e667e (the trainer before the shared learner)")
    p.add_argument("--dataset", default="offrl/hopper/medium-expert-v0")
    p.add_argument("--variants", nargs="+", default=["old", "main", "main-separate"], choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--updates", type=int, default=50_000)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--compile", default="off", help="trainer.compile of this checkout's runs (default off: eager, "
                                                   "as the old trainer)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--record", type=Path, help="JSON file keeping finished runs' curves across sittings (see above)")
    p.add_argument("--at", nargs="+", type=int, default=[10_000, 20_000, 30_000, 50_000])
    p.add_argument("--below", type=float, default=30.0)
    p.add_argument("--until", type=int, default=40_000)
    p.add_argument("--against", nargs="+", default=["old", "main"],
                   help="variants each of the others is compared with (those present)")
    args = p.parse_args()
    args.out = args.out.resolve()
    rec = None
    if args.record:
        rec = read_record(args.record, args.dataset, None if args.plot_only else dataset_digest(args.dataset))
    if not args.plot_only:
        if "old" in args.variants and not args.old_tree:
            p.error("--old-tree is needed for the 'old' variant")
        (args.out).mkdir(parents=True, exist_ok=True)
        (args.out / "study.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                          for k, v in vars(args).items()}, indent=2))
        run_all(args, rec)
    if rec is not None and not args.plot_only:  # only runs checked against the dataset's digest go in
        write_record(args.record, rec, args.out, args.updates)
    variants = [v for v in VARIANTS if (args.out / v).is_dir() or v in (rec or {}).get("runs", {})]
    figure = plot(args.out, variants, args.out / "iql_early_curves.png",
                  f"IQL (iql-locomotion) on {args.dataset}\nmean and 95% bootstrap band over seeds", rec)
    print(summarise(args.out, variants, args.at, args.below, args.until, rec))
    for base in args.against:
        print(compare(args.out, variants, args.until, rec, base=base))
    if figure:
        print(f"figure: {figure}")


if __name__ == "__main__":
    main()
