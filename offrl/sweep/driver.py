"""Running a sweep: plan the cells, record the grid, hand the unfinished cells to a backend.

The driver owns no run state of its own: every decision (skip, resume, start)
is re-derived from the run directories each time, which is what makes a rerun
after a crash or a ``kill -9`` simply continue where the sweep stopped.
"""
from __future__ import annotations

import argparse
import os
import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, Sequence

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from offrl.cli import terminal
from offrl.cli.terminal import plural
from offrl.errors import ConfigError, OfflineRLError
from offrl.sweep.backend import Backend, make_backend
from offrl.sweep.cells import Cell, expand_cells
from offrl.sweep.execute import PYTHON, CellJob, CellResult
from offrl.sweep.layout import SweepLayout, disk_state, read_json, write_json_atomic
from offrl.sweep.live import LineReporter, SweepView
from offrl.sweep.spec import SweepSpec
from offrl.sweep.status import StatusFile

#: The command that runs one cell; ``{python}`` is the worker's own interpreter.
DEFAULT_RUNNER: tuple[str, ...] = (PYTHON, "-m", "offrl", "run")

#: Environment variables of the driver that every cell inherits explicitly (Ray workers
#: otherwise see the environment their raylet started with).
FORWARDED_ENV = ("MINARI_DATASETS_PATH", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")
#: Cell states that are final: a rerun leaves such cells alone.
ENDED = ("finished", "diverged")


@dataclass
class SweepOutcome:
    """What a sweep invocation did, and the state of every cell at its end."""

    sweep_dir: Path
    cells: list[Cell]
    states: dict[str, str]  # key -> finished | diverged | failed | interrupted | busy | pending
    results: dict[str, CellResult] = field(default_factory=dict)  # cells attempted this time
    wall_s: float = 0.0

    def keys(self, state: str) -> list[str]:
        return [c.key for c in self.cells if self.states.get(c.key) == state]

    @property
    def exit_code(self) -> int:
        """0 when every cell has ended (finished, or diverged: a result, which a rerun would not change);
        130 if the sweep was interrupted; 1 otherwise (failed, busy or unstarted cells)."""
        if all(s in ENDED for s in self.states.values()):
            return 0
        if any(r.state == "interrupted" for r in self.results.values()) and not self.keys("failed"):
            return 130
        return 1


# ---------------------------------------------------------------- planning


def cell_run_args(cell: Cell, spec: SweepSpec) -> tuple[list[str], list[str]]:
    """The ``offrl run`` arguments of a fresh cell: (what it is, the options it runs with).

    ``--out`` and the thread settings are left to :func:`build_job`, which runs exactly these;
    :func:`validate_spec` checks exactly these, so what is validated up front is what cells run.
    """
    what = ["--critic", cell.critic, "--actor", cell.actor, "--dataset", cell.dataset, "--seed", str(cell.seed)]
    return what, [*spec.run.argv(), *cell.set_args()]


def build_job(
    cell: Cell,
    layout: SweepLayout,
    spec: SweepSpec,
    threads: int,
    runner: Sequence[str] = DEFAULT_RUNNER,
) -> CellJob:
    """The fresh and resume commands of one cell, with its thread budget."""
    run_dir = layout.run_dir(cell.key)
    what, options = cell_run_args(cell, spec)
    fresh = [
        *runner,
        *what,
        "--out", str(run_dir),
        "--quiet",  # a progress bar only clutters the cell's log file
        *options,
    ]
    if not spec.run.sets_key("trainer.threads") and "trainer.threads" not in dict(cell.overrides):
        fresh += ["--set", f"trainer.threads={threads}"]
    # a cell is resumed with the plugins the user's own spec names (a run's config.json is never trusted for them)
    resume = [*runner, *(x for m in user_plugins(spec) for x in ("--plugin", m)), "--resume", str(run_dir), "--quiet"]
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
        "OFFRL_SWEEP_NAME": spec.name,  # the W&B group of the sweep's runs (trainer.wandb=true)
        # the runner (and its guard) import the same offrl as this driver, installed or not
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    for name in FORWARDED_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    return CellJob(
        key=cell.key,
        run_dir=str(run_dir),
        log_file=str(layout.log_file(cell.key)),
        lock_file=str(layout.lock_file(cell.key)),
        fresh_argv=tuple(fresh),
        resume_argv=tuple(resume),
        env=tuple(sorted(env.items())),
    )


def user_plugins(spec: SweepSpec) -> list[str]:
    """The plugins the sweep's spec asks for: its ``plugins`` and those of its ``config`` file."""
    found = list(spec.run.plugins)
    if spec.run.config:
        from offrl.config import load_config_file

        named = load_config_file(spec.run.config).get("plugins") or []
        found += [m for m in named if isinstance(m, str) and m not in found] if isinstance(named, list) else []
    return found


def seeds_per_process(spec: SweepSpec) -> int:
    """``--seeds-per-process``, else 1 on CPU and every seed of a cell on CUDA (where seeds batched on the
    learner's seed axis cost little more than one; on a CPU they cost what separate processes cost)."""
    if spec.backend.seeds_per_process is not None:
        return spec.backend.seeds_per_process
    device = spec.run.device or next((s.split("=", 1)[1] for s in spec.run.sets
                                      if s.split("=", 1)[0].strip() == "trainer.device"), "auto")
    if device.startswith("cuda"):
        return len(spec.seeds)
    if device == "auto":
        import torch

        return len(spec.seeds) if torch.cuda.is_available() else 1
    return 1


def build_jobs(cells: Sequence[Cell], initial: dict[str, str], layout: SweepLayout, spec: SweepSpec,
               threads: int, runner: Sequence[str] = DEFAULT_RUNNER) -> list[CellJob]:
    """One job per cell, or with ``seeds_per_process`` E > 1 one job per E seeds of a cell configuration
    that are in the same state (all to start, or all to resume)."""
    per = seeds_per_process(spec)
    if per <= 1:
        return [build_job(c, layout, spec, threads, runner) for c in cells]
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        fresh = initial.get(c.key, "pending") == "pending"
        groups.setdefault((c.critic, c.actor, c.dataset, c.overrides, fresh), []).append(c)
    jobs = []
    for members in groups.values():
        members.sort(key=lambda c: c.seed)
        for i in range(0, len(members), per):
            chunk = members[i:i + per]
            if len(chunk) == 1:
                jobs.append(build_job(chunk[0], layout, spec, threads, runner))
            else:
                jobs.append(build_group_job(chunk, layout, spec, threads, runner))
    return jobs


def build_group_job(cells: Sequence[Cell], layout: SweepLayout, spec: SweepSpec, threads: int,
                    runner: Sequence[str] = DEFAULT_RUNNER) -> CellJob:
    """A job training ``cells`` (seeds of one configuration) in one ``offrl run --seeds`` process."""
    members = [build_job(c, layout, spec, threads, runner) for c in cells]
    first = members[0]
    seed_arg = first.fresh_argv.index("--seed")
    out_arg = first.fresh_argv.index("--out")
    group_argv = [a for i, a in enumerate(first.fresh_argv) if i not in (seed_arg, seed_arg + 1, out_arg, out_arg + 1)]
    parts = cells[0].key.split("__")
    parts[3] = "seed{seed}"  # critic__actor__dataset__seed<S>[__grid]
    return replace(first, members=tuple(members), seeds=tuple(c.seed for c in cells),
                   group_argv=tuple(group_argv), out_template=str(layout.run_dir("__".join(parts))))


def record_spec(layout: SweepLayout, spec: SweepSpec, cells: Sequence[Cell]) -> None:
    """Write ``sweep.json``; refuse when the directory holds a sweep with other run options.

    Cells of earlier invocations are kept (a sweep may grow by seeds or grid
    values), so the report can name every run directory's grid values.
    """
    old = read_json(layout.spec_file)
    known: dict[str, dict] = {}
    if old is None and (layout.spec_file.exists() or layout.spec_file.is_symlink()):
        raise ConfigError(f"'{layout.spec_file}' is damaged (not a JSON object). The run directories hold every "
                          "result: delete the file (the sweep writes it again) or use another --out.")
    if old is not None:
        try:
            old_spec = SweepSpec.from_json(old["spec"])
            if not all(isinstance(c, dict) and isinstance(c.get("key"), str) for c in old.get("cells", [])):
                raise ValueError("its cells are not a list of tables")
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as e:
            raise ConfigError(f"'{layout.spec_file}' is damaged ({e}). The run directories hold every result: delete "
                              "the file (the sweep writes it again) or use another --out.") from None
        before, after = old_spec.identity()["run"], spec.identity()["run"]
        changed = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in after if before.get(k) != after.get(k)]
        if changed:
            raise ConfigError(
                f"Sweep directory '{layout.root}' holds a sweep with other run options ("
                + "; ".join(changed)
                + "). Cells of one sweep must share them: use a new output directory, or the original options."
            )
        known = {c["key"]: c for c in old.get("cells", [])}
    for cell in cells:
        known[cell.key] = cell.to_json()
    from offrl import __version__

    write_json_atomic(
        layout.spec_file,
        {
            "offrl_version": __version__,
            "created": (old or {}).get("created", time.time()),
            "updated": time.time(),
            "spec": spec.to_json(),
            "cells": [known[k] for k in sorted(known)],
        },
    )


