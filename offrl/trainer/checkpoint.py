"""Checkpoints: one per seed's run directory, written atomically, the previous one kept, read back as data.

A checkpoint holds one seed's whole training state (weights, targets, EMA,
optimiser moments, LR-schedule counts, its generator, metric sums, best/last
evaluation) without the seed axis, so the checkpoint of a seed trained in a
group is the same file a solo run of that seed writes: either can continue it.

Saving a group of seeds writes every seed's file to a unique temporary name
first (fsynced), then, per seed, hard-links the current checkpoint to
``checkpoint.prev.pt`` and renames the new one into place. A kill at any
moment therefore leaves every seed with a readable checkpoint at the new or the
previous step, and :func:`load_group` finds the latest step all seeds share.
The file is serialised in memory and written with plain ``write`` calls, so a
full disk is an ``OSError`` naming the cause (never a failure inside torch's
zip writer), and the previous checkpoint stays intact.

**Loaded as data.** A checkpoint holds only tensors, numbers, strings, lists
and dicts (:func:`plain` enforces it when saving) and is read with
``torch.load(weights_only=True)``: a file that needs anything else to unpickle
— a tampered checkpoint whose pickle would run code — is refused, never
executed. **Checked on load** (:func:`problem`, :func:`mismatch`): the layout
(step a whole number in [1, trainer.steps], every part of the state present
with the shapes this run's networks have) and what the checkpoint belongs to
(:func:`belongs`: the seed, a fingerprint of the configuration, the critic,
actor, dataset and dimensions). A checkpoint that fails is not used: the
previous one is, with a warning naming the reason, or the resume is refused
with one message.
"""
from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from offrl import rundir
from offrl.errors import RunDirError

#: Version of the checkpoint layout; 2 = the shared learner's per-seed state; 3 = and what it belongs to, with
#: flat-buffer random draws (generator states with their device type).
FORMAT = 3
#: Layouts this offrl continues (2: without ``belongs``; its seed, step and shapes are still checked; its random
#: streams continue with this offrl's flat-buffer draws, so the continuation is not the exact one).
READABLE = (2, 3)
#: The parts of :meth:`offrl.learner.Learner.member_state` whose structure and shapes must match this run's.
SHAPED = ("state", "optimizers", "update_counts")


# ---------------------------------------------------------------- what a checkpoint belongs to


