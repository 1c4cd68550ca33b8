"""CUDA graphs of whole iterations: warm-up, capture, replay — and a stand-in that tests the control flow on CPU.

``graph`` mode records ``steps_per_call`` iterations (draws, losses, optimiser
steps, targets, metric sums) into one CUDA graph and replays it. The rules it
follows (PyTorch's CUDA-graph notes):

- **warm up in this process** before the first capture — eager (or compiled)
  iterations on a side stream, so cuBLAS handles, workspaces, compiled
  kernels and the metric accumulators exist before recording starts
  (capturing without them fails, cf. pytorch/pytorch#99397). The count is
  per :class:`GraphRunner`, i.e. per process: a resumed run warms up again;
- **one device**: streams, capture and synchronisation all name the
  learner's own device, so ``cuda:1`` records on ``cuda:1``;
- **static shapes, no host reads** inside (the learner guarantees both);
- **aligned starts**: a graph is keyed by its length and by the phase of the
  policy delay it starts at, so a replay always holds the updates the same
  eager iterations would; the remainder before a log, evaluation or
  checkpoint gets a (shorter) graph of its own instead of running eagerly.

:class:`CudaGraphs` is the real backend; :class:`FakeGraphs` replays the
recorded Python instead, so CPU tests drive exactly this control flow.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch


class CudaGraphs:
    """The CUDA backend: side stream, capture and replay on one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                yield
            torch.cuda.current_stream(self.device).wait_stream(side)

    def capture(self, record: Callable[[], None], generators: list[torch.Generator]) -> Any:
        """A graph of what ``record()`` launches; nothing is executed by the capture itself."""
        with torch.cuda.device(self.device):
            graph = torch.cuda.CUDAGraph()
            for g in generators:  # member generators advance on every replay
                graph.register_generator_state(g)
            torch.cuda.synchronize(self.device)
            with torch.cuda.graph(graph):
                record()
            torch.cuda.synchronize(self.device)
        return graph

    def replay(self, graph: Any) -> None:
        graph.replay()

    def capturing(self) -> bool:
        return torch.cuda.is_current_stream_capturing()


class FakeGraphs:
    """A CPU stand-in: ``capture`` keeps the recording function, ``replay`` runs it.

    Real capture runs the Python once and replays the recorded kernels; here the Python runs on every
    replay, so a replay is bit-for-bit the eager iterations it stands for. Tests use it to check the
    control flow (warm-ups, capture points, replays, remainders, resume, policy-delay alignment) and
    that graph mode computes exactly what eager mode computes.
    """

    def __init__(self) -> None:
        self.captures: list[tuple[int, int]] = []  # (length, phase) of each capture, in order
        self.replays = 0
        self.warmups = 0
        self._capturing = False

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        self.warmups += 1
        yield

    def capture(self, record: Callable[[], None], generators: list[torch.Generator]) -> Any:
        return record

    def replay(self, graph: Any) -> None:
        self.replays += 1
        self._capturing = True  # what runs here is what a real graph would have recorded
        try:
            graph()
        finally:
            self._capturing = False

    def capturing(self) -> bool:
        return self._capturing


class GraphRunner:
    """Warm-ups, lazily captured graphs keyed by what they hold, replays.

    A key is (iterations, policy-delay phase, training regime); ``iterate(iterations, start)`` records
    that many iterations as they run from iteration ``start`` on. ``step()`` runs one eager iteration.
    Warm-ups are counted per regime (a two-phase run warms up again where the actor's phase begins: new
    kinds of iteration must run eagerly and compile before they are captured) and per process.
    """

    def __init__(self, backend: Any, iterate: Callable[[int, int], None], step: Callable[[], None],
                 generators: list[torch.Generator], warmups: int) -> None:
        self.backend = backend
        self.iterate = iterate
        self.step = step
        self.generators = generators
        self.warmups_needed = warmups
        self.warmups_done = 0  # in this process, all regimes
        self._warm: dict[Any, int] = {}
        self.graphs: dict[tuple, Any] = {}

    def warm(self, regime: Any) -> bool:
        return self._warm.get(regime, 0) >= self.warmups_needed

    def warm_up(self, regime: Any) -> None:
        with self.backend.side_stream():
            self.step()
        self._warm[regime] = self._warm.get(regime, 0) + 1
        self.warmups_done += 1

    def run(self, key: tuple, start: int) -> None:
        """Replay the graph of ``key`` (capturing it first, from iteration ``start``'s point of view)."""
        graph = self.graphs.get(key)
        if graph is None:
            iterations = key[0]
            graph = self.graphs[key] = self.backend.capture(lambda: self.iterate(iterations, start), self.generators)
            captures = getattr(self.backend, "captures", None)
            if captures is not None:
                captures.append(key)
        self.backend.replay(graph)
