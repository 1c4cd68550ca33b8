"""ε-prediction networks ε_θ(x_t, t, s) for diffusion actors (algorithms.md §3.2, §3.3).

Every denoiser has the signature ``forward(x_t [B, A], t [B], obs [B, O], noise=None) -> [B, A]``
where ``t`` is the 0-based step index (step t + 1 of the schedule) and ``noise``
holds the dropout uniforms declared by ``noise(batch_size)`` (training only;
without it no unit is dropped). ``t`` is
normally ``long``; fast solvers (``solvers.py``) evaluate the network between
trained steps and pass fractional float steps, which both time embeddings
accept (they only ever see ``t`` as a float).
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.errors import ConfigError, suggest
from offrl.nets.mlp import dropout as apply_dropout


class LearnableFourierFeatures(nn.Module):
    """IDQL's time features: [cos 2πtW, sin 2πtW] with W ~ N(0, 0.2²) learned.

    The raw step index (not t/T) goes in, as in jaxrl5's ``FourierFeatures``.
    """

    def __init__(self, out_dim: int = 64, std: float = 0.2) -> None:
        super().__init__()
        if out_dim % 2:
            raise ConfigError(f"Fourier feature size must be even, got {out_dim}.")
        self.weight = nn.Parameter(torch.randn(out_dim // 2, 1) * std)

    def forward(self, t: Tensor) -> Tensor:
        f = 2 * math.pi * t.to(self.weight.dtype).unsqueeze(-1) @ self.weight.T  # [B, out/2]
        return torch.cat([f.cos(), f.sin()], dim=-1)


class SinusoidalEmbedding(nn.Module):
    """Fixed transformer-style features [cos tω_k, sin tω_k], ω_k = 10000^(−k/half) (EDP)."""

    freqs: Tensor

    def __init__(self, dim: int = 16, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ConfigError(f"Sinusoidal embedding size must be even, got {dim}.")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        args = t.to(self.freqs.dtype).unsqueeze(-1) * self.freqs  # [B, half]
        return torch.cat([args.cos(), args.sin()], dim=-1)


class ResidualBlock(nn.Module):
    """x + Linear(act(Linear(LayerNorm(Dropout(x))))): jaxrl5's MLPResNetBlock, pre-norm.

    Dropout takes its mask from explicit uniforms ``u`` (see :func:`offrl.nets.dropout`).
    """

    def __init__(
        self, hidden: int, expansion: int, dropout: float, act: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.p = dropout
        self.body = nn.Sequential(
            nn.LayerNorm(hidden),
            nn.Linear(hidden, hidden * expansion),
            act(),
            nn.Linear(hidden * expansion, hidden),
        )

    def forward(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        return x + self.body(apply_dropout(x, u, self.p))


class LNResNetDenoiser(nn.Module):
    """IDQL's "LN_Resnet" score network.

    concat[x_t, s, time-emb] → Linear(hidden) → n_blocks × ResidualBlock →
    act → Linear(A). Time embedding: learnable Fourier features (``time_dim``)
    → Linear(time_hidden) → act → Linear(time_hidden), as jaxrl5's
    ``cond_model`` (an MLP with hidden dims (128, 128), no final activation).
    The activation defaults to Mish (IDQL's unused learner); the learner its
    released code exports uses swish with ``time_dim`` 128 and a (256, 256)
    time MLP (the ``idql-released`` preset).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        n_blocks: int = 3,
        expansion: int = 4,
        dropout: float = 0.1,
        time_dim: int = 64,
        time_hidden: int = 128,
        act: Callable[[], nn.Module] = nn.Mish,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.obs_dim, self.act_dim, self.hidden, self.p = obs_dim, act_dim, hidden, dropout
        self.time_mlp = nn.Sequential(
            LearnableFourierFeatures(time_dim),
            nn.Linear(time_dim, time_hidden),
            act(),
            nn.Linear(time_hidden, time_hidden),
        )
        self.inp = nn.Linear(act_dim + obs_dim + time_hidden, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, expansion, dropout, act) for _ in range(n_blocks))
        self.out = nn.Sequential(act(), nn.Linear(hidden, act_dim))

    def noise(self, batch_size: int) -> NoiseSpec:
        """Dropout uniforms, one [B, hidden] tensor per block (none when dropout is 0)."""
        if self.p <= 0:
            return {}
        return {f"dropout{i}": Noise.uniform(batch_size, self.hidden) for i in range(len(self.blocks))}

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor, noise: NoiseTensors | None = None) -> Tensor:
        h = self.inp(torch.cat([x_t, obs, self.time_mlp(t)], dim=-1))
        for i, block in enumerate(self.blocks):
            h = block(h, None if noise is None or self.p <= 0 else noise[f"dropout{i}"])
        return self.out(h)


class MLPDenoiser(nn.Module):
    """EDP / Diffusion-QL's denoiser: concat[s, x_t, t-emb] → n_layers × (Linear, Mish) → Linear(A).

    Time embedding: sinusoidal(time_dim) → Linear(2·time_dim) → Mish → Linear(time_dim),
    i.e. 16 → 32 → 16 by default.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        n_layers: int = 3,
        time_dim: int = 16,
        act: Callable[[], nn.Module] = nn.Mish,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(time_dim),
            nn.Linear(time_dim, 2 * time_dim),
            act(),
            nn.Linear(2 * time_dim, time_dim),
        )
        layers: list[nn.Module] = []
        width = obs_dim + act_dim + time_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), act()]
            width = hidden
        layers.append(nn.Linear(width, act_dim))
        self.net = nn.Sequential(*layers)

    def noise(self, batch_size: int) -> NoiseSpec:
        return {}  # no dropout

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor, noise: NoiseTensors | None = None) -> Tensor:
        return self.net(torch.cat([obs, x_t, self.time_mlp(t)], dim=-1))


DENOISERS: dict[str, type[nn.Module]] = {
    "ln-resnet": LNResNetDenoiser,
    "mlp": MLPDenoiser,
}


def make_denoiser(name: str, obs_dim: int, act_dim: int, **kwargs: Any) -> nn.Module:
    """The denoiser called ``name`` ('ln-resnet' or 'mlp'); ``kwargs`` go to its constructor."""
    if name not in DENOISERS:
        choices = sorted(DENOISERS)
        raise ConfigError(
            f"Unknown denoiser '{name}'.{suggest(str(name), choices)} "
            f"Valid choices: {', '.join(choices)}."
        )
    cls = DENOISERS[name]
    valid = [p for p in inspect.signature(cls).parameters if p not in ("obs_dim", "act_dim")]
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        raise ConfigError(
            f"Unknown option{'s' if len(bad) > 1 else ''} {', '.join(bad)} for denoiser '{name}'. "
            f"Valid options: {', '.join(valid)}."
        )
    return cls(obs_dim, act_dim, **kwargs)
