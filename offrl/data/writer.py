"""Compatibility re-export: dataset production moved to :mod:`offrl.datagen`.

Kept because code outside the data layer (tests' helpers, the sweep tests)
imports these names from here. New code imports from :mod:`offrl.datagen.writer`,
:mod:`offrl.datagen.builtins` and :mod:`offrl.data.store`. Nothing in
:mod:`offrl.data` imports this module, so loading never pulls in production code.
"""
from offrl.data.store import minari_root
from offrl.datagen.builtins import ensure_dataset
from offrl.datagen.writer import dataset_lock, episode_buffer, write_minari_dataset

__all__ = ["dataset_lock", "episode_buffer", "ensure_dataset", "minari_root", "write_minari_dataset"]
