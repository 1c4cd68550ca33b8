"""``offrl data``: list, inspect, download or generate datasets (standard Minari format).

``offrl data list``                      built-in ids (present or not) and other local datasets
``offrl data info ID``                   episodes, spaces, returns, reference scores, recipe
``offrl data download ID``               Minari's remote download (fails fast offline)
``offrl data make ID [--seed S] [--quick] [--steps N | --episodes N | --sac-steps N] [--workers N] [--force]``
                                         generate a built-in dataset into the local store
``offrl data import FILE|DIR --id NAME/...-v0 [--env ENV_ID] [--ref-min X --ref-max Y] [--layout L] [--force]``
                                         your own arrays (D4RL or OGBench layout) as a local dataset

Output that is piped into a program that stops reading early (``| head``)
ends quietly instead of with a BrokenPipeError traceback.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from typing import Any, Callable

from offrl.errors import OfflineRLError

#: A budget flag may ask for at most this many times the recipe's default budget: more is a typo
#: (``--episodes 100000000000``) that would otherwise allocate until memory runs out.
MAX_BUDGET_FACTOR = 100

#: Budget flags of ``make``: (flag, recipe keyword, help).
BUDGET_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--episodes", "episodes", "number of episodes (bandit, OGBench)"),
    ("--steps", "steps", "transitions per dataset (PointMaze, locomotion)"),
    ("--sac-steps", "sac_steps", "online SAC training steps (locomotion)"),
    ("--eval-episodes", "eval_episodes", "episodes per reference score (PointMaze)"),
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "data",
        help="list, inspect, download or generate datasets",
        description="Datasets live in the local Minari store (MINARI_DATASETS_PATH, else "
        "~/.minari/datasets). Built-in ids (namespace offrl/) are generated locally; other "
        "Minari ids are downloaded.",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    q = dsub.add_parser("list", help="built-in datasets (and whether they are local) and other local datasets")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")

    q = dsub.add_parser("info", help="size, spaces, returns, reference scores and recipe of a local dataset")
    q.add_argument("dataset_id", metavar="ID")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")

    q = dsub.add_parser("download", help="download a Minari dataset (needs network and offrl[hf])")
    q.add_argument("dataset_id", metavar="ID")
    q.add_argument("--force", action="store_true", help="download again even if present locally")

    q = dsub.add_parser(
        "make",
        help="generate a built-in dataset",
        description="Generate a built-in dataset, deterministic for --seed. Budget flags override the "
        "recipe's default budget (see docs/datasets.md); --quick uses a tiny smoke-test budget. "
        "A locomotion id makes every missing dataset of its family from one SAC run.",
    )
    q.add_argument("dataset_id", metavar="ID")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--quick", action="store_true", help="tiny budget for smoke tests")
    q.add_argument("--force", action="store_true", help="replace the dataset if it is already present "
                   "(the old one stays until the new one is complete)")
    q.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel worker processes (recipes that support it, e.g. OGBench; default 1)")
    for flag, dest, help_ in BUDGET_FLAGS:
        q.add_argument(flag, dest=dest, type=int, default=None, metavar="N", help=help_)

    q = dsub.add_parser(
        "import",
        help="your own arrays (.npz, .hdf5, a folder; D4RL or OGBench layout) as a local dataset",
        description="Cut flat arrays into episodes and write them as a local Minari dataset that offrl run, "
        "data info and eval use like any other (docs/datasets.md, 'Your own data'). d4rl layout: terminals = true "
        "terminal states, timeouts = time-limit cuts; ogbench layout: terminals = trajectory ends, masks = 0 at "
        "terminal states.",
    )
    q.add_argument("source", metavar="FILE|DIR", help="a .npz or .hdf5/.h5 file, or a folder of .npy (one per key) "
                   "or of .npz files")
    q.add_argument("--id", dest="dataset_id", required=True, metavar="ID",
                   help="the new dataset's id, e.g. mine/robot/pick-v0 (not in the offrl/ namespace)")
    q.add_argument("--env", default=None, metavar="ENV_ID",
                   help="registered gymnasium environment the data comes from: its spec becomes the evaluation "
                        "environment and its action bounds the action space (spaces are checked)")
    q.add_argument("--ref-min", dest="ref_min", type=float, default=None, metavar="X",
                   help="return that scores 0 (e.g. a random policy's), for normalised scores")
    q.add_argument("--ref-max", dest="ref_max", type=float, default=None, metavar="Y",
                   help="return that scores 100 (e.g. an expert's)")
    q.add_argument("--layout", default="auto", help="auto | d4rl | ogbench (auto: ogbench when masks or valids "
                   "are present)")
    q.add_argument("--force", action="store_true", help="replace the dataset if it is already present")
    q.add_argument("--json", action="store_true", help="print the import summary as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    action: Callable[[argparse.Namespace], int] = {
        "list": _list, "info": _info, "download": _download, "make": _make, "import": _import
    }[args.data_command]
    try:
        return action(args)
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """stdout's reader closed early (``| head``): stop quietly, and keep Python's exit-time flush quiet too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _console() -> Any:
    """The commands' console (offrl.cli.terminal): no 80-column cut when piped, BrokenPipeError on ``| head``."""
    from offrl.cli.terminal import console

    return console()


