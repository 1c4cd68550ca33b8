"""The training display: laid out for 80 columns, on three short lines.

::

    expectile + diffusion-resample · offrl/bandit/multimodal-v0 · seed 0
    ━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━  1,750/3,000  58%  210 it/s  0:08 < 0:06
    score 91.4 (best 93.0) · critic/q_loss 0.0123 actor/loss 0.341 · compile 14.2 s

The step count, rate and times sit on their own line, so losses and scores can
never push them out; the title and the info line are cut (…) rather than
wrapped. Compile and capture time is shown while it is spent, not hidden.

Without a terminal (nohup, SLURM, CI logs) there is no live display: one plain
line is printed every ``OFFRL_PROGRESS_EVERY`` seconds (default 30), on each
evaluation and at the end, never cut to a width and always ending in a newline::

    step 1,750/3,000 (58%) · 210 it/s · 0:08 elapsed · ETA 0:06 · score 91.4 (best 93.0) · compile 14.2 s
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.text import Text


#: Seconds between two plain progress lines without a terminal (``OFFRL_PROGRESS_EVERY`` overrides it).
HEADLESS_EVERY_S = 30.0


def headless_every() -> float:
    """The headless line interval, from ``OFFRL_PROGRESS_EVERY`` (seconds, > 0) or :data:`HEADLESS_EVERY_S`."""
    raw = os.environ.get("OFFRL_PROGRESS_EVERY", "")
    try:
        value = float(raw) if raw else HEADLESS_EVERY_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"OFFRL_PROGRESS_EVERY={raw!r}: expected a number of seconds > 0, e.g. 30")
    return value


def clock(seconds: float) -> str:
    """``0:08``, ``1:02:03``: elapsed and remaining times as rich shows them."""
    s = int(max(0.0, seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def announce(text: str, enabled: bool) -> None:
    """One line on stderr before the display starts (e.g. while the first iteration compiles)."""
    if enabled:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class TrainingProgress:
    """Progress display; a no-op when disabled (tests, sweep workers, ``--quiet``). Without a terminal
    (``headless``; detected unless given) it prints plain lines instead of a live display."""

    def __init__(self, total: int, completed: int, enabled: bool, title: str, headless: bool | None = None,
                 every_s: float | None = None, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self._score = ""
        self._losses = ""
        self._status = ""
        self._t0 = time.perf_counter()
        self._done0 = completed
        self._step = completed
        self._last_line = float("-inf")
        self._printed_step = -1
        if not enabled:
            self.headless = False
            return
        self.console = Console(stderr=True)
        self.headless = (not self.console.is_terminal) if headless is None else headless
        if self.headless:
            self.stream = stream if stream is not None else sys.stderr
            self.every_s = headless_every() if every_s is None else every_s
            self._write(title)
            return
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
        if self.enabled and not self.headless:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled and self.headless:
            if self._printed_step != self._step:
                self._line()
        elif self.enabled:
            self.live.stop()

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return (self._step - self._done0) / elapsed if elapsed > 0 else 0.0

    def advance(self, step: int) -> None:
        if not self.enabled:
            return
        self._step = step
        if self.headless:
            if time.perf_counter() - self._last_line >= self.every_s:
                self._line()
            return
        rate = self._rate()
        self.progress.update(self.task, completed=step, rate=f"{rate:,.0f} it/s" if rate else "")

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _line(self) -> None:
        """One plain headless line: step, rate, elapsed, ETA, the last score, losses and status."""
        rate = self._rate()
        elapsed = time.perf_counter() - self._t0
        pct = 100 * self._step / self.total if self.total else 100.0
        eta = clock((self.total - self._step) / rate) if rate > 0 else "?"
        parts = [f"step {self._step:,}/{self.total:,} ({pct:.0f}%)", f"{rate:,.0f} it/s" if rate else "",
                 f"{clock(elapsed)} elapsed", f"ETA {eta}", self._score, self._losses, self._status]
        self._write(" · ".join(p for p in parts if p))
        self._last_line = time.perf_counter()
        self._printed_step = self._step

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
            if self.enabled and self.headless:  # a line on each evaluation
                self._line()
        self._show()

    def note(self, text: str) -> None:
        """A message the user must see (a damaged checkpoint skipped, a stream re-derived, …): printed on
        stderr above the display, also when the display is off (``--quiet``, sweep workers)."""
        if self.enabled and self.headless:
            self._write(f"note: {text}")
            return
        console = self.console if self.enabled else Console(stderr=True)
        console.print(Text(f"note: {text}", overflow="fold"))

    def status(self, text: str) -> None:
        """A transient note such as 'compiling…' or 'evaluating…' ('' clears it). Headless, a compile or
        capture note is printed when it first appears or changes: the first minute must not look like a hang."""
        changed = text != self._status
        self._status = text
        if self.enabled and self.headless and changed and text and ("compil" in text or "captur" in text):
            self._write(text if text.endswith("…") else f"step {self._step:,}/{self.total:,} · {text}")
        self._show()

    def _show(self) -> None:
        if self.enabled and not self.headless:
            parts = [p for p in (self._score, self._losses, self._status) if p]
            self.info.plain = " · ".join(parts)
