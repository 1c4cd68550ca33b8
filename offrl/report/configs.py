"""Which runs may be pooled: a configuration hash per run, and the keys where runs of one row differ.

A row of a report (a pairing on a dataset) pools seeds; pooling is only honest
when the runs computed the same thing but for their seed. The configuration
hash is taken over the resolved ``config.json`` minus what does not change what
is computed: the seed, how the run executes (:data:`offrl.config.RUNTIME_KEYS`:
device, threads, compile, workers, …), how often it logs or checkpoints, and
offrl's version and plugins. Runs of one row with different hashes are split
into separate rows, labelled by the keys that differ (``trainer.steps=600``),
and the report says so: a 600-step and a 1000-step run never share a mean.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

from offrl.config import comparable_dict

#: Trainer keys that differ between seeds of one experiment, or only change how often files are written.
IGNORED_TRAINER_KEYS = ("seed", "log_every", "save_every")


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without runtime keys, the seed and the logging cadence (what the hash covers)."""
    d = comparable_dict(dict(config))
    trainer = d.get("trainer")
    if isinstance(trainer, dict):
        d["trainer"] = {k: v for k, v in trainer.items() if k not in IGNORED_TRAINER_KEYS}
    return d


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"trainer": {"steps": 600}}`` -> ``{"trainer.steps": 600}``."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def config_hash(config: dict[str, Any]) -> str:
    """Short hash of :func:`comparable_config` (12 hex digits: a label, not a security check)."""
    text = json.dumps(comparable_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def differing_keys(configs: Iterable[dict[str, Any]]) -> list[str]:
    """The flattened keys whose values are not the same in every config (sorted)."""
    flats = [flatten(comparable_config(c)) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]


def split_label(config: dict[str, Any], keys: list[str], limit: int = 3) -> str:
    """``trainer.steps=600,critic.tau=0.9``: how a split-off row is told apart (at most ``limit`` keys)."""
    flat = flatten(comparable_config(config))
    shown = ",".join(f"{k}={flat.get(k)}" for k in keys[:limit])
    return shown + (f",+{len(keys) - limit} keys" if len(keys) > limit else "")
