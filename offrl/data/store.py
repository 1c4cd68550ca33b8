"""Where Minari datasets live locally, and how a missing or broken one is reported.

Minari ids nest (``mujoco/hopper/medium-v0``, ``offrl/bandit/multimodal-v0``);
a dataset is ``<root>/<id>/data/{main_data.hdf5, metadata.json}`` under
``MINARI_DATASETS_PATH`` (else ``~/.minari/datasets``). Loading never touches
the network: a missing dataset is an immediate, explicit error that says how
to get it. Ids never resolve outside the store (no ``..``, no hidden or
absolute components).
"""
from __future__ import annotations

import contextlib
import os
import re
from enum import Enum
from pathlib import Path
from typing import Iterator

from offrl.errors import DatasetError, suggest

#: Ids in this namespace are offrl's built-in (generated, never downloaded) datasets.
BUILTIN_NAMESPACE = "offrl"

_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_ID = re.compile(r"[^/]+(/[^/]+)*-v\d+")


def datasets_root() -> Path:
    """The local Minari store, read at call time (tests and sweeps change it); one message when
    ``MINARI_DATASETS_PATH`` names something that is not a folder."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    root = Path(env) if env else Path.home() / ".minari" / "datasets"
    if root.exists() and not root.is_dir():
        raise DatasetError(f"The dataset store {'MINARI_DATASETS_PATH=' if env else ''}{root} is a file, not a folder: "
                           "point MINARI_DATASETS_PATH at a folder (it is created when needed), or unset it to use "
                           "~/.minari/datasets.")
    return root


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


def validate_id(dataset_id: str) -> None:
    """Minari ids end in ``-vN`` and name a directory inside the store.

    Every component starts with a letter, digit or underscore, so ``..``, ``.``,
    hidden directories (offrl's temporary writes) and absolute paths are rejected
    before any path is built from the id.
    """
    parts = (dataset_id or "").split("/")
    if not _ID.fullmatch(dataset_id or "") or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise DatasetError(
            f"'{dataset_id}' is not a Minari dataset id: ids look like 'namespace/env/name-vN' (letters, "
            "digits, '_', '-', '.'; no '..' or empty components), e.g. 'mujoco/hopper/medium-v0' or "
            "'offrl/bandit/multimodal-v0'."
        )


def dataset_dir(dataset_id: str) -> Path:
    """``<root>/<id>``; the id is validated, so the path is always inside the store."""
    validate_id(dataset_id)
    root = datasets_root()
    path = root / dataset_id
    if not path.resolve().is_relative_to(root.resolve()):  # a symlinked namespace pointing elsewhere
        raise DatasetError(f"Dataset id '{dataset_id}' resolves to {path.resolve()}, outside the store {root}.")
    return path


class DatasetState(Enum):
    """What the store holds for an id."""

    MISSING = "missing"  # no directory
    READY = "ready"  # data/metadata.json present (contents are checked when read)
    NO_METADATA = "no-metadata"  # the directory exists but data/metadata.json does not


def dataset_state(dataset_id: str) -> DatasetState:
    where = dataset_dir(dataset_id)
    if (where / "data" / "metadata.json").is_file():
        return DatasetState.READY
    if where.exists():
        return DatasetState.NO_METADATA
    return DatasetState.MISSING


def is_local(dataset_id: str) -> bool:
    """True when the dataset's metadata.json is in the store (a complete, if unchecked, dataset)."""
    return dataset_state(dataset_id) is DatasetState.READY


def local_dataset_ids() -> list[str]:
    """Every dataset id present in the local store (directories holding data/metadata.json).

    Hidden directories (offrl's temporary writes, ``.locks``) are skipped.
    """
    root = datasets_root()
    if not root.is_dir():
        return []
    ids = []
    for meta in root.rglob("data/metadata.json"):
        rel = meta.parent.parent.relative_to(root)
        if any(p.startswith(".") for p in rel.parts):
            continue
        ids.append(rel.as_posix())
    return sorted(ids)


def is_builtin_id(dataset_id: str) -> bool:
    """Ids in the ``offrl/`` namespace are reserved for offrl's built-in datasets."""
    return dataset_id.split("/", 1)[0] == BUILTIN_NAMESPACE


def repair_hint(dataset_id: str) -> str:
    """How to replace a broken dataset: regenerate a built-in, download anything else again."""
    if is_builtin_id(dataset_id):
        return f"Remake it with `offrl data make --force {dataset_id}`."
    return (
        f"Download it again with `offrl data download --force {dataset_id}`, or copy an intact "
        f"`{dataset_id}` directory into the store."
    )


def broken_dataset_error(dataset_id: str, problem: str) -> DatasetError:
    """The one error for a dataset that is in the store but unusable: which file, what is wrong, how to fix."""
    return DatasetError(f"Dataset '{dataset_id}' is broken: {problem} {repair_hint(dataset_id)}")


def no_metadata_error(dataset_id: str) -> DatasetError:
    where = dataset_dir(dataset_id)
    return broken_dataset_error(
        dataset_id,
        f"its directory {where} exists but {where / 'data' / 'metadata.json'} is missing "
        "(deleted, or an interrupted copy).",
    )


def missing_dataset_error(dataset_id: str) -> DatasetError:
    """The one error for a dataset that is not in the local store, saying how to get it.

    For ``offrl/`` ids this consults the recipe registry (cheap: registering the
    recipes imports no optional package) for the exact command and its cost, or
    the closest built-in id when the id is misspelled.
    """
    if dataset_state(dataset_id) is DatasetState.NO_METADATA:
        return no_metadata_error(dataset_id)
    where = dataset_dir(dataset_id)
    if is_builtin_id(dataset_id):
        from offrl.datagen.builtins import BUILTIN_DATASETS

        if dataset_id in BUILTIN_DATASETS:
            spec = BUILTIN_DATASETS.get(dataset_id)
            return DatasetError(
                f"Dataset '{dataset_id}' is not made yet ({where} does not exist). It is built in, but making "
                f"it takes {spec.cost}, so it is not made on the fly: run `{spec.make_command()}` first."
            )
        return DatasetError(
            f"Dataset '{dataset_id}' is not in the local Minari store ({where} does not exist), and it is not "
            f"an offrl built-in dataset either.{suggest(dataset_id, BUILTIN_DATASETS.names())} "
            "Built-in ids: `offrl data list`."
        )
    return DatasetError(
        f"Dataset '{dataset_id}' is not in the local Minari store ({where} does not exist). "
        f"Download it with `offrl data download {dataset_id}` (needs network access and "
        "`pip install 'offrl[hf]'`), or point MINARI_DATASETS_PATH at a store that holds it."
    )