def validate_spec(spec: SweepSpec, cells: Sequence[Cell] | None = None) -> dict[tuple, Any]:
    """Fail before anything runs if a cell's ``offrl run`` would reject its options: one error, not N failures.

    Returns each distinct cell configuration, ``(critic, actor, dataset, overrides)``, resolved (the cost
    estimate of ``--dry-run`` reads its steps and evaluation settings).

    Each distinct cell config (the seed aside) is resolved the way ``offrl run`` resolves it: its
    arguments (:func:`cell_run_args`) parsed by ``offrl run``'s own parser, turned into config
    layers by its ``build_layers`` and checked by :func:`offrl.config.resolve`. Unknown names and
    keys, unparsable values (``steps = "ten"``), out-of-range values (``steps = 0``) and malformed
    ``set`` items all surface here with the message ``offrl run`` would print.
    """
    from offrl.cli import run as run_cli
    from offrl.config import resolve

    parser = argparse.ArgumentParser(prog="offrl", add_help=False)
    sub = parser.add_subparsers(parser_class=_RaisingParser)
    run_cli.add_parser(sub)
    checked: dict[tuple, Any] = {}
    for cell in cells if cells is not None else expand_cells(spec):
        identity = (cell.critic, cell.actor, cell.dataset, cell.overrides)
        if identity in checked:
            continue
        try:
            what, options = cell_run_args(cell, spec)
            args = parser.parse_args(["run", *what, *options])
            checked[identity] = resolve(run_cli.build_layers(args))
        except OfflineRLError as e:
            where = f"{cell.pairing} on {cell.dataset}" + (f" [{cell.variant}]" if cell.variant else "")
            reason = str(e).rstrip()
            reason += "" if reason.endswith((".", "?", "!")) else "."
            raise ConfigError(
                f"offrl run would reject cell {where}: {reason} Nothing was started: fix the sweep's options and rerun."
            ) from None
    return checked


