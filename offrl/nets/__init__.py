"""Network building blocks."""
from offrl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offrl.nets.init import INITS, init_weights_
from offrl.nets.mlp import ACTIVATIONS, MLP, dropout, make_activation

__all__ = ["ACTIVATIONS", "INITS", "EnsembleLinear", "EnsembleMLP", "MLP", "dropout", "init_weights_",
           "make_activation"]
