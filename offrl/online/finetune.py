"""``offrl finetune RUN_DIR --online-steps N --out NEW_DIR``: N environment steps more for a finished run.

The parent's run directory (or multi-seed group) is copied to ``NEW_DIR`` — config, observation statistics,
checkpoint, logs — its config gets the online keys, and the copy continues from the parent's checkpoint:

- a parent trained offline only: its state at the last offline step; the copy runs an online phase of N steps;
- a parent that already had an online phase of M steps (itself a fine-tuned run, or ``--online-steps M``): the
  state at the end of that phase — learner, replay of everything collected, environments, generators — and the
  copy *continues that phase* to M + N environment steps, so on CPU it equals one run of M + N online steps.

The parent is never written; ``online.json`` in each new seed directory names it (and its M).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from offrl import rundir
from offrl.errors import ConfigError, RunDirError
from offrl.online.phase import ONLINE_FILE, check_actor_lr

#: Not copied: a lock, a live summary, temporaries, mirrors of the parent's logs.
SKIP = (rundir.LOCK, rundir.SUMMARY, rundir.ERROR, ONLINE_FILE, ".*.tmp", "tensorboard", "wandb")


def prepare(parent: str | Path, out: str | Path, online: dict[str, Any]) -> Path:
    """Copy ``parent`` to ``out`` with ``online`` (``online.*`` values, ``steps`` among them) in its config."""
    from offrl.online.config import OnlineConfig
    from offrl.config import build_dataclass
    from offrl.trainer.api import resume_dirs

    parent, out = Path(parent), Path(out)
    steps = int(online.get("steps", 0))
    if steps <= 0:
        raise ConfigError(f"offrl finetune needs --online-steps N with N >= 1, got {steps}.")
    build_dataclass(OnlineConfig, online, "online", "online")  # bad values fail before anything is copied
    dirs, _group = resume_dirs(parent)
    for d in dirs:
        rundir.check_no_links(d)
        summary = rundir.read_summary(d) or {}
        if summary.get("status") != "finished":
            raise RunDirError(f"'{d}' is not a finished run (status: {summary.get('status', 'no summary')}); "
                              "finish it first (`offrl run --resume`), then fine-tune it.")
        if not (d / rundir.CHECKPOINT).is_file():
            raise RunDirError(f"'{d}' holds no checkpoint ({rundir.CHECKPOINT}) to fine-tune from.")
        actor = (rundir.read_json(d / rundir.CONFIG) or {}).get("actor") or {}
        check_actor_lr(str(actor.get("name", "")), bool(actor.get("cosine_decay", False)), steps)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"'{out}' already exists and is not empty; choose another --out.")
    if out.resolve() == parent.resolve():
        raise RunDirError("--out must be a new directory: the parent run is never written.")
    if out.exists():
        out.rmdir()
    try:
        shutil.copytree(parent, out, ignore=shutil.ignore_patterns(*SKIP))
    except OSError as e:
        raise RunDirError(f"Could not copy '{parent}' to '{out}' ({e.strerror or e}).") from None
    new_dirs, _ = resume_dirs(out)
    for old, new in zip(dirs, new_dirs):
        path = new / rundir.CONFIG
        cfg = json.loads(path.read_text())
        before = cfg.get("online") or {}
        done = int(before.get("steps") or 0)  # the parent's own online phase, which the copy continues
        cfg["online"] = {**before, **online, "steps": done + steps}
        rundir.write_json(path, cfg)
        rundir.write_json(new / ONLINE_FILE, {"parent": str(old.resolve()), "parent_env_steps": done})
    return out


def finetune(parent: str | Path, out: str | Path, online: dict[str, Any], show_progress: bool = False) -> Any:
    """A trainer running the online phase of ``parent`` in the new ``out`` (see the module docstring)."""
    from offrl.trainer.api import continue_runs

    return continue_runs([prepare(parent, out, online)], show_progress=show_progress)
