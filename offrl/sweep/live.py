"""The sweep's progress display: a live rich table on a terminal, one line per event otherwise.

The latest score of each cell is read from its ``eval.jsonl`` (the last
complete row), so the table shows what the runs themselves have logged, for
any backend, without the workers having to report scores. The score shown is
the run's primary score (:data:`offrl.rundir.PRIMARY_METRICS`): the success
rate (``85.0%``) where the evaluation reports one, else the normalised score,
else the raw return (``R 123``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from offrl.cli.terminal import plural
from offrl.rundir import primary_metric
from offrl.sweep.cells import Cell
from offrl.sweep.execute import CellResult
from offrl.sweep.layout import EVAL_LOG, SweepLayout, last_eval

#: Most rows the live table shows; past that, running and failed cells come first.
MAX_ROWS = 30
#: States whose message (the runner's error, the divergence) the table shows in its ``note`` column.
NOTED = ("failed", "diverged", "busy")

STYLES = {
    "finished": "green",
    "done earlier": "green",
    "skipped": "green",
    "running": "yellow",
    "queued": "dim",
    "pending": "dim",
    "failed": "bold red",
    "diverged": "red",
    "interrupted": "magenta",
    "busy": "cyan",
}


@dataclass
class _CellView:
    cell: Cell
    state: str
    started: float | None = None
    wall_s: float | None = None
    message: str = ""


class SweepView:
    """Tracks each cell's state (fed by the backend's events) and renders it."""

    def __init__(self, name: str, cells: Sequence[Cell], layout: SweepLayout, states: dict[str, str]) -> None:
        self.name = name
        self.layout = layout
        self.t0 = time.time()
        self._lock = threading.Lock()
        self._cells = {c.key: _CellView(c, states.get(c.key, "pending")) for c in cells}
        self._scores: dict[str, tuple[float, dict[str, Any] | None]] = {}

    # ------------------------------------------------------------ events
    def cell_queued(self, key: str) -> None:
        with self._lock:
            self._cells[key].state = "queued"

    def cell_started(self, key: str) -> None:
        with self._lock:
            self._cells[key].state = "running"
            self._cells[key].started = time.time()

    def cell_done(self, result: CellResult) -> None:
        with self._lock:
            view = self._cells[result.key]
            view.state = "done earlier" if result.state == "skipped" else result.state
            view.wall_s = result.wall_s
            view.message = result.message

    # ------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._cells)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for v in self._cells.values():
                state = self._effective_state(v)
                out[state] = out.get(state, 0) + 1
        return out

    def latest(self, key: str) -> dict[str, Any] | None:
        """The last eval row of a cell, cached on the file's modification time."""
        path = self.layout.run_dir(key) / EVAL_LOG
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self._scores.get(key)
        if cached is None or cached[0] != mtime:
            cached = (mtime, last_eval(path.parent))
            self._scores[key] = cached
        return cached[1]

    def _effective_state(self, view: _CellView) -> str:
        """'queued' cells whose run directory is being written are shown as running (Ray tells no start)."""
        if view.state == "queued":
            run_dir = self.layout.run_dir(view.cell.key)
            try:
                if (run_dir / "config.json").stat().st_mtime >= self.t0 - 1:
                    return "running"
            except OSError:
                pass
        return view.state

    # ------------------------------------------------------------ rendering
    def headline(self) -> str:
        counts = self.counts()
        done = counts.get("finished", 0) + counts.get("done earlier", 0)
        parts = [f"{done}/{len(self._cells)} done"]
        for state in ("running", "queued", "diverged", "failed", "interrupted", "busy"):
            if counts.get(state):
                parts.append(f"{counts[state]} {state}")
        return f"sweep '{self.name}': " + " · ".join(parts) + f"  ({time.time() - self.t0:.0f}s)"

    def table(self, max_rows: int | None = MAX_ROWS, only_unfinished: bool = False) -> Table:
        """One row per cell; a ``note`` column (the runner's error, the divergence) once a cell needs one."""
        table = Table(title=escape(self.headline()), title_justify="left", expand=False)
        with self._lock:
            views = [(self._effective_state(v), v) for v in self._cells.values()]
        show_grid = any(v.cell.overrides for _, v in views)
        show_note = any(v.message and s in NOTED for s, v in views)
        for col, justify in (
            ("critic", "left"), ("actor", "left"), ("dataset", "left"), ("seed", "right"),
            ("grid", "left"), ("state", "left"), ("step", "right"), ("score", "right"), ("wall", "right"),
            ("note", "left"),
        ):
            if (col != "grid" or show_grid) and (col != "note" or show_note):
                table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        order = {"running": 0, "failed": 1, "diverged": 2, "interrupted": 3, "busy": 4, "finished": 5}
        if only_unfinished:
            views = [(s, v) for s, v in views if s not in ("finished", "done earlier")]
        if max_rows is not None and len(views) > max_rows:
            views = sorted(views, key=lambda sv: order.get(sv[0], 6))[:max_rows]
        for state, v in views:
            row = self.latest(v.cell.key)
            step = "" if row is None else str(row.get("step", ""))
            names = [v.cell.critic, v.cell.actor, v.cell.dataset, str(v.cell.seed)]
            if show_grid:
                names.append(v.cell.variant)
            if v.wall_s is not None:
                wall = f"{v.wall_s:.0f}s"
            elif state == "running" and v.started is not None:
                wall = f"{time.time() - v.started:.0f}s"
            else:
                wall = ""
            cells: list[Any] = [*(escape(x) for x in names), Text(state, style=STYLES.get(state, "")), step,
                                score_text(row), wall]
            if show_note:
                cells.append(Text(v.message if state in NOTED else ""))
            table.add_row(*cells)
        hidden = len(self._cells) - len(views)
        if hidden > 0 and not only_unfinished:
            table.caption = f"… {plural(hidden, 'more cell')} not shown"
        return table

    def render(self) -> Group:
        return Group(self.table())

    def failures(self) -> list[tuple[Cell, str]]:
        with self._lock:
            return [(v.cell, v.message) for v in self._cells.values() if v.state in ("failed", "diverged")]


