"""E seeds' agents as one set of stacked tensors, and calls of their methods for every seed at once.

Each seed's critic and actor are built as ordinary modules (so seed ``s`` is
initialised exactly as a solo run of ``s``), then their persistent tensors
(parameters and persistent buffers) are stacked on a leading seed axis. One of
the agents stays as the *template*: its methods are called with the stacked
tensors swapped in (``torch.func.functional_call``), under ``torch.func.vmap``
when there are several seeds. Component code therefore never sees the seed
axis: it is written for one seed and reads like the paper.

Why vmap rather than hand-batched layers: component authors write single-seed
code, and on this machine's CPUs the seed-updates/s of E = 8 under vmap matched
E = 1 (docs/performance.md). With one seed no vmap is used at all (it would
only add dispatch overhead).
"""
from __future__ import annotations

from typing import Any, Callable

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call as torch_functional_call
from torch.func import vmap


class _Slots:
    """Where each named tensor of a module lives (submodule, dict, attribute), found once.

    Swapping tensors in through these slots does what ``torch.func.functional_call`` does, minus its
    per-call walk over every submodule (which cost ~2 ms per IQL iteration in eager mode here).
    """

    def __init__(self, module: nn.Module) -> None:
        self.slots: dict[str, tuple[dict, str]] = {}
        for prefix, sub in module.named_modules():
            for kind in (sub._parameters, sub._buffers):
                for attr in kind:
                    self.slots[f"{prefix}.{attr}" if prefix else attr] = (kind, attr)

    @contextlib.contextmanager
    def bound(self, tensors: dict[str, Tensor]) -> Iterator[None]:
        saved = []
        try:
            for name, t in tensors.items():
                where, attr = self.slots[name]
                saved.append((where, attr, where[attr]))
                where[attr] = t
            yield
        finally:
            for where, attr, old in reversed(saved):
                where[attr] = old


def functional_call(module: nn.Module, tensors: dict[str, Tensor], args: tuple) -> Any:
    """``module(*args)`` with ``tensors`` swapped in: torch's ``functional_call`` under ``torch.compile``
    (which it knows how to trace), a cheaper swap through precomputed slots in eager mode."""
    if torch.compiler.is_compiling():
        return torch_functional_call(module, tensors, args)
    slots = module.__dict__.get("_offrl_slots")
    if slots is None:
        slots = module.__dict__["_offrl_slots"] = _Slots(module)
    with slots.bound(tensors):
        return module(*args)


class Agent(nn.Module):
    """One seed's critic and actor; ``forward(fn, *args)`` calls one of their methods.

    A critic that needs its actor outside a loss (critics without V estimate V(s)
    from the policy when actors ask for it) gets a reference through its
    ``attach_policy(actor)`` here, before the agents' tensors are stacked.
    """

    def __init__(self, critic: nn.Module, actor: nn.Module) -> None:
        super().__init__()
        self.critic = critic
        self.actor = actor
        attach = getattr(critic, "attach_policy", None)
        if callable(attach):
            attach(actor)

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class StackedAgents:
    """Persistent tensors of E agents stacked on dim 0 (``state``), constants shared (``consts``)."""

    def __init__(self, agents: list[Agent], device: torch.device) -> None:
        self.template = agents[0]
        self.members = len(agents)
        persistent = dict(self.template.state_dict(keep_vars=True))
        self.consts: dict[str, Tensor] = {
            n: b.detach().to(device) for n, b in self.template.named_buffers() if n not in persistent
        }
        dicts = [a.state_dict() for a in agents]
        self.state: dict[str, Tensor] = {
            n: torch.stack([d[n].detach() for d in dicts]).to(device).contiguous() for n in persistent
        }
        self.trainable = {n for n, p in self.template.named_parameters() if p.requires_grad}
        self._names = {id(p): n for n, p in self.template.named_parameters()}

    def name_of(self, param: nn.Parameter) -> str:
        """The state key of one of the template's parameters (e.g. from a component's param groups)."""
        return self._names[id(param)]

    def seal(self) -> None:
        """Move the template's own tensors to 'meta': it only lends its code, so a call that forgets
        to swap in the stacked state fails loudly instead of silently using seed 0's initial weights."""
        self.template.to("meta")

    # --- calls ----------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, state: dict[str, Tensor] | None = None) -> Any:
        """``fn(*args)`` with the *stacked* tensors swapped in (for elementwise in-place updates)."""
        return functional_call(self.template, {**(self.state if state is None else state), **self.consts}, (fn, *args))

    def map(self, fn: Callable[..., Any], *batched: Any) -> Any:
        """``fn(*batched)`` for every seed: arguments and results carry the seed axis on dim 0."""
        def one(state: dict[str, Tensor], *args: Any) -> Any:
            return functional_call(self.template, {**state, **self.consts}, (fn, *args))

        if self.members == 1:
            return unsqueeze_tree(one(member(self.state, 0), *[member(a, 0) for a in batched]))
        return vmap(one)(self.state, *batched)

    def member_state(self, e: int) -> dict[str, Tensor]:
        return {n: t[e].clone() for n, t in self.state.items()}

    @torch.no_grad()
    def load_member_states(self, states: list[dict[str, Tensor]]) -> None:
        missing = set(self.state) - set(states[0])
        if missing:
            raise KeyError(sorted(missing)[0])
        for n, t in self.state.items():
            t.copy_(torch.stack([s[n] for s in states]))


def member(tree: Any, e: int) -> Any:
    """Slice ``e`` of every tensor in a pytree (dicts, lists, tuples, NamedTuples)."""
    return torch.utils._pytree.tree_map(lambda t: t[e] if isinstance(t, Tensor) else t, tree)


def unsqueeze_tree(tree: Any) -> Any:
    return torch.utils._pytree.tree_map(lambda t: t.unsqueeze(0) if isinstance(t, Tensor) else t, tree)
