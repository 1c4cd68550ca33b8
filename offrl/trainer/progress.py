"""A rich progress bar with live losses and the latest score."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress:
    """Progress display; a no-op when disabled (tests, sweep workers)."""

    _EVERY = 25  # redraw at most every N iterations: drawing must not cost training time

    def __init__(self, total: int, completed: int, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self.info = {"loss": "", "score": ""}
        if not enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(title, total=total, completed=completed, info="", rate="")

    def __enter__(self) -> "TrainingProgress":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def advance(self, step: int) -> None:
        if self.enabled and (step % self._EVERY == 0):
            task = self.progress.tasks[0]
            rate = f"{task.speed:,.0f} it/s" if task.speed else ""
            self.progress.update(self.task, completed=step, rate=rate)

    def metrics(self, row: dict[str, Any]) -> None:
        keys = [k for k in row if k.endswith("loss")][:3]
        self.info["loss"] = " ".join(f"{k.split('/')[-1] if k.count('/') else k}={row[k]:.3g}" for k in keys)
        self._show()

    def score(self, row: dict[str, Any]) -> None:
        s = row.get("normalized_score_100")
        self.info["score"] = f"[green]score {s:.1f}[/]" if s is not None else f"[green]return {row['return_mean']:.3g}[/]"
        self._show()

    def _show(self) -> None:
        if self.enabled:
            self.progress.update(self.task, info=f"{self.info['loss']}  {self.info['score']}")
