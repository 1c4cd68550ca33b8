"""Recipes that generate offrl's built-in datasets (one module per suite)."""
