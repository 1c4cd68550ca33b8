"""Gymnasium environments that ship with offrl (registered on import)."""
