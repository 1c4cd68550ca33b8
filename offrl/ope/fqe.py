"""Fitted Q evaluation (FQE; Le et al. 2019, as d3rlpy's ``FQE``) of a run's saved policy, with a bootstrap CI.

For logged data only (no simulator), FQE estimates the value of a fixed policy π
from the dataset: a fresh Q network is regressed on its own bootstrapped target

    Q(s, a) ← r + γ (1 − terminal) · Q̄(s', a'),   a' ~ π(s')

(Q̄: a Polyak-averaged copy), and the policy's value is the mean of
V(s₀) = E_{a ~ π(s₀)} Q(s₀, a) over the dataset's initial states (each
episode's first state). Truncations bootstrap; only terminations stop.

What is estimated: the **discounted** value with the run's critic discount γ
(``--gamma`` to change), on **raw** rewards (the environment's, not
``data.reward``'s preprocessing), so with γ = 1 — or one-step episodes, as the
bandit's — it is the expected return the environment would report.

The policy acts exactly as :func:`offrl.load_policy` does (its sampling
included): ``action_samples`` actions per next state and per initial state are
drawn once, before fitting.

Uncertainty: ``bootstrap`` = B extra Q networks are fitted beside the main one
(one batched ensemble, the same batches), each on a bootstrap resample of the
**episodes** (multinomial counts weighting its loss and its initial states).
The CI is the percentile interval of their B estimates; the point estimate is
the main network's, fitted on the data as it is.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from offrl.errors import ConfigError
from offrl.validation import COUNT, POSITIVE, RATE, UNIT, Range, check_config

SPLITS = ("all", "train", "heldout")


@dataclass
class FQEConfig:
    """FQE's settings (``offrl ope`` flags; ``eval.ope_*`` for the estimate at the end of training)."""

    steps: int = field(default=5_000, metadata={"help": "Gradient steps of the Q fit"})
    batch_size: int = field(default=256, metadata={"help": "Transitions per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    hidden: int = field(default=128, metadata={"help": "Width of the Q network's two hidden layers"})
    gamma: float = field(default=-1.0, metadata={"help": "Discount; < 0 = the run's critic discount (else 0.99)"})
    target_update_rate: float = field(default=0.005, metadata={"help": "Polyak rate of the target Q"})
    bootstrap: int = field(default=10, metadata={"help": "Bootstrap fits (episode resamples) for the CI; 0 = none"})
    action_samples: int = field(default=4, metadata={"help": "Policy actions drawn per state (1 for deterministic "
                                                             "actors)"})
    confidence: float = field(default=0.95, metadata={"help": "Level of the percentile CI"})
    seed: int = field(default=0, metadata={"help": "Seed of the fit, the resamples and the policy's draws"})

    RANGES: ClassVar[dict[str, Range]] = {
        "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "hidden": COUNT,
        "gamma": Range(-1.0, 1.0, label="in [0, 1] (or < 0: the run's discount)"),
        "target_update_rate": RATE, "bootstrap": Range(0, 1000), "action_samples": Range(1, 1000),
        "confidence": Range(0.0, 1.0, lo_open=True, hi_open=True), "seed": Range(0, 2**32 - 1),
    }

    def __post_init__(self) -> None:
        check_config(self, "ope")


class EnsembleQ(nn.Module):
    """M independent MLPs Q_m(s, a) evaluated in one batched call: inputs [M, B, D] -> [M, B]."""

    def __init__(self, members: int, in_dim: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        sizes = [in_dim, hidden, hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # PyTorch's Linear initialisation
            self.weights.append(nn.Parameter((torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)


def _policy_actions(policy: Any, obs: np.ndarray, samples: int, generator: torch.Generator,
                    chunk: int = 4096) -> np.ndarray:
    """[samples, N, A] unit actions of ``policy`` at raw observations ``obs`` (its own acting, chunked)."""
    out = np.empty((samples, len(obs), policy.act_dim), np.float32)
    for k in range(samples):
        for i in range(0, len(obs), chunk):
            out[k, i:i + chunk] = policy.act_unit(obs[i:i + chunk], generator=generator)
    return out


def _resampled_rows(counts: np.ndarray, starts: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, the row indices of its resampled episodes (an episode drawn c times appears c times), padded
    to one [M, L] table, and each member's length [M]."""
    ends = np.append(starts[1:], n)
    per_member = [np.concatenate([np.arange(starts[e], ends[e]) for e in np.repeat(np.arange(len(starts)), c)])
                  for c in counts]
    width = max(len(p) for p in per_member)
    table = np.zeros((len(counts), width), np.int64)
    for m, p in enumerate(per_member):
        table[m, :len(p)] = p
    return torch.as_tensor(table), torch.as_tensor([float(len(p)) for p in per_member])


@dataclass
class FQEResult:
    estimate: float  # mean initial-state value of the main fit
    ci: tuple[float, float] | None  # percentile CI of the bootstrap fits' estimates
    bootstrap_estimates: list[float]
    initial_states: int
    transitions: int
    episodes: int
    gamma: float
    td_loss: float  # the main fit's last TD loss (mean over the last 100 steps)
    seconds: float
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": list(self.ci) if self.ci else None,
                "bootstrap_estimates": self.bootstrap_estimates, "initial_states": self.initial_states,
                "transitions": self.transitions, "episodes": self.episodes, "gamma": self.gamma,
                "td_loss": self.td_loss, "seconds": round(self.seconds, 3), "settings": self.settings}


def fit_fqe(policy: Any, arrays: Any, cfg: FQEConfig, gamma: float, progress: Any = None) -> FQEResult:
    """FQE of ``policy`` on ``arrays`` (raw observations and rewards, unit actions; see the module docstring)."""
    t0 = time.perf_counter()
    n = len(arrays)
    if n == 0:
        raise ConfigError("FQE needs transitions; this split holds none.")
    starts = np.asarray(arrays.episode_starts, np.int64)
    episodes = len(starts)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    np_rng = np.random.default_rng(cfg.seed)

    obs_raw = np.asarray(arrays.observations, np.float64)
    next_raw = np.asarray(arrays.next_observations, np.float64)
    mean, std = obs_raw.mean(0), obs_raw.std(0) + 1e-3  # Q's input normalisation (fitting only)
    norm = lambda x: torch.as_tensor((x - mean) / std, dtype=torch.float32)  # noqa: E731
    samples = cfg.action_samples
    next_act = torch.as_tensor(_policy_actions(policy, next_raw, samples, gen))  # [K, N, A]
    init_obs = obs_raw[starts]
    init_act = torch.as_tensor(_policy_actions(policy, init_obs, samples, gen))  # [K, E0, A]

    s, s2 = norm(obs_raw), norm(next_raw)
    a = torch.as_tensor(np.asarray(arrays.actions, np.float32))
    r = torch.as_tensor(np.asarray(arrays.rewards, np.float32))
    done = torch.as_tensor(np.asarray(arrays.terminals, np.float32))
    members = 1 + cfg.bootstrap
    counts = np.ones((members, episodes), np.int64)
    for m in range(1, members):
        counts[m] = np_rng.multinomial(episodes, np.full(episodes, 1.0 / episodes))
    ep_weights = torch.as_tensor(counts, dtype=torch.float32)  # [M, E]
    table, lengths = _resampled_rows(counts, starts, n)  # each member's transitions (with repeats) [M, L]

    in_dim = s.shape[1] + a.shape[1]
    q = EnsembleQ(members, in_dim, cfg.hidden, gen)
    target = EnsembleQ(members, in_dim, cfg.hidden, gen)
    target.load_state_dict(q.state_dict())
    target.requires_grad_(False)
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    B = min(cfg.batch_size, n)
    losses: list[float] = []
    rows = torch.arange(members)[:, None]
    for step in range(cfg.steps):
        pos = (torch.rand(members, B, generator=gen) * lengths[:, None]).long()
        idx = table[rows, pos]  # [M, B]: member m's batch from its own resample of the episodes
        k = torch.randint(0, samples, (members, B), generator=gen)
        x = torch.cat([s[idx], a[idx]], -1)
        with torch.no_grad():
            y = r[idx] + gamma * (1.0 - done[idx]) * target(torch.cat([s2[idx], next_act[k, idx]], -1))  # [M, B]
        per_member = ((q(x) - y) ** 2).mean(1)
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(q.parameters(), target.parameters()):
                tp.lerp_(p, cfg.target_update_rate)
        if step >= cfg.steps - 100:
            losses.append(float(per_member[0].detach()))
        if progress is not None and (step + 1) % 500 == 0:
            progress(step + 1, cfg.steps)

    with torch.no_grad():
        e0 = len(starts)
        s0 = norm(init_obs)
        values = torch.stack([q(torch.cat([s0, init_act[j]], -1).expand(members, e0, in_dim))
                              for j in range(samples)]).mean(0)  # [M, E0]: V(s0) per member and initial state
        estimates = (values * ep_weights).sum(1) / ep_weights.sum(1)
    est = [float(v) for v in estimates]
    ci = None
    if cfg.bootstrap >= 2:
        tail = 100.0 * (1.0 - cfg.confidence) / 2.0
        lo, hi = np.percentile(est[1:], [tail, 100.0 - tail])
        ci = (float(lo), float(hi))
    settings = {k: getattr(cfg, k) for k in ("steps", "batch_size", "lr", "hidden", "target_update_rate",
                                              "bootstrap", "action_samples", "confidence", "seed")}
    return FQEResult(est[0], ci, est[1:], len(starts), n, episodes, gamma,
                     float(np.mean(losses)) if losses else float("nan"), time.perf_counter() - t0, settings)