class _RaisingParser(argparse.ArgumentParser):
    """``offrl run``'s parser, raising a user error instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"offrl run would reject the sweep's run options: {message}")


# ---------------------------------------------------------------- display


def plan_lines(spec: SweepSpec, cells: Sequence[Cell], layout: SweepLayout) -> list[str]:
    """What ``--dry-run`` says above the grid: size, where, the options every cell shares."""
    run = " ".join(shlex.quote(a) for a in spec.run.argv()) or "(run defaults)"
    return [
        f"sweep '{spec.name}': {plural(len(cells), 'cell')} -> {layout.root}",
        f"shared options: {run}",
        f"cell directories: {layout.root / 'runs'}/<critic>__<actor>__<dataset>__seed<S>"
        + ("__<grid hash>" if spec.grid else ""),
    ]


def plan_table(spec: SweepSpec, cells: Sequence[Cell], layout: SweepLayout,
               estimates: dict[str, str] | None = None) -> Table:
    """The resolved grid as a table (``--dry-run``), with each cell's state on disk and its estimated time."""
    table = Table()
    cols = ["critic", "actor", "dataset", "seed"] + (["grid"] if spec.grid else []) + ["state"]
    cols += ["estimate"] if estimates is not None else []
    for col in cols:
        table.add_column(col, no_wrap=col != "grid", justify="right" if col == "estimate" else "left")
    for cell in cells:
        values = [cell.critic, cell.actor, cell.dataset, str(cell.seed)]
        values += [cell.variant] if spec.grid else []
        values.append(disk_state(layout.run_dir(cell.key)))
        values += [estimates.get(cell.key, "")] if estimates is not None else []
        table.add_row(*(escape(v) for v in values))
    return table


