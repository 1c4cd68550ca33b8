"""Initialisation schemes (critic.init, actor.init): orthogonal dense layers with gain √2 and zero biases
(IQL's code), or PyTorch's default."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from offrl.actors import ACTORS
from offrl.critics import CRITICS
from offrl.errors import OfflineRLError
from offrl.nets import EnsembleLinear

GAIN2 = 2.0  # g² for g = √2


def _dense(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight as [out, in], bias) of every dense layer, one entry per ensemble member."""
    out = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            out.append((m.weight.detach(), m.bias.detach()))
        elif isinstance(m, EnsembleLinear):
            out += [(w.detach().T, b.detach()) for w, b in zip(m.weight, m.bias)]
    return out


def _is_scaled_orthogonal(w: torch.Tensor) -> bool:
    """W Wᵀ = g²I (rows orthogonal, out ≤ in) or WᵀW = g²I (columns orthogonal, out > in)."""
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return torch.allclose(gram, GAIN2 * torch.eye(gram.shape[0]), atol=1e-5)


@pytest.mark.parametrize("critic", ["expectile", "td3"])
def test_orthogonal_critic_init(critic: str) -> None:
    cls = CRITICS.get(critic)
    torch.manual_seed(0)
    c = cls(cls.Config(hidden_dims=(16, 8), init="orthogonal"), 5, 3)
    layers = _dense(c.q_net) + (_dense(c.v_net) if hasattr(c, "v_net") else [])
    assert len(layers) == 2 * 3 + (3 if hasattr(c, "v_net") else 0)  # twin Q, 3 layers each (+ V)
    for w, b in layers:
        assert _is_scaled_orthogonal(w) and torch.equal(b, torch.zeros_like(b))
    for p, q in zip(c.q_net.parameters(), c.q_target.parameters()):
        assert torch.equal(p, q), "the target starts as a copy of the initialised network"
    torch.manual_seed(0)
    plain = cls(cls.Config(hidden_dims=(16, 8)), 5, 3)
    assert not any(_is_scaled_orthogonal(w) for w, _ in _dense(plain.q_net))


@pytest.mark.parametrize("actor, cfg", [("gaussian-awr", {"hidden_dims": (16, 8)}), ("ddpg-bc", {"hidden_dims": (16,)}),
                                        ("edp", {"hidden": 16, "depth": 2}),
                                        ("diffusion-resample", {"hidden": 8, "depth": 1}),
                                        ("fql", {"hidden_dims": (16,)}), ("flow-resample", {"hidden_dims": (16,)})])
def test_orthogonal_actor_init(actor: str, cfg: dict) -> None:
    cls = ACTORS.get(actor)
    torch.manual_seed(0)
    a = cls(cls.Config(init="orthogonal", **cfg), 5, 3, 10)
    trained = a.model if hasattr(a, "model") else a
    layers = _dense(trained)
    assert layers
    for w, b in layers:
        assert _is_scaled_orthogonal(w) and torch.equal(b, torch.zeros_like(b))
    if hasattr(a, "ema"):
        for p, q in zip(a.model.parameters(), a.ema.module.parameters()):
            assert torch.equal(p, q), "the EMA starts as a copy of the initialised network"


def test_init_is_validated() -> None:
    with pytest.raises(OfflineRLError, match=r"critic\.init.*Valid choices: default, fql, orthogonal, rebrac"):
        CRITICS.get("expectile").Config(init="xavier")
    with pytest.raises(OfflineRLError, match=r"actor\.init.*Valid choices: default, fql, orthogonal, rebrac"):
        ACTORS.get("edp").Config(init="xavier")
