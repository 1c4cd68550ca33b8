"""The training display: laid out for 80 columns, on three short lines.

::

    expectile + diffusion-resample · offrl/bandit/multimodal-v0 · seed 0
    ━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━  1,750/3,000  58%  210 it/s  0:08 < 0:06
    score 91.4 (best 93.0) · critic/q_loss 0.0123 actor/loss 0.341 · compile 14.2 s

The step count, rate and times sit on their own line, so losses and scores can
never push them out; the title and the info line are cut (…) rather than
wrapped. Compile and capture time is shown while it is spent, not hidden.
"""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.text import Text


class TrainingProgress:
    """Progress display; a no-op when disabled (tests, sweep workers, ``--quiet``)."""

    def __init__(self, total: int, completed: int, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self.total = total
        self._score = ""
        self._losses = ""
        self._status = ""
        self._t0 = time.perf_counter()
        self._done0 = completed
        if not enabled:
            return
        self.console = Console(stderr=True)
        self.title = Text(title, overflow="ellipsis", no_wrap=True, style="bold")
        self.progress = Progress(
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            console=self.console,
            expand=True,
        )
        self.task = self.progress.add_task("train", total=total, completed=completed, rate="")
        self.info = Text("", overflow="ellipsis", no_wrap=True)
        self.live = Live(Group(self.title, self.progress, self.info), console=self.console,
                         refresh_per_second=4, transient=False)

    def __enter__(self) -> "TrainingProgress":
        if self.enabled:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.live.stop()

    def advance(self, step: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._done0) / elapsed if elapsed > 0 else 0.0
        self.progress.update(self.task, completed=step, rate=f"{rate:,.0f} it/s" if rate else "")

    def metrics(self, row: dict[str, Any]) -> None:
        keys = [k for k in row if k.endswith("loss")][:3]
        self._losses = " ".join(f"{k} {row[k]:.3g}" for k in keys if row[k] is not None)
        self._show()

    def score(self, rows: list[dict[str, Any]], best: list[dict[str, Any]], key: str) -> None:
        """The latest and best score, averaged over the seeds that have one."""
        latest = [r[key] for r in rows if r.get(key) is not None]
        bests = [b[key] for b in best if b.get(key) is not None]
        if latest:
            label = {"success_rate_100": "success", "normalized_score_100": "score"}.get(key, "return")
            mean = sum(latest) / len(latest)
            top = sum(bests) / len(bests) if bests else mean
            seeds = f" over {len(latest)} seeds" if len(latest) > 1 else ""
            self._score = f"{label} {mean:.1f} (best {top:.1f}){seeds}"
        self._show()

    def note(self, text: str) -> None:
        """A message the user must see (a damaged checkpoint skipped, a stream re-derived, …): printed on
        stderr above the display, also when the display is off (``--quiet``, sweep workers)."""
        console = self.console if self.enabled else Console(stderr=True)
        console.print(Text(f"note: {text}", overflow="fold"))

    def status(self, text: str) -> None:
        """A transient note such as 'compiling…' or 'evaluating…' ('' clears it)."""
        self._status = text
        self._show()

    def _show(self) -> None:
        if self.enabled:
            parts = [p for p in (self._score, self._losses, self._status) if p]
            self.info.plain = " · ".join(parts)
