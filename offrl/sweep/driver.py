"""Running a sweep: plan the cells, record the grid, hand the unfinished cells to a backend.

The driver owns no run state of its own: every decision (skip, resume, start)
is re-derived from the run directories each time, which is what makes a rerun
after a crash or a ``kill -9`` simply continue where the sweep stopped.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from offrl.errors import ConfigError
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


@dataclass
class SweepOutcome:
    """What a sweep invocation did, and the state of every cell at its end."""

    sweep_dir: Path
    cells: list[Cell]
    states: dict[str, str]  # key -> finished | failed | interrupted | busy | pending
    results: dict[str, CellResult] = field(default_factory=dict)  # cells attempted this time
    wall_s: float = 0.0

    def keys(self, state: str) -> list[str]:
        return [c.key for c in self.cells if self.states.get(c.key) == state]

    @property
    def exit_code(self) -> int:
        """0 when every cell finished; 130 if the sweep was interrupted; 1 otherwise."""
        if all(s == "finished" for s in self.states.values()):
            return 0
        if any(r.state == "interrupted" for r in self.results.values()) and not self.keys("failed"):
            return 130
        return 1


# ---------------------------------------------------------------- planning


def build_job(
    cell: Cell,
    layout: SweepLayout,
    spec: SweepSpec,
    threads: int,
    runner: Sequence[str] = DEFAULT_RUNNER,
) -> CellJob:
    """The fresh and resume commands of one cell, with its thread budget."""
    run_dir = layout.run_dir(cell.key)
    fresh = [
        *runner,
        "--critic", cell.critic,
        "--actor", cell.actor,
        "--dataset", cell.dataset,
        "--seed", str(cell.seed),
        "--out", str(run_dir),
        "--quiet",  # a progress bar only clutters the cell's log file
        *spec.run.argv(),
        *cell.set_args(),
    ]
    if not spec.run.sets_key("trainer.threads") and "trainer.threads" not in dict(cell.overrides):
        fresh += ["--set", f"trainer.threads={threads}"]
    resume = [*runner, "--resume", str(run_dir), "--quiet"]
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
        # the runner imports the same offrl as this driver, installed or not
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


def record_spec(layout: SweepLayout, spec: SweepSpec, cells: Sequence[Cell]) -> None:
    """Write ``sweep.json``; refuse when the directory holds a sweep with other run options.

    Cells of earlier invocations are kept (a sweep may grow by seeds or grid
    values), so the report can name every run directory's grid values.
    """
    old = read_json(layout.spec_file)
    known: dict[str, dict] = {}
    if old is not None:
        old_spec = SweepSpec.from_json(old["spec"])
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


def validate_names(spec: SweepSpec) -> None:
    """Fail before starting anything if a critic, actor or preset name is unknown (one typo, not N failures)."""
    from offrl.actors import ACTORS
    from offrl.critics import CRITICS
    from offrl.presets import PRESETS

    for name in spec.critics:
        CRITICS.entry(name)
    for name in spec.actors:
        ACTORS.entry(name)
    if spec.run.preset is not None:
        PRESETS.entry(spec.run.preset)


# ---------------------------------------------------------------- display


def plan_table(spec: SweepSpec, cells: Sequence[Cell], layout: SweepLayout) -> Table:
    """The resolved grid as a table (``--dry-run``), with each cell's state on disk."""
    run = " ".join(spec.run.argv()) or "(run defaults)"
    table = Table(
        title=escape(f"sweep '{spec.name}': {len(cells)} cells -> {layout.root}\nshared: {run}"),
        title_justify="left",
    )
    cols = ["critic", "actor", "dataset", "seed"] + (["grid"] if spec.grid else []) + ["state"]
    for col in cols:
        table.add_column(col, no_wrap=col != "grid")
    for cell in cells:
        values = [cell.critic, cell.actor, cell.dataset, str(cell.seed)]
        values += [cell.variant] if spec.grid else []
        values.append(disk_state(layout.run_dir(cell.key)))
        table.add_row(*(escape(v) for v in values))
    table.caption = escape(f"cell directories: {layout.root / 'runs'}/<critic>__<actor>__<dataset>__seed<S>"
                           + ("__<grid hash>" if spec.grid else ""))
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
    console = console or Console(highlight=False, soft_wrap=True)
    layout = SweepLayout(Path(sweep_dir))
    cells = expand_cells(spec)
    layout.make_dirs()
    record_spec(layout, spec, cells)
    backend = backend or make_backend(spec.backend)

    initial = {c.key: disk_state(layout.run_dir(c.key)) for c in cells}
    todo = [c for c in cells if initial[c.key] != "finished"]
    status = StatusFile(layout.status_file)
    status.update({k: {"state": "finished" if s == "finished" else s} for k, s in initial.items()})
    view = SweepView(spec.name, cells, layout, {k: ("done earlier" if s == "finished" else "pending")
                                                 for k, s in initial.items()})
    jobs = [build_job(c, layout, spec, backend.threads_per_cell, runner) for c in todo]

    done_before = len(cells) - len(todo)
    console.print(
        f"sweep '{spec.name}': {len(cells)} cells, {done_before} already finished, "
        f"{len(todo)} to run ({backend.describe()}) -> {layout.root}",
        highlight=False,
        markup=False,
    )
    t0 = time.time()
    listener = _Recorder(view, status, LineReporter(view, console) if not _use_live(console, live) else None)
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
        if initial[c.key] == "finished":
            states[c.key] = "finished"
        elif c.key in by_key:
            states[c.key] = "finished" if by_key[c.key].state in ("finished", "skipped") else by_key[c.key].state
        else:
            states[c.key] = "pending"
    return SweepOutcome(layout.root, cells, states, by_key, time.time() - t0)


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
