"""Selecting among N candidate actions per state with the critic.

Given states ``obs`` [B, O] and candidates [B, N, A], :func:`selection_probs`
returns a distribution [B, N] over each state's candidates for a named rule:

- ``argmax``   one-hot on Q(s, a_i) = min_j Q̄_j(s, a_i); ties go to the first
               candidate (IDQL's evaluation choice, SfBC);
- ``implicit`` ∝ w(s, a_i), the critic's implicit policy π_imp ∝ μ · w
               (IDQL's definition; the candidates are samples of μ);
- ``softmax``  ∝ exp(Q(s, a_i) / temperature) (EDP's energy-based selection).

Q is the target ensemble's minimum by default; ``q_agg`` chooses another
aggregation (``mean``, ``q1``, or ``random``: one member per state, drawn with
a uniform ``u`` [B] the caller declared, so a state's candidates are all
scored by the same member), see :func:`offrl.critics.base.aggregate_q`;
``q_source = "online"`` scores with the online ensemble instead of the
target one (IFQL's and EDP's code).

:func:`sample_candidates` draws one candidate per state from that
distribution, given one uniform per state (explicit noise, so a seed's choices
do not depend on other seeds trained beside it), and returns the actions [B, A].

Layouts. Candidates are either [B, N, A], or flattened [B·N, A] in the
``(b n) a`` order of einops (state b's candidates are rows b·N … b·N + N − 1,
what ``repeat(obs, "b o -> (b n) o", n=N)`` produces) together with
``num_candidates=N``. The output is [B, N] either way.

The implicit weights are normalised in log space (a softmax of log w over
the candidates), so the relative weights stay exact however large w gets.
A critic may provide ``implicit_log_weight_u(u)`` (the built-in quantile and
exponential critics do); otherwise log of ``implicit_weight_u(u)`` is used, or
for any other :class:`~offrl.critics.base.CriticView`, log of
``implicit_weight(obs, act)``.

Everything is batched (no Python loop over states or candidates), runs without
gradient, and has no host synchronisation.
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat

from offrl.component import Noise, NoiseSpec
from offrl.critics.base import q_for_actor, q_value
from offrl.errors import ConfigError, unknown

#: The selection rules, in the order the docs list them.
RULES = ("argmax", "implicit", "softmax")
#: Which Q networks score candidates: the Polyak targets or the online ensemble.
Q_SOURCES = ("target", "online")


def _check(rule: str, temperature: float, q_source: str = "target") -> None:
    if rule not in RULES:
        raise unknown("selection rule", rule, RULES)
    if q_source not in Q_SOURCES:
        raise unknown("Q source", q_source, Q_SOURCES)
    if not temperature > 0:
        raise ConfigError(f"selection temperature must be positive, got {temperature!r}")


def _as_bna(obs: torch.Tensor, candidates: torch.Tensor, num_candidates: int | None) -> torch.Tensor:
    """Candidates as [B, N, A] from either layout."""
    if candidates.dim() == 3:
        if num_candidates is not None and candidates.shape[1] != num_candidates:
            raise ValueError(f"candidates {tuple(candidates.shape)} do not hold num_candidates={num_candidates}")
        return candidates
    if candidates.dim() != 2 or num_candidates is None:
        raise ValueError(
            "candidates must be [B, N, A], or flattened [(B·N), A] with num_candidates=N; "
            f"got shape {tuple(candidates.shape)} and num_candidates={num_candidates}"
        )
    return rearrange(candidates, "(b n) a -> b n a", b=obs.shape[0], n=num_candidates)


def _log_implicit_weight(critic: object, obs_flat: torch.Tensor, act_flat: torch.Tensor,
                         q: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """log w(s, a) [B, N] for the flattened candidates, q [B, N] already computed."""
    log_w_u = getattr(critic, "implicit_log_weight_u", None)
    w_u = getattr(critic, "implicit_weight_u", None)
    if log_w_u is not None or w_u is not None:
        u = q - rearrange(critic.v(obs), "b -> b 1")  # u = Q − V, [B, N]
        return log_w_u(u) if log_w_u is not None else torch.log(w_u(u))
    w = critic.implicit_weight(obs_flat, act_flat)
    return torch.log(rearrange(w, "(b n) -> b n", b=q.shape[0]))


@torch.no_grad()
def selection_logits(
    critic: object,
    obs: torch.Tensor,
    candidates: torch.Tensor,
    rule: str = "argmax",
    temperature: float = 1.0,
    num_candidates: int | None = None,
    q_agg: str = "min",
    u: torch.Tensor | None = None,
    q_source: str = "target",
) -> torch.Tensor:
    """Unnormalised log-probabilities [B, N] (−inf for excluded candidates); see :func:`selection_probs`."""
    _check(rule, temperature, q_source)
    cand = _as_bna(obs, candidates, num_candidates)
    b, n, _ = cand.shape
    obs_flat = repeat(obs, "b o -> (b n) o", n=n)
    act_flat = rearrange(cand, "b n a -> (b n) a")
    u_flat = None if u is None else repeat(u, "b -> (b n)", n=n)  # one member per state (q_agg=random)
    score = q_value if q_source == "target" else q_for_actor  # agg_j Q̄_j(s, a_i), or the online Q_j
    q = rearrange(score(critic, obs_flat, act_flat, q_agg, u_flat), "(b n) -> b n", b=b)
    if rule == "argmax":
        best = q.argmax(-1, keepdim=True) == torch.arange(n, device=q.device)  # argmax: first of ties
        return torch.where(best, 0.0, float("-inf")).to(q.dtype)
    if rule == "softmax":
        return q / temperature
    log_w = _log_implicit_weight(critic, obs_flat, act_flat, q, obs)
    # a state whose weights all vanished (cannot happen for the built-in critics) falls back to uniform
    return torch.where(torch.isfinite(log_w).any(-1, keepdim=True), log_w, torch.zeros_like(log_w))


def selection_probs(
    critic: object,
    obs: torch.Tensor,
    candidates: torch.Tensor,
    rule: str = "argmax",
    temperature: float = 1.0,
    num_candidates: int | None = None,
    q_agg: str = "min",
    u: torch.Tensor | None = None,
    q_source: str = "target",
) -> torch.Tensor:
    """Selection distribution [B, N] over each state's N candidates (rows ≥ 0, sum to 1).

    ``critic`` provides ``q`` and ``v`` (:class:`~offrl.critics.base.CriticView`);
    ``obs`` is [B, O]; ``candidates`` is [B, N, A] or [(B·N), A] with
    ``num_candidates=N`` (module docstring). ``temperature`` is used by
    ``softmax`` only; ``q_agg`` and ``u`` [B] (for ``random``) choose how Q
    aggregates the ensemble, ``q_source`` (target | online) which ensemble. Unknown rules raise an error
    listing the valid ones.
    """
    logits = selection_logits(critic, obs, candidates, rule, temperature, num_candidates, q_agg, u, q_source)
    return torch.softmax(logits, dim=-1)


def sample_index(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One index per row of ``probs`` [B, N] -> [B], by inverting each row's CDF at ``u`` [B] ∈ [0, 1).

    The CDF is divided by its last entry so it ends at exactly 1; a candidate
    with probability 0 is never drawn.
    """
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    return (cdf <= u.to(cdf.dtype).reshape(*probs.shape[:-1], 1)).sum(-1).clamp(max=probs.shape[-1] - 1)