def _list(args: argparse.Namespace) -> int:
    from offrl.data.info import list_datasets
    from offrl.data.store import datasets_root

    rows = list_datasets()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
        return 0
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"datasets (store: {datasets_root()})", title_justify="left")
    for col in ("id", "local", "episodes", "transitions", "description"):
        table.add_column(col, no_wrap=col == "id")
    for r in rows:
        desc = escape(r.description) + (f"  [extra: {r.extra}]" if r.extra and not r.local else "")
        if r.broken:
            desc = f"[red]broken: {escape(r.broken)}[/]"
        table.add_row(
            r.dataset_id if r.builtin else f"[cyan]{r.dataset_id}[/]",
            ("[red]broken[/]" if r.broken else "yes") if r.local else "-",
            f"{r.episodes:,}" if r.episodes is not None else "",
            f"{r.transitions:,}" if r.transitions is not None else "",
            desc,
        )
    _console().print(table)
    return 0


def _info(args: argparse.Namespace) -> int:
    from offrl.data.info import render_summary, summarize

    summary = summarize(args.dataset_id)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1))
    else:
        _console().print(render_summary(summary))
    return 0


def _download(args: argparse.Namespace) -> int:
    from offrl.data.download import download
    from offrl.data.info import render_summary, summarize
    from offrl.data.store import is_local

    console = _console()
    if is_local(args.dataset_id) and not args.force:
        console.print(f"'{args.dataset_id}' is already in the local store (use --force to download again).")
        return 0
    path = download(args.dataset_id, force=args.force, announce=console.print)
    console.print(f"Downloaded to {path}")
    console.print(render_summary(summarize(args.dataset_id)))
    return 0


