"""ε-prediction networks ε_θ(x_t, t, s): IDQL's LN-ResNet and EDP's MLP (docs/algorithms.md).

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
from typing import Any, Callable, Sequence

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


#: Time features: IDQL's learnable Fourier features, or EDP's fixed sinusoidal embedding.
TIME_EMBEDDINGS = ("fourier", "sinusoidal")


def make_time_mlp(kind: str, time_dim: int, dims: Sequence[int], act: Callable[[], nn.Module]) -> nn.Sequential:
    """features(t) of size ``time_dim`` → Linear(dims[0]) → act → … → Linear(dims[-1]), no final activation
    (jaxrl5's ``cond_model``; EDP's 16 → 32 → 16). Output size ``dims[-1]``."""
    if kind not in TIME_EMBEDDINGS:
        raise ConfigError(f"Unknown time embedding '{kind}'. Valid choices: {', '.join(TIME_EMBEDDINGS)}.")
    if not dims or any(int(d) < 1 for d in dims):
        raise ConfigError(f"The time MLP needs at least one positive width, got {list(dims)}.")
    features = LearnableFourierFeatures(time_dim) if kind == "fourier" else SinusoidalEmbedding(time_dim)
    layers: list[nn.Module] = [features]
    width = time_dim
    for i, d in enumerate(dims):
        layers += ([act()] if i else []) + [nn.Linear(width, int(d))]
        width = int(d)
    return nn.Sequential(*layers)


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
    act → Linear(A). Time embedding (:func:`make_time_mlp`): learnable Fourier
    features (``time_dim``) → Linear → act → Linear, as jaxrl5's
    ``cond_model`` (an MLP with hidden dims ``time_mlp``, no final activation).
    The defaults — Mish, ``time_dim`` 64, ``time_mlp`` (128, 128) — are those of
    a learner in IDQL's code that its training script does not use; the one it
    exports (``ddpm_iql_simple``) uses swish, ``time_dim`` 128 and a (256, 256)
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
        time_embedding: str = "fourier",
        time_dim: int = 64,
        time_mlp: Sequence[int] = (128, 128),
        act: Callable[[], nn.Module] = nn.Mish,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.obs_dim, self.act_dim, self.hidden, self.p = obs_dim, act_dim, hidden, dropout
        self.time_mlp = make_time_mlp(time_embedding, time_dim, time_mlp, act)
        self.inp = nn.Linear(act_dim + obs_dim + int(time_mlp[-1]), hidden)
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
    """EDP / Diffusion-QL's denoiser: concat[s, x_t, t-emb] → n_layers × (Linear, act) → Linear(A), act = Mish.

    Time embedding (:func:`make_time_mlp`): sinusoidal(time_dim) → Linear(2·time_dim) → act → Linear(time_dim),
    i.e. 16 → 32 → 16 by default (``time_mlp`` = (2·time_dim, time_dim)).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        n_layers: int = 3,
        time_embedding: str = "sinusoidal",
        time_dim: int = 16,
        time_mlp: Sequence[int] | None = None,
        act: Callable[[], nn.Module] = nn.Mish,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        time_mlp = (2 * time_dim, time_dim) if time_mlp is None else time_mlp
        self.time_mlp = make_time_mlp(time_embedding, time_dim, time_mlp, act)
        layers: list[nn.Module] = []
        width = obs_dim + act_dim + int(time_mlp[-1])
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
