"""Weight initialisation schemes for the critics' and actors' networks.

- ``default`` keeps PyTorch's (Kaiming-uniform weights U(±1/√fan_in) and
  uniform biases, what ``nn.Linear`` does; :class:`~offrl.nets.EnsembleLinear`
  matches it per member).
- ``orthogonal`` is IQL's code (``ikostrikov/implicit_q_learning``, common.py
  ``default_init``): every dense kernel orthogonal with gain √2 — the output
  layers of Q, V and the policy mean too — and zero biases (flax's default).
- ``fql`` is FQL's code (``seohongpark/fql`` utils/networks.py): every dense
  kernel Glorot-uniform (``variance_scaling(1, 'fan_avg', 'uniform')``, bound
  √(6/(fan_in + fan_out))), zero biases; the mean head of a Gaussian or
  deterministic policy (its ``Actor``'s ``final_fc_init_scale = 0.01``) with
  variance scale 0.01, i.e. the Glorot bound × 0.1. Flow velocity fields and
  Q/V output layers keep scale 1 (its ``ActorVectorField`` and ``Value``).
- ``rebrac`` is ReBRAC's code (``tinkoff-ai/ReBRAC`` src/networks.py and
  src/nn.py): hidden kernels U(±1/√fan_in) (``pytorch_init``) with biases 0.1;
  output layers (kernel and bias) U(±3e-3) for critics and U(±1e-3) for
  actors.

Which layer is an output: the ``out`` layer of every :class:`~offrl.nets.MLP`
and :class:`~offrl.nets.EnsembleMLP`; every other dense layer is hidden. The
component says what its networks are (``role``): ``critic`` (Q, V),
``policy`` (a policy's mean head) or ``field`` (a velocity field or noise
predictor). Parameters that are not dense layers (LayerNorm, learnable Fourier
features, log σ) keep their own initialisation.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from offrl.errors import unknown
from offrl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offrl.nets.mlp import MLP

INITS = ("default", "orthogonal", "fql", "rebrac")
ROLES = ("critic", "policy", "field")
#: IQL's gain for every dense layer.
ORTHOGONAL_GAIN = math.sqrt(2.0)
#: FQL's Actor.final_fc_init_scale: the variance scale of a policy's mean head.
FQL_POLICY_HEAD_SCALE = 0.01
#: ReBRAC's hidden-layer bias and output-layer bounds (critic, actor).
REBRAC_BIAS = 0.1
REBRAC_CRITIC_OUT = 3e-3
REBRAC_ACTOR_OUT = 1e-3


def check_init(scheme: str, key: str) -> None:
    """A clear error for an unknown scheme (``key``: the config key that holds it)."""
    if scheme not in INITS:
        raise unknown(f"initialisation ({key})", scheme, INITS)


def _members(layer: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight as an [out, in] view, bias) per member of a dense layer, written in place."""
    if isinstance(layer, nn.Linear):
        return [(layer.weight, layer.bias)]
    return [(w.T, b) for w, b in zip(layer.weight, layer.bias)]  # EnsembleLinear: weights [K, in, out]


def _uniform_(t: torch.Tensor, bound: float) -> None:
    t.uniform_(-bound, bound)


def _scheme_fn(scheme: str, role: str, gain: float) -> Callable[[torch.Tensor, torch.Tensor | None, bool], None]:
    """fn(weight [out, in], bias, is_output) re-initialising one member of one dense layer in place."""
    def orthogonal(w: torch.Tensor, b: torch.Tensor | None, is_output: bool) -> None:
        w.copy_(nn.init.orthogonal_(torch.empty(w.shape), gain))
        if b is not None:
            b.zero_()

    def fql(w: torch.Tensor, b: torch.Tensor | None, is_output: bool) -> None:
        scale = FQL_POLICY_HEAD_SCALE if (is_output and role == "policy") else 1.0
        _uniform_(w, math.sqrt(3.0 * scale / ((w.shape[0] + w.shape[1]) / 2.0)))
        if b is not None:
            b.zero_()

    def rebrac(w: torch.Tensor, b: torch.Tensor | None, is_output: bool) -> None:
        if is_output:
            bound = REBRAC_CRITIC_OUT if role == "critic" else REBRAC_ACTOR_OUT
            _uniform_(w, bound)
            if b is not None:
                _uniform_(b, bound)
            return
        _uniform_(w, 1.0 / math.sqrt(w.shape[1]))
        if b is not None:
            b.fill_(REBRAC_BIAS)

    return {"orthogonal": orthogonal, "fql": fql, "rebrac": rebrac}[scheme]


@torch.no_grad()
def init_weights_(module: nn.Module, scheme: str, gain: float = ORTHOGONAL_GAIN, role: str = "critic") -> None:
    """Re-initialise every dense layer of ``module`` in place with ``scheme`` (``default``: leave as built);
    ``role`` (critic | policy | field) picks the output layers' scale for ``fql`` and ``rebrac``.

    Call before any copy is taken (targets, EMA), so the copies start equal to the network.
    """
    check_init(scheme, "init")
    if role not in ROLES:
        raise unknown("network role", role, ROLES)
    if scheme == "default":
        return
    fn = _scheme_fn(scheme, role, gain)
    outputs = {id(m.out) for m in module.modules() if isinstance(m, (MLP, EnsembleMLP))}
    for m in module.modules():
        if isinstance(m, (nn.Linear, EnsembleLinear)):
            for w, b in _members(m):
                fn(w, b, id(m) in outputs)


__all__ = ["INITS", "ORTHOGONAL_GAIN", "ROLES", "check_init", "init_weights_"]
