"""``offrl sweep``: run a grid of offrl runs, crash-safe, locally, on Ray or on SLURM (see docs/benchmarks.md)."""
from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path

from typing import TYPE_CHECKING, Any

from offrl.sweep.spec import (
    BACKENDS, SLURM_EXECUTORS, SweepSpec, load_spec, parse_grid_flag, parse_names, parse_seeds,
)

if TYPE_CHECKING:
    from rich.console import Console

    from offrl.sweep.driver import SweepOutcome
    from offrl.sweep.layout import SweepLayout

# The driver (rich, filelock, the registries) is imported in run(): every `offrl`
# command builds this parser and must not pay for it.
DEFAULT_RUNNER_TEXT = "{python} -m offrl run"

DESCRIPTION = """\
Run a grid of offrl runs (critics x actors x datasets x seeds x hyperparameter lists), crash-safe, as local
processes, Ray tasks or SLURM jobs. Each cell is an ordinary offrl run in SWEEP_DIR/runs/<cell>.

Rerunning the same command skips finished and diverged cells, resumes interrupted ones and retries failed ones.
The run options are checked once, before anything starts, the way offrl run checks them. --dry-run prints the
grid and an estimate of its cost from measured rates.
"""

EPILOG = """\
examples:
  offrl sweep benchmarks/bandit.toml
  offrl sweep benchmarks/bandit.toml --dry-run
  offrl sweep --critics expectile,quantile --actors gaussian-awr,edp --seeds 0-4 --grid critic.tau=0.6,0.7,0.9 \\
      --steps 20000 --out runs/tau-sweep --workers 2
  offrl sweep benchmarks/locomotion.toml --backend ray --ray-address auto --gpus-per-cell 0.25
  offrl sweep benchmarks/locomotion.toml --backend slurm --slurm-partition gpu --gpus-per-cell 1 \\
      --slurm-time 8:00:00 --slurm-mem 16G --workers 64 --dry-run
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of runs (critics × actors × datasets × seeds), locally, on Ray or on SLURM",
        description=DESCRIPTION,
        epilog=EPILOG,
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
    run = p.add_argument_group("shared run options (forwarded to every offrl run)")
    run.add_argument("--steps", type=int, metavar="N", help="trainer iterations of every cell")
    run.add_argument("--eval-every", type=int, metavar="N", help="evaluate every N iterations")
    run.add_argument("--eval-episodes", type=int, metavar="N", help="episodes per evaluation")
    run.add_argument("--save-every", type=int, metavar="N", help="checkpoint every N iterations")
    run.add_argument("--preset", help="a paper's hyperparameter set (offrl list preset)")
    run.add_argument("--config", help="config file passed to every run")
    run.add_argument("--device", help="auto, cpu or cuda")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override; repeatable")
    run.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                     help="import MODULE in every run (your own critics/actors); repeatable")
    ex = p.add_argument_group("execution")
    ex.add_argument("--backend", choices=BACKENDS, help="where cells run (default: local)")
    ex.add_argument("--workers", type=int, metavar="K",
                    help="cells at once (default: one per core / cpus-per-cell; slurm: as the queue allows)")
    ex.add_argument("--cpus-per-cell", type=int, metavar="N",
                    help="CPU threads per cell (default: cores // workers; ray, slurm: 1)")
    ex.add_argument("--gpus-per-cell", type=float, metavar="F",
                    help="GPU share each Ray task requests (e.g. 0.25); slurm: whole GPUs per job")
    ex.add_argument("--ray-address", help="join this Ray cluster (e.g. 'auto'); default: start a private one")
    ex.add_argument("--seeds-per-process", type=int, metavar="E",
                    help="train up to E seeds of a cell configuration together in one process (default: 1 on CPU, "
                         "every seed on CUDA); each seed keeps its own cell and run directory")
    ex.add_argument("--dry-run", action="store_true",
                    help="print the resolved grid and its estimated cost (from measured rates), and exit")
    ex.add_argument("--no-live", action="store_true", help="print one line per event instead of a live table")
    ex.add_argument(
        "--runner", help=f"command that runs one cell (default: {DEFAULT_RUNNER_TEXT}); its options are "
        "not checked up front"
    )
    slurm = p.add_argument_group("slurm (--backend slurm; pip install 'offrl[slurm]')")
    slurm.add_argument("--slurm-partition", metavar="NAME", help="sbatch --partition")
    slurm.add_argument("--slurm-time", metavar="TIME",
                       help="time limit of each job: minutes, H:MM:SS or D-HH:MM:SS (default 4:00:00); a cell that "
                            "reaches it saves a checkpoint and its job is requeued")
    slurm.add_argument("--slurm-mem", metavar="SIZE", help="sbatch --mem, e.g. 16G")
    slurm.add_argument("--slurm-account", metavar="NAME", help="sbatch --account")
    slurm.add_argument("--slurm-qos", metavar="NAME", help="sbatch --qos")
    slurm.add_argument("--slurm-sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option without its dashes (constraint=a100, exclusive); repeatable")
    slurm.add_argument("--slurm-setup", action="append", default=[], metavar="COMMAND",
                       help="a shell line each job runs first (e.g. 'module load cuda'); repeatable")
    slurm.add_argument("--slurm-executor", choices=SLURM_EXECUTORS,
                       help="slurm (default): submit with sbatch; local: submitit's local executor, the same jobs "
                            "as processes on this machine")
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
        sets=_appended(spec.run.sets, args.set),
        plugins=_appended(spec.run.plugins, args.plugins),
        backend=args.backend,
        workers=args.workers,
        cpus_per_cell=args.cpus_per_cell,
        gpus_per_cell=args.gpus_per_cell,
        ray_address=args.ray_address,
        seeds_per_process=args.seeds_per_process,
        slurm_partition=args.slurm_partition,
        slurm_time=args.slurm_time,
        slurm_mem=args.slurm_mem,
        slurm_account=args.slurm_account,
        slurm_qos=args.slurm_qos,
        slurm_sbatch=_appended(spec.backend.slurm_sbatch, args.slurm_sbatch),
        slurm_setup=_appended(spec.backend.slurm_setup, args.slurm_setup),
        slurm_executor=args.slurm_executor,
    )
    if spec.out is None:
        spec = replace(spec, out=f"runs/{spec.name}")
    return spec


def run(args: argparse.Namespace) -> int:
    from offrl.cli.terminal import console as make_console
    from offrl.sweep.cells import expand_cells
    from offrl.sweep.driver import DEFAULT_RUNNER, run_sweep, validate_spec
    from offrl.sweep.layout import SweepLayout

    console = make_console()
    spec = resolve_spec(args)
    runner = tuple(shlex.split(args.runner)) if args.runner else DEFAULT_RUNNER
    cells = expand_cells(spec)
    configs = None
    if not args.runner:  # a custom runner's rules are unknown: only `offrl run`'s are checked
        configs = validate_spec(spec, cells)
    layout = SweepLayout(Path(spec.out))
    layout.check_confined([c.key for c in cells])
    if args.dry_run:
        print_plan(console, spec, cells, layout, configs)
        return 0
    outcome = run_sweep(spec, layout.root, runner=runner, console=console, live=False if args.no_live else None)
    print_summary(console, outcome)
    return outcome.exit_code


def print_plan(console: "Console", spec: SweepSpec, cells: list, layout: "SweepLayout",
               configs: dict | None) -> None:
    """``--dry-run``: the plan, the grid with each cell's state and estimated time, and the estimated cost."""
    from offrl.sweep.backend import make_backend
    from offrl.sweep.cost import estimate
    from offrl.sweep.driver import plan_lines, plan_table

    est = None
    if configs is not None:  # with a custom runner the cells' steps are its own business
        est = estimate(spec, cells, layout, configs, make_backend(spec.backend, layout.root))
    for line in plan_lines(spec, cells, layout):
        console.print(line, markup=False)
    console.print(plan_table(spec, cells, layout, {c.key: est.cell_text(c.key) for c in cells} if est else None))
    lines = est.lines() if est else ["estimated cost: unknown with a custom --runner (its cells' work is its own)"]
    for line in lines:
        console.print(line, markup=False, highlight=False)


