"""One random generator per seed, so each seed draws exactly what it would draw alone.

A solo run of seed ``s`` draws its batch indices and every noise tensor of an
iteration from one device generator seeded with ``s``. Training E seeds
together draws the same numbers from E such generators and stacks them on a
leading seed axis; member ``e`` therefore sees the batches and the noise of the
solo run of its seed, whatever else is trained beside it.

Why flat buffers: an iteration declares many small random tensors (batch
indices, diffusion noise, dropout masks, candidate-selection noise). Drawing
each one per seed costs E × tensors kernels (416 per IDQL iteration at E = 32).
Instead each seed fills one row of a flat normal buffer and one row of a flat
uniform buffer per iteration (2 kernels per seed), and the declared tensors are
views of those rows: uniform noise is cast to float32, batch indices and other
integers are ``floor(u · high)`` of float64 uniforms (53 bits, so indices into a
table of any size are uniform to within 2⁻³⁰). In ``graph`` mode the fills are
captured with the step (the generators are registered with the CUDA graph).

Generator states are device specific (a CPU generator is a Mersenne twister, a
CUDA one a Philox seed and offset), so a checkpoint records the device type of
each state; continuing on another device type re-derives the streams from
(seed, iteration) and says that the continuation is not exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from offrl.component import Noise


@dataclass(frozen=True)
class Slot:
    """Where one declared tensor lives in the flat buffers."""

    kind: str  # normal | uniform | randint
    shape: tuple[int, ...]
    start: int
    size: int
    high: int = 0


@dataclass(frozen=True)
class DrawLayout:
    """The flat-buffer layout of one iteration's plan: sizes of the two buffers and a slot per tensor."""

    normals: int
    uniforms: int
    slots: tuple[Slot, ...]

    @staticmethod
    def of(plan: Sequence[Noise]) -> "DrawLayout":
        counts = {"normal": 0, "uniform": 0}
        slots = []
        for spec in plan:
            buffer = "normal" if spec.kind == "normal" else "uniform"
            size = math.prod(spec.shape)
            slots.append(Slot(spec.kind, tuple(spec.shape), counts[buffer], size, spec.high))
            counts[buffer] += size
        return DrawLayout(counts["normal"], counts["uniform"], tuple(slots))


class MemberGenerators:
    """Device generators, one per seed, drawing stacked ``[E, ...]`` tensors from flat buffers."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.device = device
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in self.seeds]
        self._layouts: dict[tuple[Noise, ...], DrawLayout] = {}

    def __len__(self) -> int:
        return len(self.generators)

    def layout(self, plan: Sequence[Noise]) -> DrawLayout:
        key = tuple(plan)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = DrawLayout.of(key)
        return found

    def draw(self, plan: Sequence[Noise]) -> list[torch.Tensor]:
        """Every tensor of ``plan``, stacked over seeds: [E, *shape] each, in plan order."""
        lay = self.layout(plan)
        E = len(self.generators)
        normal = torch.empty((E, lay.normals), device=self.device) if lay.normals else None
        uniform = torch.empty((E, lay.uniforms), dtype=torch.float64, device=self.device) if lay.uniforms else None
        for e, g in enumerate(self.generators):  # one or two kernels per seed, whatever the plan holds
            if normal is not None:
                normal[e].normal_(generator=g)
            if uniform is not None:
                uniform[e].uniform_(generator=g)
        out = []
        for slot in lay.slots:
            if slot.kind == "normal":
                out.append(normal[:, slot.start:slot.start + slot.size].reshape(E, *slot.shape))
                continue
            u = uniform[:, slot.start:slot.start + slot.size].reshape(E, *slot.shape)
            if slot.kind == "uniform":
                out.append(u.float())
            else:  # floor(u · high) in [0, high): u < 1, and the clamp guards float64 rounding at the top
                out.append(torch.floor(u * slot.high).long().clamp_(max=slot.high - 1))
        return out

    # --- checkpoints -------------------------------------------------------------------------------
    def member_state(self, e: int) -> dict[str, Any]:
        """Seed ``e``'s generator state and the device type it belongs to."""
        return {"device_type": self.device.type, "state": self.generators[e].get_state()}

    def load_member_states(self, states: Sequence[Any], iteration: int) -> list[str]:
        """Restore every seed's generator; returns notes (e.g. a stream re-derived on another device type).

        A state saved on another device type cannot be loaded into this device's generator (their
        algorithms differ), so that seed's generator is re-seeded from (seed, ``iteration``): training
        continues with fresh random streams and is not the exact continuation of the original run.
        """
        from offrl.trainer.runtime import derived_seed

        notes = []
        for seed, g, saved in zip(self.seeds, self.generators, states):
            kind, state = (saved.get("device_type"), saved.get("state")) if isinstance(saved, dict) else (None, saved)
            if kind is None:  # a bare state (older checkpoints): its size tells the kind
                kind = "cpu" if isinstance(state, torch.Tensor) and state.numel() > 16 else "cuda"
            if kind != self.device.type:
                g.manual_seed(derived_seed(seed, iteration, 13))
                notes.append(f"seed {seed}: its random stream was saved on {kind} and this run is on "
                             f"{self.device.type}; the stream is re-derived from (seed, step {iteration}), so the "
                             "continuation is not exact")
                continue
            g.set_state(state.cpu() if isinstance(state, torch.Tensor) else state)
        return notes