# ---------------------------------------------------------------- running


def run_sweep(
    spec: SweepSpec,
    sweep_dir: str | Path,
    *,
    runner: Sequence[str] = DEFAULT_RUNNER,
    backend: Backend | None = None,
    console: Console | None = None,
    live: bool | None = None,
) -> SweepOutcome:
    """Run every unfinished cell of ``spec`` under ``sweep_dir``; returns when all have ended.

    ``runner`` is the command prefix that runs one cell (``offrl run`` by
    default; tests inject a fake). ``live`` forces the live table on or off
    (default: on when the console is a terminal).
    """
    console = console or terminal.console()
    layout = SweepLayout(Path(sweep_dir))
    cells = expand_cells(spec)
    layout.check_confined([c.key for c in cells])
    try:
        layout.make_dirs()
        record_spec(layout, spec, cells)
    except OSError as e:
        raise ConfigError(f"Cannot write the sweep directory '{layout.root}' ({e.filename or layout.root}: "
                          f"{e.strerror or e}); nothing was started.") from None
    backend = backend or make_backend(spec.backend, layout.root)

    initial = {c.key: disk_state(layout.run_dir(c.key)) for c in cells}
    todo = [c for c in cells if initial[c.key] not in ENDED]
    status = StatusFile(layout.status_file)
    status.update({k: {"state": s} for k, s in initial.items()})
    view = SweepView(spec.name, cells, layout, {k: _earlier(s) for k, s in initial.items()})
    jobs = build_jobs(todo, initial, layout, spec, backend.threads_per_cell, runner)

    ended_before = [initial[c.key] for c in cells if initial[c.key] in ENDED]
    diverged_before = ended_before.count("diverged")
    console.print(
        f"sweep '{spec.name}': {plural(len(cells), 'cell')}, {len(ended_before) - diverged_before} already finished"
        + (f", {diverged_before} diverged earlier" if diverged_before else "")
        + f", {len(todo)} to run ({backend.describe()}"
        + (f", {plural(len(jobs), 'process', 'processes')} of up to {plural(seeds_per_process(spec), 'seed')}"
           if len(jobs) != len(todo) else "") + f") -> {layout.root}",
        highlight=False,
        markup=False,
    )
    t0 = time.time()
    lines = LineReporter(view, console, len(ended_before)) if not _use_live(console, live) else None
    listener = _Recorder(view, status, lines)
    results: list[CellResult] = []
    if jobs:
        if _use_live(console, live):
            with Live(get_renderable=view.render, console=console, refresh_per_second=2, transient=False):
                results = backend.run(jobs, listener)
        else:
            results = backend.run(jobs, listener)

    by_key = {r.key: r for r in results}
    states = {}
    for c in cells:
        if initial[c.key] in ENDED:
            states[c.key] = initial[c.key]
        elif c.key in by_key:
            states[c.key] = "finished" if by_key[c.key].state in ("finished", "skipped") else by_key[c.key].state
        else:
            states[c.key] = "pending"
    if status.error:
        console.print(f"warning: {status.error}", markup=False, highlight=False)
    return SweepOutcome(layout.root, cells, states, by_key, time.time() - t0)


def _earlier(state: str) -> str:
    """How a cell's state on disk is shown before this invocation touches it."""
    return {"finished": "done earlier", "diverged": "diverged"}.get(state, "pending")


def _use_live(console: Console, live: bool | None) -> bool:
    return console.is_terminal if live is None else live


class _Recorder:
    """Fans backend events out to the display and to ``status.json``."""

    def __init__(self, view: SweepView, status: StatusFile, lines: LineReporter | None) -> None:
        self.view, self.status, self.lines = view, status, lines

    def cell_queued(self, key: str) -> None:
        (self.lines or self.view).cell_queued(key)

    def cell_started(self, key: str) -> None:
        (self.lines or self.view).cell_started(key)
        self.status.update({key: {"state": "running", "started": time.time()}})

    def cell_done(self, result: CellResult) -> None:
        (self.lines or self.view).cell_done(result)
        entry = result.to_json()
        if result.state == "skipped":
            entry["state"] = "finished"
        self.status.update({result.key: entry})
