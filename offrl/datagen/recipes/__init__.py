"""Recipes that generate offrl's built-in datasets (one module per suite); registered in :mod:`offrl.datagen.builtins`."""
