"""The progress display shared by the dataset recipes (on stderr, so stdout stays clean).

It shows elapsed time and, once a few items are done, the estimated time remaining.
"""
from __future__ import annotations

from typing import Any


def recipe_progress() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