@torch.no_grad()
def sample_candidates(
    critic: object,
    obs: torch.Tensor,
    candidates: torch.Tensor,
    rule: str,
    u: torch.Tensor,
    temperature: float = 1.0,
    num_candidates: int | None = None,
    q_agg: str = "min",
    q_member: torch.Tensor | None = None,
    q_source: str = "target",
) -> torch.Tensor:
    """Draw one candidate per state from :func:`selection_probs` with uniforms ``u`` [B]; actions [B, A]
    (``q_member`` [B]: the uniforms that pick each state's Q member for ``q_agg=random``; ``q_source``:
    target or online Q)."""
    cand = _as_bna(obs, candidates, num_candidates)
    probs = selection_probs(critic, obs, cand, rule, temperature, q_agg=q_agg, u=q_member, q_source=q_source)
    idx = sample_index(probs, u)  # [B]
    return torch.gather(cand, 1, repeat(idx, "b -> b 1 a", a=cand.shape[-1])).squeeze(1)


def selection_noise(batch_size: int, q_agg: str = "min") -> NoiseSpec:
    """The randomness :func:`sample_candidates` reads for ``batch_size`` states: ``select`` (one uniform per
    state) and, for ``q_agg=random``, ``q_member`` (one Q member per state) — declared by every actor that
    selects among candidates, so each seed's draws come from its own generator."""
    spec = {"select": Noise.uniform(batch_size)}
    if q_agg == "random":
        spec["q_member"] = Noise.uniform(batch_size)
    return spec


__all__ = ["Q_SOURCES", "RULES", "sample_candidates", "selection_noise", "sample_index", "selection_logits",
           "selection_probs"]
