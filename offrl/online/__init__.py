"""The online phase: fine-tune a trained pairing in its environment (docs/online.md).

Kept import-light: :mod:`offrl.config` imports :mod:`offrl.online.config`, so this package imports nothing of the
trainer at import time (the phase lives in :mod:`offrl.online.phase`).
"""
from offrl.online.config import OnlineConfig

__all__ = ["OnlineConfig"]
