"""Write datasets in standard Minari format, atomically and once.

Several processes (sweep workers, parallel tests) may ask for the same
built-in dataset at the same moment. :func:`write_minari_dataset` writes into
a private temporary store beside the real one and renames the finished
directory into place, under a file lock, so a reader sees either no dataset or
a complete one -- never a half-written HDF5 file.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from filelock import FileLock

from offrl.data.store import dataset_dir, datasets_root, is_local


@contextlib.contextmanager
def dataset_lock(dataset_id: str, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive lock for creating ``dataset_id`` in the current store."""
    root = datasets_root()
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / (dataset_id.replace("/", "__") + ".lock")), timeout=timeout):
        yield


@contextlib.contextmanager
def minari_root(path: str | Path) -> Iterator[None]:
    """Point ``MINARI_DATASETS_PATH`` at ``path`` for the duration of the block (Minari reads it per call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def episode_buffer(
    observations: Any,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
) -> Any:
    """A Minari EpisodeBuffer; ``observations`` has T+1 entries (array or dict of arrays)."""
    from minari.data_collector import EpisodeBuffer

    return EpisodeBuffer(
        observations=observations,
        actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terminations, dtype=bool),
        truncations=np.asarray(truncations, dtype=bool),
        infos={},
    )


def write_minari_dataset(
    dataset_id: str,
    episodes: Sequence[Any],
    *,
    env: Any = None,
    eval_env: Any = None,
    observation_space: Any = None,
    action_space: Any = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str = "offrl",
    description: str = "",
    author: str = "offrl",
    extra_metadata: dict[str, Any] | None = None,
    requirements: list[str] | None = None,
) -> Path:
    """Write ``episodes`` (Minari ``EpisodeBuffer`` s) as ``dataset_id``; return its directory.

    ``extra_metadata`` (JSON-serialisable) is stored in the dataset's metadata, e.g.
    ``{"offrl_recipe": {...}}``. Raises FileExistsError if the dataset already
    exists; callers that build on demand use :func:`ensure_dataset`.
    """
    import minari

    final = dataset_dir(dataset_id)
    if final.exists():
        raise FileExistsError(f"dataset {dataset_id} already exists at {final}")
    root = datasets_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".offrl-write-", dir=root))
    try:
        with minari_root(tmp_root), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = minari.create_dataset_from_buffers(
                dataset_id,
                list(episodes),
                env=env,
                eval_env=eval_env,
                observation_space=observation_space,
                action_space=action_space,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                algorithm_name=algorithm_name,
                author=author,
                author_email="offrl@users.noreply.invalid",
                code_permalink="https://pypi.org/project/offrl/",
                description=description or dataset_id,
                requirements=requirements,
            )
            if extra_metadata:
                ds.storage.update_metadata(json.loads(json.dumps(extra_metadata, default=str)))
        _copy_namespace_metadata(tmp_root, root, dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, final)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _copy_namespace_metadata(tmp_root: Path, root: Path, dataset_id: str) -> None:
    """Minari keeps a namespace_metadata.json per namespace level; create missing ones."""
    parts = dataset_id.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        rel = Path(*parts[:i]) / "namespace_metadata.json"
        if (tmp_root / rel).is_file() and not (root / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_root / rel, root / rel)


def ensure_dataset(dataset_id: str, **budget: Any) -> Path:
    """Make a built-in dataset if it is missing (once, under a lock); return its directory."""
    from offrl.data.builtin import BUILTIN_DATASETS

    if is_local(dataset_id):
        return dataset_dir(dataset_id)
    spec = BUILTIN_DATASETS.get(dataset_id)
    with dataset_lock(dataset_id):
        if not is_local(dataset_id):  # another process may have built it while we waited
            spec.make(dataset_id, **budget)
    return dataset_dir(dataset_id)
