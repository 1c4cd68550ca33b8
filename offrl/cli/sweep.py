"""``offrl sweep``: run a grid of offrl runs, crash-safe, locally or on Ray.

Examples::

    offrl sweep benchmarks/bandit.toml
    offrl sweep --critics expectile,quantile --actors gaussian-awr,edp --seeds 0-4 \\
        --grid critic.tau=0.6,0.7,0.9 --steps 20000 --out runs/tau-sweep --workers 2
    offrl sweep benchmarks/locomotion.toml --backend ray --ray-address auto --gpus-per-cell 0.25

Rerunning the same command skips finished cells, resumes interrupted ones and
retries failed ones.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path

from typing import TYPE_CHECKING

from offrl.sweep.spec import BACKENDS, SweepSpec, load_spec, parse_grid_flag, parse_names, parse_seeds

if TYPE_CHECKING:
    from rich.console import Console

    from offrl.sweep.driver import SweepOutcome

# The driver (rich, filelock, the registries) is imported in run(): every `offrl`
# command builds this parser and must not pay for it.
DEFAULT_RUNNER_TEXT = "{python} -m offrl run"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of runs (critics × actors × datasets × seeds), locally or on Ray",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", nargs="?", help="sweep spec file (TOML, e.g. benchmarks/bandit.toml); flags override it")
    p.add_argument("--out", help="sweep directory (default: the spec's [sweep] out, else runs/<name>)")
    p.add_argument("--name", help="sweep name (default: the spec file's name, else 'sweep')")
    grid = p.add_argument_group("grid (comma-separated, repeatable)")
    grid.add_argument("--critics", "--critic", action="append", metavar="NAMES", help="critic names")
    grid.add_argument("--actors", "--actor", action="append", metavar="NAMES", help="actor names")
    grid.add_argument("--datasets", "--dataset", action="append", metavar="IDS", help="dataset ids")
    grid.add_argument("--seeds", help="seeds: '0,1,2', an inclusive range '0-4', or a count with --num-seeds")
    grid.add_argument("--num-seeds", type=int, metavar="N", help="seeds 0..N-1")
    grid.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="a hyperparameter list, one cell per value (e.g. critic.tau=0.6,0.7,0.9); repeatable",
    )
    run = p.add_argument_group("shared run options (forwarded to every `offrl run`)")
    run.add_argument("--steps", type=int)
    run.add_argument("--eval-every", type=int)
    run.add_argument("--eval-episodes", type=int)
    run.add_argument("--save-every", type=int)
    run.add_argument("--preset")
    run.add_argument("--config", help="config file passed to every run")
    run.add_argument("--device", help="auto, cpu or cuda")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override; repeatable")
    ex = p.add_argument_group("execution")
    ex.add_argument("--backend", choices=BACKENDS, help="where cells run (default: local)")
    ex.add_argument("--workers", type=int, help="cells at once (default: one per core / cpus-per-cell)")
    ex.add_argument("--cpus-per-cell", type=int, help="CPU threads per cell (default: cores // workers; ray: 1)")
    ex.add_argument("--gpus-per-cell", type=float, help="GPU share each Ray task requests (e.g. 0.25)")
    ex.add_argument("--ray-address", help="join this Ray cluster (e.g. 'auto'); default: start a private one")
    ex.add_argument("--dry-run", action="store_true", help="print the resolved grid and exit")
    ex.add_argument("--no-live", action="store_true", help="print one line per event instead of a live table")
    ex.add_argument(
        "--runner", help=f"command that runs one cell (default: '{DEFAULT_RUNNER_TEXT}')"
    )
    return p


def resolve_spec(args: argparse.Namespace) -> SweepSpec:
    """The spec file (if any) with the command-line flags applied on top."""
    spec = load_spec(args.spec) if args.spec else SweepSpec()
    seeds = None
    if args.num_seeds is not None:
        seeds = parse_seeds(args.num_seeds)
    elif args.seeds is not None:
        seeds = parse_seeds(args.seeds)
    grid = dict(spec.grid)
    for item in args.grid:
        key, values = parse_grid_flag(item)
        grid[key] = values
    spec = spec.with_overrides(
        name=args.name,
        out=args.out,
        critics=parse_names(args.critics),
        actors=parse_names(args.actors),
        datasets=parse_names(args.datasets),
        seeds=seeds,
        grid=tuple(grid.items()),
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        save_every=args.save_every,
        preset=args.preset,
        config=args.config,
        device=args.device,
        sets=tuple(spec.run.sets) + tuple(args.set) if args.set else None,
        backend=args.backend,
        workers=args.workers,
        cpus_per_cell=args.cpus_per_cell,
        gpus_per_cell=args.gpus_per_cell,
        ray_address=args.ray_address,
    )
    if spec.out is None:
        spec = replace(spec, out=f"runs/{spec.name}")
    return spec


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from offrl.sweep.driver import DEFAULT_RUNNER, plan_table, run_sweep, validate_names
    from offrl.sweep.layout import SweepLayout

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # logs and CI: wide tables rather than squashed columns
        console.width = max(console.width, 160)
    spec = resolve_spec(args)
    runner = tuple(shlex.split(args.runner)) if args.runner else DEFAULT_RUNNER
    if not args.runner:
        validate_names(spec)
    layout = SweepLayout(Path(spec.out))
    if args.dry_run:
        from offrl.sweep.cells import expand_cells

        console.print(plan_table(spec, expand_cells(spec), layout))
        return 0
    outcome = run_sweep(spec, layout.root, runner=runner, console=console, live=False if args.no_live else None)
    print_summary(console, outcome)
    return outcome.exit_code


def print_summary(console: "Console", outcome: "SweepOutcome") -> None:
    """Counts, the failed cells with their errors, and what to do next."""
    from rich.markup import escape

    n = len(outcome.cells)
    finished = len(outcome.keys("finished"))
    failed = outcome.keys("failed")
    interrupted = outcome.keys("interrupted")
    busy = outcome.keys("busy")
    console.print(
        f"\n[bold]{finished}/{n} cells finished[/]"
        + (f", [bold red]{len(failed)} failed[/]" if failed else "")
        + (f", {len(interrupted)} interrupted" if interrupted else "")
        + (f", {len(busy)} running elsewhere" if busy else "")
        + f" ({outcome.wall_s:.0f}s) in {escape(str(outcome.sweep_dir))}"
    )
    for key in failed:
        msg = outcome.results[key].message if key in outcome.results else ""
        console.print(f"  [red]failed[/] {escape(key)}: {escape(msg)}")
        console.print(f"         see {outcome.sweep_dir / 'runs' / key / 'error.txt'}", markup=False)
    if busy:
        console.print("  cells running elsewhere are locked by another `offrl sweep` on this directory.")
    if failed or interrupted:
        console.print("Rerun the same command to retry failed cells and resume interrupted ones.")
    if finished:
        console.print(f"Report: offrl report {outcome.sweep_dir} --out {outcome.sweep_dir / 'report'}", markup=False)
