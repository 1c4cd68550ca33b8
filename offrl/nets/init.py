"""Weight initialisation schemes for the critics' and actors' networks.

``default`` keeps PyTorch's (Kaiming-uniform weights and uniform biases, what
``nn.Linear`` does; :class:`~offrl.nets.EnsembleLinear` matches it per member).
``orthogonal`` is IQL's code (``ikostrikov/implicit_q_learning``, common.py
``default_init``): every dense kernel orthogonal with gain √2 — the output
layers of Q, V and the policy mean too — and zero biases (flax's default).
Parameters that are not dense layers (LayerNorm, learnable Fourier features,
log σ) keep their own initialisation.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from offrl.errors import unknown
from offrl.nets.ensemble import EnsembleLinear

INITS = ("default", "orthogonal")
#: IQL's gain for every dense layer.
ORTHOGONAL_GAIN = math.sqrt(2.0)


def check_init(scheme: str, key: str) -> None:
    """A clear error for an unknown scheme (``key``: the config key that holds it)."""
    if scheme not in INITS:
        raise unknown(f"initialisation ({key})", scheme, INITS)


@torch.no_grad()
def init_weights_(module: nn.Module, scheme: str, gain: float = ORTHOGONAL_GAIN) -> None:
    """Re-initialise every dense layer of ``module`` in place with ``scheme`` (``default``: leave as built).

    Call before any copy is taken (targets, EMA), so the copies start equal to the network.
    """
    check_init(scheme, "init")
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, EnsembleLinear):  # weights [K, in, out]: one orthogonal [out, in] matrix per member
            for w in m.weight:
                w.copy_(nn.init.orthogonal_(torch.empty(w.shape[1], w.shape[0]), gain).T)
            m.bias.zero_()


__all__ = ["INITS", "ORTHOGONAL_GAIN", "check_init", "init_weights_"]
