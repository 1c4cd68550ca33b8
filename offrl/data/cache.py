"""A cache of flattened transition tables, so a dataset is read episode by episode once.

Minari reads one HDF5 group per episode: the 3,000 one-step episodes of the
bandit took 2–7 s to read on the development machines, most of a short run.
The flattened (not yet preprocessed) arrays are stored as ``.npz`` under
``OFFRL_CACHE_DIR`` (default ``~/.cache/offrl/datasets``), keyed by the
dataset's files (path, sizes, modification times) and a format version, so
any change to the dataset invalidates its entry. Writes are atomic (temp file
+ rename), so concurrent runs never read a partial file. ``OFFRL_DATASET_CACHE=0``
turns the cache off. The user's Minari store is never written to.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from offrl.data.transitions import TransitionArrays
from offrl.rundir import make_temp

CACHE_VERSION = 1


def cache_root() -> Path:
    env = os.environ.get("OFFRL_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "offrl" / "datasets"


def enabled() -> bool:
    return os.environ.get("OFFRL_DATASET_CACHE", "1").lower() not in ("0", "false", "no", "off")


def cache_key(data_dir: Path) -> str:
    """Hash of every file in the dataset's data directory (path, size, mtime) and the format version."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:{data_dir.resolve()}".encode())
    for p in sorted(data_dir.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(data_dir)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def cached(data_dir: Path, build: Callable[[], TransitionArrays]) -> TransitionArrays:
    """``build()``'s result, from the cache when the dataset is unchanged."""
    if not enabled():
        return build()
    path = cache_root() / f"{cache_key(data_dir)}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return TransitionArrays(**{f.name: z[f.name] for f in dataclasses.fields(TransitionArrays)})
        except (OSError, KeyError, ValueError):
            pass  # unreadable entry: rebuild it
    arrays = build()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = make_temp(path, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f_.name: getattr(arrays, f_.name) for f_ in dataclasses.fields(TransitionArrays)})
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache location only costs speed; a partial file is not left behind
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return arrays
