"""Network building blocks."""
from offrl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offrl.nets.init import INITS, init_weights_
from offrl.nets.mlp import ACTIVATIONS, LN_POSITIONS, MLP, check_ln_position, dropout, make_activation

__all__ = ["ACTIVATIONS", "INITS", "LN_POSITIONS", "EnsembleLinear", "EnsembleMLP", "MLP", "check_ln_position",
           "dropout", "init_weights_", "make_activation"]