def belongs(cfg: Any, seed: int, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """What a checkpoint (or policy file) of seed ``seed`` of ``cfg`` records about the run it belongs to."""
    from offrl.config import fingerprint

    return {"seed": int(seed), "config_sha256": fingerprint(cfg), "critic": cfg.critic, "actor": cfg.actor,
            "dataset": cfg.data.dataset, "obs_dim": int(obs_dim), "act_dim": int(act_dim)}


def record(cfg: Any, seed: int, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """The keys a checkpoint stores besides the learner's state: ``belongs`` and the config it was trained with
    (for the message naming what differs when a checkpoint is used with another configuration)."""
    return {"belongs": belongs(cfg, seed, obs_dim, act_dim), "config": rundir.floats_as_text(cfg.comparable())}


@dataclass
class Expected:
    """What the checkpoints of the runs being resumed must be: one ``belongs`` per run, the run's length, and a
    learner member state with this run's structure and shapes."""

    belongs: list[dict[str, Any]]
    configs: list[dict[str, Any]]
    steps: int
    template: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, runs: Sequence[Any], obs_dim: int, act_dim: int, learner: Any) -> "Expected":
        """For the trainer's ``runs`` (each with ``cfg`` and ``seed``) on data of these dimensions."""
        return cls([belongs(r.cfg, r.seed, obs_dim, act_dim) for r in runs],
                   [rundir.floats_as_text(r.cfg.comparable()) for r in runs],
                   runs[0].cfg.trainer.steps + runs[0].cfg.online.steps, learner.member_state(0))


# ---------------------------------------------------------------- saving


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as plain data a ``weights_only`` load reads back: tensors, numbers, strings, lists, dicts.

    numpy scalars and arrays become numbers and tensors, tuples become lists; anything else is a bug of the
    caller (a TypeError here, before anything is written), never pickled as an object.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {_key(k, where): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: a {type(obj).__name__} is not plain data (tensors, numbers, strings, lists, dicts)")


def _key(k: Any, where: str) -> str | int:
    if isinstance(k, (str, int)) and not isinstance(k, bool):
        return k
    raise TypeError(f"{where}: key {k!r} is not a string or an integer")


def serialise(obj: Any) -> bytes:
    """``torch.save`` into memory: the bytes are then written with plain ``write`` calls."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _write_temp(state: dict[str, Any], path: Path) -> Path:
    data = serialise(plain(state))
    fd, tmp = rundir.make_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _commit(tmp: Path, path: Path) -> None:
    prev = path.with_name(rundir.PREV_CHECKPOINT)
    if path.exists():
        link = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:  # no hard links here: copy instead
            link.write_bytes(path.read_bytes())
        os.replace(link, prev)
    os.replace(tmp, path)


def save_group(states: list[tuple[Path, dict[str, Any]]]) -> None:
    """Write ``(run_dir, state)`` checkpoints of several seeds so a kill never loses a common step.

    Raises :class:`RunDirError` naming the file on a write error (a full disk included); earlier checkpoints
    stay intact and no temporary file is left.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for run_dir, state in states:
            path = Path(run_dir) / rundir.CHECKPOINT
            temps.append((_write_temp({"format": FORMAT, **state}, path), path))
        for tmp, path in temps:
            _commit(tmp, path)
    except OSError as e:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        for run_dir, _ in states:  # a link made before the failure
            for leftover in Path(run_dir).glob(f".{rundir.PREV_CHECKPOINT}.{os.getpid()}.tmp"):
                leftover.unlink(missing_ok=True)
        where = e.filename or (temps[-1][1] if temps else Path(states[0][0]) / rundir.CHECKPOINT)
        raise RunDirError(
            f"Could not write a checkpoint ({where}: {e.strerror or e}). The previous checkpoint is intact: "
            "free space or make the run directory writable again and continue with `offrl run --resume`."
        ) from None


# ---------------------------------------------------------------- loading


def read(path: Path, device: torch.device) -> dict[str, Any] | str:
    """The checkpoint at ``path`` loaded as data, or a string saying why it cannot be used ("missing")."""
    if not path.exists() and not path.is_symlink():
        return "missing"
    if path.is_symlink():
        return "a symbolic link (offrl does not follow links in a run directory)"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if holds_objects(e):
            return ("holds Python objects besides tensors and plain values; offrl loads checkpoints as data only "
                    "and never unpickles objects (a checkpoint of a much older offrl, or a tampered file)")
        return "unreadable (damaged, or not a checkpoint)"
    except Exception as e:  # zeroed, truncated, not a torch file
        return f"unreadable ({type(e).__name__}: {_first_line(e)})"
    if not isinstance(state, dict):
        return "not an offrl checkpoint"
    fmt = state.get("format", 1)
    if fmt not in READABLE:
        return (f"written by an earlier offrl (checkpoint format {fmt}, this offrl reads "
                f"format {', '.join(map(str, READABLE))}); such runs cannot be continued — start a new run")
    return problem(state) or state


def holds_objects(e: BaseException) -> bool:
    """Whether a ``weights_only`` load failed because the file names Python objects (not because it is damaged)."""
    return isinstance(e, pickle.UnpicklingError) and "global" in str(e).lower()


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else "no detail"


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def problem(state: dict[str, Any]) -> str | None:
    """Why a loaded checkpoint's layout is unusable (missing or mistyped parts), or ``None``."""
    if "step" not in state:
        return "damaged: it records no step"
    if not _whole(state["step"]) or state["step"] < 1:
        return f"damaged: its step {state['step']!r} is not a whole number >= 1"
    if not _whole(state.get("seed")):
        return f"damaged: its seed {state.get('seed')!r} is not an integer"
    elapsed = state.get("elapsed")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        return f"damaged: its elapsed time {elapsed!r} is not a number"
    for key in ("best", "last_eval"):
        if not isinstance(state.get(key), dict):
            return f"damaged: '{key}' is not a table"
    learner = state.get("learner")
    if not isinstance(learner, dict):
        return "damaged: it holds no learner state"
    for key in (*SHAPED, "metric_sums"):
        if not isinstance(learner.get(key), dict):
            return f"damaged: learner.{key} is missing"
    gen = learner.get("generator")
    if isinstance(gen, dict):  # format 3: {"device_type": "cpu" | "cuda", "state": uint8 tensor}
        if gen.get("device_type") not in ("cpu", "cuda"):
            return f"damaged: learner.generator.device_type is {gen.get('device_type')!r} (cpu or cuda)"
        gen = gen.get("state")
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8:
        return "damaged: learner.generator is not a generator state (a uint8 tensor)"
    if not _whole(learner.get("iterations")) or learner["iterations"] < 0:
        return "damaged: learner.iterations is not a whole number"
    if not all(isinstance(t, torch.Tensor) for t in learner["metric_sums"].values()):
        return "damaged: learner.metric_sums holds values that are not tensors"
    for key in ("metric_counts", "metric_owner"):
        if not isinstance(learner.get(key), dict):
            return f"damaged: learner.{key} is missing"
    return None


def mismatch(state: dict[str, Any], expected: Expected, index: int) -> str | None:
    """Why a well-formed checkpoint does not belong to run ``index`` of ``expected``, or ``None``."""
    want = expected.belongs[index]
    if state["seed"] != want["seed"]:
        return (f"written by seed {state['seed']}, but this run is seed {want['seed']} (a checkpoint copied from "
                "another run)")
    got = state.get("belongs")
    if isinstance(got, dict) and got.get("config_sha256") != want["config_sha256"]:
        from offrl.config import config_diff

        saved = state.get("config")  # the fingerprints differ: the keys tell whether only new defaults were added
        diff = config_diff(saved, expected.configs[index]) if isinstance(saved, dict) else ["it records no config"]
        if diff:
            return (f"written by a run with another configuration ({'; '.join(diff)}: checkpoint vs config.json); "
                    "config.json was changed after the checkpoint was written, or the checkpoint comes from another "
                    "run")
    if isinstance(got, dict):
        for key in ("critic", "actor", "dataset", "obs_dim", "act_dim"):
            if got.get(key) != want[key]:
                return f"written for {key} {got.get(key)!r}, but this run has {want[key]!r}"
    if state["step"] > expected.steps:
        return (f"at step {state['step']}, beyond this run's last step {expected.steps} (trainer.steps + "
                "online.steps)")
    if expected.template:
        return _shape_mismatch(state["learner"], expected.template)
    return None


def _shape_mismatch(got: Any, want: Any, where: str = "learner") -> str | None:
    """The first place the checkpoint's learner state differs in structure or shape from this run's networks."""
    if where == "learner":
        for key in SHAPED:
            found = _shape_mismatch(got[key], want[key], f"learner.{key}")
            if found:
                return found
        return None
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{where} is not a tensor"
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            return (f"{where} has shape {list(got.shape)} ({got.dtype}), this run's networks have "
                    f"{list(want.shape)} ({want.dtype}): a checkpoint of other network sizes")
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            missing = sorted(set(want) - set(got)) if isinstance(got, dict) else []
            extra = sorted(set(got) - set(want)) if isinstance(got, dict) else []
            return (f"{where} does not match this run's networks (missing {missing[:3]}, unexpected {extra[:3]}): "
                    "a checkpoint of another critic, actor or network layout")
        for k in want:
            found = _shape_mismatch(got[k], want[k], f"{where}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where} does not match this run's networks"
        for i, (g, w) in enumerate(zip(got, want)):
            found = _shape_mismatch(g, w, f"{where}[{i}]")
            if found:
                return found
    return None


def candidates(run_dir: Path, device: torch.device, expected: Expected | None = None,
               index: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """Usable checkpoints of ``run_dir`` (latest first) and the reasons the others are not usable."""
    good, problems = [], []
    for name in (rundir.CHECKPOINT, rundir.PREV_CHECKPOINT):
        path = Path(run_dir) / name
        state = read(path, device)
        if isinstance(state, dict) and expected is not None:
            state = mismatch(state, expected, index) or state
        if isinstance(state, dict):
            good.append(state)
        elif state != "missing":
            problems.append(f"{path}: {state}")
    return good, problems


def load_group(run_dirs: list[Path], device: torch.device, expected: Expected | None = None
               ) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The checkpoints of every run at the latest step they all have (``None``: start over — no run has one,
    or a kill interrupted the group's first save).

    Returns the states and notes on checkpoints that could not be used (damaged, foreign). Raises
    :class:`RunDirError` when some runs have a checkpoint and none is usable, or no common step exists.
    """
    found = [candidates(d, device, expected, i) for i, d in enumerate(run_dirs)]
    notes = [p for _, problems in found for p in problems]
    if all(not good for good, _ in found) or (notes and any(not good for good, _ in found)):
        if notes:
            raise RunDirError("No usable checkpoint to continue from: " + "; ".join(notes) +
                              ". Start a new run (--out elsewhere), or delete the run directory and start again.")
        return None, notes
    steps = [{int(s["step"]) for s in good} for good, _ in found]
    common = set.intersection(*steps)
    if not common and any(not s for s in steps):  # killed during the group's first save: start over
        return None, notes
    if not common:
        listing = ", ".join(f"{d}: {sorted(s) or 'none'}" for d, s in zip(run_dirs, steps))
        raise RunDirError(f"The seeds' checkpoints share no step ({listing}); they cannot continue together. "
                          "Resume each seed's directory on its own with `offrl run --resume DIR`.")
    step = max(common)
    return [next(s for s in good if int(s["step"]) == step) for good, _ in found], notes
