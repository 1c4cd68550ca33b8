"""Network building blocks."""
from offrl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offrl.nets.mlp import ACTIVATIONS, MLP, dropout, make_activation

__all__ = ["ACTIVATIONS", "EnsembleLinear", "EnsembleMLP", "MLP", "dropout", "make_activation"]