def _appended(spec_values: Any, flag_values: Any) -> tuple | None:
    """A repeatable flag adds to the spec file's list (None: the flag was not given, the list stands)."""
    return tuple(spec_values) + tuple(flag_values) if flag_values else None


def print_summary(console: "Console", outcome: "SweepOutcome") -> None:
    """Counts, the failed and diverged cells with their messages, and what to do next.

    Messages, paths and commands are printed as plain, unwrapped lines: they stay copy-pasteable on a
    terminal of any width and in logs.
    """
    from offrl.cli.terminal import plural

    n = len(outcome.cells)
    finished = len(outcome.keys("finished"))
    diverged = outcome.keys("diverged")
    failed = outcome.keys("failed")
    interrupted = outcome.keys("interrupted")
    busy = outcome.keys("busy")
    counts = [f"{finished}/{plural(n, 'cell')} finished"]
    counts += [f"{len(diverged)} diverged"] if diverged else []
    counts += [f"{len(failed)} failed"] if failed else []
    counts += [f"{len(interrupted)} interrupted"] if interrupted else []
    counts += [f"{len(busy)} running elsewhere"] if busy else []
    console.print()
    console.print(f"{', '.join(counts)} ({outcome.wall_s:.0f}s) in {outcome.sweep_dir}", markup=False)
    for key in diverged:
        result = outcome.results.get(key)
        console.print(f"  diverged {key}" + (f": {result.message}" if result and result.message else ""),
                      markup=False)
    for key in failed:
        result = outcome.results.get(key)
        code = f" (exit {result.returncode})" if result and result.returncode is not None else ""
        console.print(f"  failed {key}{code}: {result.message if result else ''}", markup=False)
        console.print(f"         details: {outcome.sweep_dir / 'runs' / key / 'error.txt'}", markup=False)
    if diverged:
        console.print("Diverged cells have ended: a rerun leaves them alone (delete a cell's directory to retry it).",
                      markup=False)
    if busy:
        console.print("Cells running elsewhere are held by another process (another offrl sweep on this directory, "
                      "or a runner of an earlier attempt still stopping); rerun once it has ended.", markup=False)
    if failed or interrupted:
        console.print("Rerun the same command to retry failed cells and resume interrupted ones.", markup=False)
    if finished:
        console.print(f"Report: offrl report {outcome.sweep_dir} --out {outcome.sweep_dir / 'report'}", markup=False)