class LineReporter:
    """Event lines for non-terminal output (CI logs, files): one line per start and per end.

    The counter counts the sweep's ended cells, those of earlier invocations included (``already_ended``), so a
    rerun's ``[k/N]`` says how far the whole sweep is, not how far this invocation is."""

    def __init__(self, view: SweepView, console: Console, already_ended: int = 0) -> None:
        self.view = view
        self.console = console
        self.total = len(view)
        self.ended = already_ended

    def cell_queued(self, key: str) -> None:
        self.view.cell_queued(key)

    def cell_started(self, key: str) -> None:
        self.view.cell_started(key)
        self.console.print(f"started  {key}", highlight=False, markup=False)

    def cell_done(self, result: CellResult) -> None:
        self.view.cell_done(result)
        self.ended += 1
        score = score_text(self.view.latest(result.key)).plain
        wall = "" if result.wall_s is None else f" in {result.wall_s:.1f}s"
        extra = f"  score {score}" if score else ""
        msg = f"  ({result.message})" if result.state in ("failed", "diverged", "busy", "interrupted") else ""
        self.console.print(
            f"[{self.ended}/{self.total}] {result.state:<11} {result.key}{wall}{extra}{msg}",
            highlight=False,
            markup=False,
        )


def score_text(row: dict[str, Any] | None) -> Text:
    """The primary score of an eval row: ``85.0%`` (success rate), ``85.0`` (normalised) or ``R 123`` (return)."""
    metric = primary_metric([row]) if row is not None else None
    if metric is None or row is None:
        return Text("")
    value = float(row[metric])
    if metric == "success_rate_100":
        return Text(f"{value:.1f}%")
    if metric == "normalized_score_100":
        return Text(f"{value:.1f}")
    return Text(f"R {value:.3g}", style="dim")
