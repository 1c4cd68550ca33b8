"""Dataset production: recipes, the Minari writer, progress, and the registry of built-in datasets.

:mod:`offrl.data` (loading) never imports this package at import time; only a
missing ``offrl/`` dataset makes loading consult :mod:`offrl.datagen.builtins`
(for the ``offrl data make`` command and its cost, or to make the bandit,
which takes seconds).
"""
