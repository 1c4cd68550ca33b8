"""Write datasets in standard Minari format, atomically and once.

Several processes (sweep workers, parallel tests) may ask for the same
built-in dataset at the same moment, and a writer may be killed at any point.
:func:`write_minari_dataset` writes into a private temporary store beside the
real one and renames the finished directory into place, so a reader sees
either no dataset or a complete one -- never a half-written HDF5 file. With
``replace=True`` (``offrl data make --force``) the old dataset stays in place
until the new one is complete; only then are the two swapped (two renames; a
writer killed between them leaves the old dataset in its temporary directory,
and the next writer moves it back). Temporary directories carry their owner's
pid (:mod:`offrl.datagen.tempdirs`), so leftovers of dead writers are removed
by the next write.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from filelock import FileLock

from offrl.data.store import dataset_dir, datasets_root, minari_root
from offrl.datagen.tempdirs import clean_dead_temps, private_temp_dir
from offrl.errors import DatasetError

__all__ = ["dataset_lock", "episode_buffer", "write_minari_dataset", "clean_dead_writers", "minari_root"]

_REPLACED = "replaced"  # inside a writer's temporary directory: the old dataset during the swap
_REPLACING = "replacing.txt"  # ... and the id it belongs to


@contextlib.contextmanager
def dataset_lock(dataset_id: str, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive lock for creating ``dataset_id`` in the current store."""
    root = datasets_root()
    lock_dir = root / ".locks"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_dir / (dataset_id.replace("/", "__") + ".lock")), timeout=timeout)
        lock.acquire()
    except OSError as e:
        raise DatasetError(f"Cannot write to the dataset store {root} ({e.strerror or e}): datasets are made there; "
                           "make it writable, or point MINARI_DATASETS_PATH at a writable folder.") from None
    try:
        yield
    finally:
        lock.release()


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


def _restore_interrupted_swap(tmp: Path) -> None:
    """A writer died between moving the old dataset aside and moving the new one in: put the old one back."""
    marker = tmp / _REPLACING
    if not marker.is_file():
        return
    dataset_id = marker.read_text().strip()
    try:
        final = dataset_dir(dataset_id)
    except Exception:
        return
    old = tmp / _REPLACED / dataset_id
    if old.is_dir() and not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, final)


def clean_dead_writers(root: Path | None = None) -> list[Path]:
    """Remove temporary stores of dead writers (restoring a dataset caught mid-swap); return them."""
    return clean_dead_temps(root or datasets_root(), before_remove=_restore_interrupted_swap)


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
    replace: bool = False,
) -> Path:
    """Write ``episodes`` (Minari ``EpisodeBuffer`` s) as ``dataset_id``; return its directory.

    ``extra_metadata`` (JSON-serialisable) is stored in the dataset's metadata, e.g.
    ``{"offrl_recipe": {...}}``. An existing dataset (even a broken one) raises
    FileExistsError unless ``replace``, which swaps the new dataset in only once
    it is complete.
    """
    import minari

    final = dataset_dir(dataset_id)
    if final.exists() and not replace:
        raise FileExistsError(f"dataset {dataset_id} already exists at {final}")
    root = datasets_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_dead_writers(root)
        tmp_root = private_temp_dir(root, "write")
    except OSError as e:
        raise write_error(dataset_id, root, e, final.exists()) from None
    try:
        with _write_errors(dataset_id, root, final.exists()):
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
            if final.exists():  # replace: swap only now that the new dataset is complete
                (tmp_root / _REPLACING).write_text(dataset_id)
                aside = tmp_root / _REPLACED / dataset_id
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, aside)
            os.replace(tmp_root / dataset_id, final)
    finally:
        _restore_interrupted_swap(tmp_root)  # an exception between the two renames must not lose the old dataset
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def write_error(dataset_id: str, root: Path, e: BaseException, replacing: bool) -> DatasetError:
    """One message for a failed dataset write (a full disk, a read-only store), saying what is kept."""
    if isinstance(e, OSError):
        why = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    else:  # h5py reports write failures as RuntimeError, with the OS error inside the text
        text = str(e)
        start = text.find("error message = '")
        why = text[start + 17:text.find("'", start + 17)] if start >= 0 else text.splitlines()[0]
    kept = "The old dataset is kept." if replacing else "Nothing was left in the store."
    return DatasetError(f"Could not write dataset '{dataset_id}' into {root} ({why}). {kept} Free space (or make the "
                        "store writable) and run the command again.")


@contextlib.contextmanager
def _write_errors(dataset_id: str, root: Path, replacing: bool) -> Iterator[None]:
    """OS errors of writing a dataset (and h5py's RuntimeErrors that carry one) as one :func:`write_error`."""
    try:
        yield
    except OSError as e:
        raise write_error(dataset_id, root, e, replacing) from None
    except RuntimeError as e:
        if "write failed" not in str(e) and "errno" not in str(e):
            raise
        raise write_error(dataset_id, root, e, replacing) from None


def _copy_namespace_metadata(tmp_root: Path, root: Path, dataset_id: str) -> None:
    """Minari keeps a namespace_metadata.json per namespace level; create missing ones."""
    parts = dataset_id.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        rel = Path(*parts[:i]) / "namespace_metadata.json"
        if (tmp_root / rel).is_file() and not (root / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_root / rel, root / rel)
