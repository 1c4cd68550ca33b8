"""Where Minari datasets live locally, and how a missing one is reported.

Minari ids nest (``mujoco/hopper/medium-v0``, ``offrl/bandit/multimodal-v0``);
a dataset is ``<root>/<id>/data/{main_data.hdf5, metadata.json}`` under
``MINARI_DATASETS_PATH`` (else ``~/.minari/datasets``). Loading never touches
the network: a missing dataset is an immediate, explicit error.
"""
from __future__ import annotations

import os
from pathlib import Path

from offrl.errors import DatasetError


def datasets_root() -> Path:
    """The local Minari store, read at call time (tests and sweeps change it)."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def dataset_dir(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def is_local(dataset_id: str) -> bool:
    return (dataset_dir(dataset_id) / "data" / "metadata.json").is_file()


def validate_id(dataset_id: str) -> None:
    """Minari ids end in ``-vN``; catching this early gives a clearer message than Minari's."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*-v\d+", dataset_id or ""):
        raise DatasetError(
            f"'{dataset_id}' is not a Minari dataset id: ids look like "
            "'namespace/env/name-vN', e.g. 'mujoco/hopper/medium-v0' or 'offrl/bandit/multimodal-v0'."
        )


def local_dataset_ids() -> list[str]:
    """Every dataset id present in the local store (directories holding data/metadata.json)."""
    root = datasets_root()
    if not root.is_dir():
        return []
    ids = []
    for meta in root.rglob("data/metadata.json"):
        ids.append(meta.parent.parent.relative_to(root).as_posix())
    return sorted(ids)


def missing_dataset_error(dataset_id: str) -> DatasetError:
    """The one error for a dataset that is not in the local store, saying how to get it."""
    from offrl.data.builtin import BUILTIN_DATASETS

    where = dataset_dir(dataset_id)
    if dataset_id in BUILTIN_DATASETS:
        how = f"It is built in: generate it with `offrl data make {dataset_id}`."
    else:
        how = (
            f"Download it with `minari download {dataset_id}` (needs network access and "
            "`pip install 'minari[hf]'`), or point MINARI_DATASETS_PATH at a store that holds it."
        )
    return DatasetError(
        f"Dataset '{dataset_id}' is not in the local Minari store ({where} does not exist). {how}"
    )
