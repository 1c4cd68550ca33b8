"""Network building blocks."""
from offrl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offrl.nets.mlp import MLP, make_activation

__all__ = ["EnsembleLinear", "EnsembleMLP", "MLP", "make_activation"]