def budget_for(spec: Any, quick: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    """The recipe's default (or quick) budget with the user's flags applied, checked against ``make``."""
    budget = dict(spec.quick_budget if quick else spec.default_budget)
    params = inspect.signature(spec.make).parameters
    accepted = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    given = {k: v for k, v in overrides.items() if v is not None}
    bad = [k for k in given if k not in accepted]
    if bad:
        flags = {dest: flag for flag, dest, _ in BUDGET_FLAGS}
        valid = [flags[d] for d in flags if d in accepted]
        raise OfflineRLError(
            f"'{spec.id}' has no budget option {', '.join(flags[k] for k in bad)}; "
            f"its options: {', '.join(valid) or '(none)'}."
        )
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        most = MAX_BUDGET_FACTOR * int(spec.default_budget.get(key, 0) or 0)
        if value < 1:
            raise OfflineRLError(f"{flag} must be positive (got {value}).")
        if most and value > most:
            raise OfflineRLError(f"{flag} {value:,} is more than {MAX_BUDGET_FACTOR}× the recipe's default budget "
                                 f"({spec.default_budget[key]:,}); '{spec.id}' accepts at most {most:,}.")
    budget.update(given)
    return budget


def workers_for(spec: Any, workers: int | None) -> dict[str, Any]:
    """``{"workers": N}`` for recipes whose ``make`` takes it; an error for the others."""
    if workers is None:
        return {}
    if workers < 1:
        raise OfflineRLError(f"--workers must be positive (got {workers}).")
    if "workers" not in inspect.signature(spec.make).parameters:
        raise OfflineRLError(f"'{spec.id}' is generated in one process; --workers applies to the OGBench recipes.")
    return {"workers": workers}


def _make(args: argparse.Namespace) -> int:
    from offrl.data.info import render_summary, summarize
    from offrl.data.store import DatasetState, dataset_dir, dataset_state, is_builtin_id, local_dataset_ids, validate_id
    from offrl.datagen.builtins import BUILTIN_DATASETS, check_requirements
    from offrl.datagen.writer import dataset_lock

    from offrl.validation import MAX_SEED

    validate_id(args.dataset_id)
    if not 0 <= args.seed <= MAX_SEED:
        raise OfflineRLError(f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}.")
    if not is_builtin_id(args.dataset_id):
        raise OfflineRLError(
            f"'{args.dataset_id}' is not a built-in dataset, so offrl cannot generate it: download it "
            f"with `offrl data download {args.dataset_id}`. Built-in ids: `offrl data list`."
        )
    spec = BUILTIN_DATASETS.get(args.dataset_id)  # unknown offrl/ ids: error with suggestions
    check_requirements(spec)
    budget = budget_for(spec, args.quick, {dest: getattr(args, dest) for _, dest, _ in BUDGET_FLAGS})
    options = workers_for(spec, args.workers)
    console = _console()
    with dataset_lock(args.dataset_id):
        state = dataset_state(args.dataset_id)
        if state is not DatasetState.MISSING and not args.force:
            what = "is already in the local store" if state is DatasetState.READY else (
                "exists but is broken (its data/metadata.json is missing)")
            raise OfflineRLError(
                f"'{args.dataset_id}' {what} ({dataset_dir(args.dataset_id)}); use --force to replace it."
            )
        before = set(local_dataset_ids())
        verb = "Replacing" if state is not DatasetState.MISSING else "Making"
        console.print(f"{verb} '{args.dataset_id}' (seed {args.seed}, budget {budget}; default budget takes {spec.cost}) ...")
        start = time.perf_counter()
        spec.make(args.dataset_id, seed=args.seed, replace=state is not DatasetState.MISSING, **budget, **options)
        seconds = time.perf_counter() - start
    also = sorted(set(local_dataset_ids()) - before - {args.dataset_id})
    console.print(f"Made '{args.dataset_id}' in {seconds:.1f} s" + (f"; also made {', '.join(also)}" if also else ""))
    console.print(render_summary(summarize(args.dataset_id)))
    return 0


def _import(args: argparse.Namespace) -> int:
    from offrl.datagen.importer import import_file

    summary = import_file(args.source, args.dataset_id, layout=args.layout, env=args.env, ref_min_score=args.ref_min,
                          ref_max_score=args.ref_max, replace=args.force)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    console = _console()
    notes = []
    if summary["dropped_transitions"]:
        notes.append(f"{summary['dropped_transitions']:,} transitions without a next state dropped")
    if summary["unmarked_cuts"]:
        notes.append(f"{summary['unmarked_cuts']:,} unmarked episode cuts (next_observations ≠ the next row) kept as "
                     "truncations")
    if summary["placeholder_next_observations"]:
        notes.append(f"{summary['placeholder_next_observations']:,} terminal transitions without next_observations "
                     "(never bootstrapped)")
    console.print(f"Imported {args.source} ({summary['layout']} layout) as '{args.dataset_id}': "
                  f"{summary['episodes']:,} episodes, {summary['transitions']:,} transitions, "
                  f"{summary['terminations']:,} terminations, {summary['truncations']:,} truncations"
                  + (f"; {'; '.join(notes)}" if notes else "") + f". Action bounds: {summary['action_bounds']}.",
                  markup=False, soft_wrap=True)
    if not summary["env"]:
        console.print("No environment recorded: runs train without evaluation unless given one "
                      f"(offrl run --dataset {args.dataset_id} --eval-env ENV_ID).", markup=False, soft_wrap=True)
    console.print(f"Train on it: offrl run --dataset {args.dataset_id}", markup=False, soft_wrap=True)
    return 0
