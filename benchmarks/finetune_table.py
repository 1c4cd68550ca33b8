"""Offline → online table: each pairing's score where its online phase starts, and k environment steps later.

    offrl report runs/ft-iql/seed0 runs/ft-iql/seed1 ... --out runs/ft-report
    python benchmarks/finetune_table.py runs/ft-report --at 5000 10000 25000 50000 \\
        --label expectile+gaussian-awr=IQL --record benchmarks/results/finetune_hopper_m.json \\
        --dataset offrl/hopper/medium-v0     # its sha256 goes into the record (or give --sha256)

It reads the report's ``runs.csv`` (one row per run × evaluation, with ``online_from``: the step where the
run's online phase starts) and prints one markdown row per pairing: the mean ± std (population) over seeds
at the offline end, the mean at each ``--at`` offset into the online phase, the last offset's per-seed
values, and the lowest and highest online means (a fine-tuning curve that dips before it climbs is the
known failure mode, so the dip is printed, not just the end). A pairing's runs must share ``online_from``.

``--record FILE`` writes every run's curve (pairing → seed → step → score) with the dataset's digest, so
the table can be drawn again on a machine that no longer has the runs (``--from-record``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def curves_of(runs_csv: Path) -> dict:
    """{pairing: {"online_from": N, "seeds": {seed: {step: score}}}} from a report's runs.csv."""
    import pandas as pd

    df = pd.read_csv(runs_csv)
    out: dict = {}
    for pairing, g in df.groupby("pairing"):
        starts = sorted({int(x) for x in g["online_from"].dropna()})
        if not starts:
            raise SystemExit(f"{pairing}: its runs have no online phase (no online_from in runs.csv).")
        if len(starts) != 1:
            raise SystemExit(f"{pairing}: its runs start their online phases at different steps {starts}; "
                             "give runs of one protocol.")
        seeds = {str(int(s)): {str(int(r.step)): float(r.score) for r in gs.itertuples()}
                 for s, gs in g.groupby("seed")}
        out[str(pairing)] = {"online_from": starts[0], "seeds": seeds}
    return out


def _at(seeds: dict, step: int) -> np.ndarray:
    return np.array([c[str(step)] for c in seeds.values() if str(step) in c])


def _fmt_k(k: int) -> str:
    return f"{k // 1000}k" if k % 1000 == 0 else str(k)


def table(curves: dict, at: list[int], labels: dict[str, str] | None = None) -> str:
    """The markdown table (see the module docstring)."""
    labels = labels or {}
    head = ["pairing", "seeds", "offline end", *[f"+{_fmt_k(k)}" for k in at[:-1]],
            f"+{_fmt_k(at[-1])} (per seed)", "online mean: lowest / highest"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pairing, rec in curves.items():
        off, seeds = rec["online_from"], rec["seeds"]
        start = _at(seeds, off)
        cells = [labels.get(pairing, pairing), str(len(seeds)),
                 f"{start.mean():.1f} ± {start.std():.1f} (step {off:,})" if len(start) else "—"]
        for k in at:
            v = _at(seeds, off + k)
            cell = f"{v.mean():.1f}" if len(v) else "—"
            if len(v) and len(v) < len(seeds):
                cell += f" (n={len(v)})"
            if k == at[-1] and len(v):
                cell += " (" + ", ".join(f"{x:.1f}" for x in v) + ")"
            cells.append(cell)
        online = sorted({int(s) for c in seeds.values() for s in c if int(s) > off})
        means = [(_at(seeds, s).mean(), s) for s in online]
        if means:
            lo, hi = min(means), max(means)
            cells.append(f"{lo[0]:.1f} (+{_fmt_k(lo[1] - off)}) / {hi[0]:.1f} (+{_fmt_k(hi[1] - off)})")
        else:
            cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, nargs="?", help="an offrl report directory (or its runs.csv)")
    p.add_argument("--at", type=int, nargs="+", default=[5000, 10000, 25000, 50000],
                   help="environment steps into the online phase")
    p.add_argument("--label", action="append", default=[], metavar="PAIRING=NAME")
    p.add_argument("--record", type=Path, help="write the curves here (JSON)")
    p.add_argument("--sha256", default="", help="the dataset's digest, kept in the record")
    p.add_argument("--dataset", default="", help="with --record: the dataset's id, whose sha256 it computes "
                   "(from the Minari store) unless --sha256 is given")
    p.add_argument("--from-record", type=Path, help="draw the table from a record instead of a report")
    args = p.parse_args(argv)
    labels = dict(x.split("=", 1) for x in args.label)
    if args.from_record:
        curves = json.loads(args.from_record.read_text())["pairings"]
    elif args.report:
        csv = args.report / "runs.csv" if args.report.is_dir() else args.report
        if not csv.exists():
            raise SystemExit(f"{csv} does not exist: give an `offrl report` directory or its runs.csv.")
        curves = curves_of(csv)
    else:
        raise SystemExit("Give a report directory or --from-record FILE.")
    if args.record:
        if args.dataset and not args.sha256:
            sys.path.insert(0, str(ROOT))
            from benchmarks.common import dataset_digest

            args.sha256 = dataset_digest(args.dataset)
        record = {"dataset": args.dataset, "dataset_sha256": args.sha256, "pairings": curves}
        args.record.write_text(json.dumps(record, indent=1) + "\n")
    print(table(curves, sorted(args.at), labels))


if __name__ == "__main__":
    main()
