"""Metrics logging: JSONL files (pandas-readable), optional TensorBoard.

Training metrics are accumulated as tensors on the device and read once per
log interval (one host sync), never per step.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

TRAIN_LOG = "train.jsonl"
EVAL_LOG = "eval.jsonl"


class MetricAccumulator:
    """Sums of scalar tensors per name; :meth:`means` syncs once."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            if k in self.sums:
                self.sums[k] = self.sums[k] + v
                self.counts[k] += 1
            else:
                self.sums[k] = v.detach().clone()
                self.counts[k] = 1

    def means(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).tolist()
        out = {k: v / self.counts[k] for k, v in zip(keys, values)}
        self.sums.clear()
        self.counts.clear()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JsonlLog:
    """Append-only JSONL file; :meth:`truncate_after` drops rows newer than a checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        return rows

    def truncate_after(self, step: int) -> None:
        rows = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.path)


class TensorBoardLog:
    """Optional TensorBoard mirror of the JSONL logs."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from offrl.errors import ConfigError

            raise ConfigError("trainer.tensorboard=true needs tensorboard: `pip install 'offrl[tensorboard]'`.") from None
        self.writer = SummaryWriter(str(log_dir))

    def write(self, prefix: str, row: dict[str, Any], step: int) -> None:
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and v is not None:
                self.writer.add_scalar(f"{prefix}/{k}" if "/" not in k else k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
