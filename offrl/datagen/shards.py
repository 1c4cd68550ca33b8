"""A directory of per-episode files, written atomically, so long generations resume where they stopped.

Generating OGBench-sized data takes tens of CPU-minutes per environment. Each
finished episode is saved as its own ``ep-<index>.npz`` (written to an
owner-tagged temporary file, then renamed), so after Ctrl-C, a kill or a
crash the next run sees exactly which episodes exist and makes only the
others. A ``manifest.json`` records what the episodes were made with; a
directory whose manifest differs is never mixed with a new request.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from offrl.datagen.tempdirs import clean_dead_temps, private_temp_file
from offrl.errors import OfflineRLError

_SHARD = re.compile(r"^ep-(\d{6,})\.npz$")
MANIFEST = "manifest.json"


class ShardStore:
    """Episodes ``0..n-1`` of one generation request, one file each."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self, manifest: dict[str, Any]) -> "ShardStore":
        """Create the directory (or check that its manifest matches) and remove dead writers' partial files."""
        manifest = json.loads(json.dumps(manifest))
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except ValueError:
                existing = None
            if existing != manifest:
                raise OfflineRLError(
                    f"{self.root} holds episodes made with different settings ({path}: {existing}, wanted "
                    f"{manifest}); delete that directory to regenerate them."
                )
        else:
            tmp = private_temp_file(self.root, "manifest", ".json")
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, path)
        clean_dead_temps(self.root)
        return self

    def path(self, index: int) -> Path:
        return self.root / f"ep-{index:06d}.npz"

    def done(self) -> set[int]:
        """Indices of the episodes saved so far."""
        return {int(m.group(1)) for p in self.root.iterdir() if (m := _SHARD.match(p.name))}

    def missing(self, count: int) -> list[int]:
        have = self.done()
        return [i for i in range(count) if i not in have]

    def write(self, index: int, arrays: dict[str, np.ndarray]) -> Path:
        """Save one episode atomically (a reader never sees a partial file)."""
        tmp = private_temp_file(self.root, "shard", ".npz")
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
            os.replace(tmp, self.path(index))
        finally:
            tmp.unlink(missing_ok=True)
        return self.path(index)

    def read(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.path(index)) as z:
            return {k: z[k] for k in z.files}

    def discard(self, index: int) -> None:
        """Remove an unreadable episode file so that it is made again."""
        self.path(index).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("ep-*.npz"))
