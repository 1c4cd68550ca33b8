"""Presets: a paper's full hyperparameter set as one named config layer.

``offrl run --preset NAME`` puts the preset between the defaults and the
config file / ``--set`` / explicit flags, so anything can be overridden.
"""
from offrl.presets.registry import PRESETS, Preset, register_preset

from offrl.presets import papers  # noqa: E402,F401  (registers the built-in presets)
from offrl.presets import finetune  # noqa: E402,F401  (offline-to-online presets, built on papers')
from offrl.presets import conservative  # noqa: E402,F401  (cql-locomotion, calql-finetune)
from offrl.presets import rlpd  # noqa: E402,F401  (rlpd: online with the offline data, from scratch)

__all__ = ["PRESETS", "Preset", "register_preset"]
