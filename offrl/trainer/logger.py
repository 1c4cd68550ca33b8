"""Optional mirrors of the JSONL logs (``train.jsonl``/``eval.jsonl``, see :mod:`offrl.rundir`): TensorBoard."""
from __future__ import annotations

import uuid
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


class WandbLog:
    """Weights & Biases mirror of one seed's logs (``trainer.wandb=true``; needs ``offrl[wandb]``).

    One W&B run per seed, its config the seed's resolved config, grouped by ``trainer.wandb_group`` (default:
    the sweep's name for sweep cells, the group directory for multi-seed runs). The W&B run id is kept in
    ``RUN_DIR/wandb.json`` so a resumed run continues the same W&B run. ``trainer.wandb_mode`` (or W&B's own
    ``WANDB_MODE``) selects online, offline (files under ``RUN_DIR/wandb``) or disabled.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], project: str, group: str, name: str, mode: str) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("trainer.wandb=true needs wandb: `pip install 'offrl[wandb]'`.") from None
        from offrl import rundir

        id_file = run_dir / "wandb.json"
        saved = rundir.read_json(id_file) or {}
        run_id = saved.get("id") or uuid.uuid4().hex[:12]
        if not saved:
            rundir.write_json(id_file, {"id": run_id, "project": project})
        try:
            self.run = wandb.init(project=project, group=group or None, name=name, id=run_id, resume="allow",
                                  dir=str(run_dir), config=config, mode=mode or None, reinit="create_new")
        except Exception as e:  # no network in online mode, bad credentials
            raise ConfigError(f"W&B could not start ({type(e).__name__}: {e}). Use trainer.wandb_mode=offline, "
                              "or log in with `wandb login`.") from None

    def write(self, prefix: str, row: dict[str, Any], step: int) -> None:
        values = {(k if "/" in k else f"{prefix}/{k}"): v for k, v in row.items()
                  if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def check_wandb() -> None:
    """Fail before anything is written if wandb is missing."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("trainer.wandb=true needs wandb: `pip install 'offrl[wandb]'`.") from None
