"""Optional mirrors of the JSONL logs (``train.jsonl``/``eval.jsonl``, see :mod:`offrl.rundir`): TensorBoard."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from offrl.errors import ConfigError


class TensorBoardLog:
    """TensorBoard mirror of one run's logs (``trainer.tensorboard=true``; needs ``offrl[tensorboard]``)."""

    def __init__(self, log_dir: Path) -> None:
        self.writer = make_summary_writer()(str(log_dir))

    def write(self, prefix: str, row: dict[str, Any], step: int) -> None:
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k if "/" in k else f"{prefix}/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_summary_writer() -> Any:
    """TensorBoard's SummaryWriter class, or a clear error naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("trainer.tensorboard=true needs tensorboard: `pip install 'offrl[tensorboard]'`.") from None
    return SummaryWriter
