"""The CUDA path on a real GPU (skipped without one; ``benchmarks/gpu_check.sh`` runs these on a GPU host).

What a CPU cannot check: CUDA graphs recorded and replayed (``graph`` mode computes what eager mode computes,
within the float tolerance of different kernels), seeds on one GPU equal seeds alone, a resumed ``graph`` run
warms up again and continues, ``cuda:N`` puts everything on device N, and TF32 stays close to full fp32.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from offrl.learner import Learner, UpdateSchedule
from tests.test_learner import agent, table

pytestmark = pytest.mark.cuda

ITERATIONS = 320  # a few hundred: 20 graphs of 16


def _learner(mode: str, seeds: list[int], device: str = "cuda", critic: str = "td3", actor: str = "ddpg-bc",
             compile_in_graph: bool = True) -> Learner:
    dev = torch.device(device)
    schedule = UpdateSchedule(critic_batch=64, actor_batch=64, actor_every=2)
    t = table()
    t.data = t.data.to(dev)
    return Learner([agent(critic, actor, s) for s in seeds], seeds, t, schedule, dev, mode=mode,
                   steps_per_call=16, compile_in_graph=compile_in_graph)


def _close(a: Learner, b: Learner, rtol: float = 1e-2, atol: float = 1e-2) -> None:
    """Equal up to what different kernels (fused, batched) do to floats over a few hundred Adam steps; a
    graph that replays nothing, or draws other numbers, is off by O(1)."""
    for k, v in a.stack.state.items():
        torch.testing.assert_close(v, b.stack.state[k], rtol=rtol, atol=atol, msg=k)


@pytest.fixture(autouse=True)
def _highest_precision() -> None:
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(old)


@pytest.mark.parametrize("compile_in_graph", [False, True])
def test_graph_mode_equals_eager_for_a_few_hundred_iterations(compile_in_graph: bool) -> None:
    graph, eager = _learner("graph", [0], compile_in_graph=compile_in_graph), _learner("off", [0])
    for n in (1, 37, ITERATIONS - 38):  # warm-ups, whole graphs and a remainder graph
        graph.train(n)
        eager.train(n)
    torch.cuda.synchronize()
    assert graph.iterations == eager.iterations == ITERATIONS
    _close(graph, eager)
    ma, mb = graph.read_metrics(), eager.read_metrics()
    for k in mb[0]:
        assert ma[0][k] == pytest.approx(mb[0][k], rel=1e-2, abs=1e-4), k


def test_graph_replays_train(tmp_path: Path) -> None:
    """A replay that records nothing would leave the weights as they were after warm-up."""
    learner = _learner("graph", [0])
    learner.train(Learner.WARMUP_ITERATIONS)
    before = {k: v.clone() for k, v in learner.stack.state.items()}
    learner.train(64)
    torch.cuda.synchronize()
    assert any(not torch.equal(before[k], v) for k, v in learner.stack.state.items())


def test_seeds_together_match_seeds_alone_in_graph_mode() -> None:
    group, alone = _learner("graph", [0, 5, 9]), _learner("graph", [5])
    group.train(160)
    alone.train(160)
    torch.cuda.synchronize()
    for k, v in alone.stack.state.items():
        torch.testing.assert_close(group.stack.state[k][1], v[0], rtol=1e-2, atol=1e-2, msg=k)


def test_resume_in_graph_mode_warms_up_and_continues() -> None:
    straight = _learner("graph", [2])
    straight.train(96)
    first = _learner("graph", [2])
    first.train(48)
    second = _learner("graph", [2])  # a new process's learner: no warm-up has happened in it
    assert second.load_member_states([first.member_state(0)]) == []
    second.train(48)
    torch.cuda.synchronize()
    assert second._graphs.warmups_done == Learner.WARMUP_ITERATIONS
    _close(second, straight)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_cuda_n_records_and_replays_on_device_n() -> None:
    torch.cuda.set_device(0)
    learner = _learner("graph", [0], device="cuda:1")
    learner.train(64)
    torch.cuda.synchronize(1)
    assert all(v.device == torch.device("cuda:1") for v in learner.stack.state.values())
    reference = _learner("off", [0], device="cuda:1")
    reference.train(64)
    _close(learner, reference)


def test_cuda_device_index_becomes_current() -> None:
    from offrl.trainer.runtime import resolve_device

    last = torch.cuda.device_count() - 1
    assert resolve_device(f"cuda:{last}") == torch.device("cuda", last)
    assert torch.cuda.current_device() == last
    assert resolve_device("cuda").index == last  # a bare 'cuda' names the current device


def test_tf32_stays_close_to_full_precision() -> None:
    full = _learner("off", [0], critic="expectile", actor="gaussian-awr")
    full.train(ITERATIONS)
    a = full.read_metrics()[0]
    torch.set_float32_matmul_precision("high")
    tf32 = _learner("off", [0], critic="expectile", actor="gaussian-awr")
    tf32.train(ITERATIONS)
    b = tf32.read_metrics()[0]
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=0.05, abs=1e-3), k


def test_bf16_autocast_on_cuda_trains() -> None:
    dev = torch.device("cuda")
    t = table()
    t.data = t.data.to(dev)
    learner = Learner([agent("expectile", "diffusion-resample", 0)], [0], t,
                      UpdateSchedule(critic_batch=64, actor_batch=64), dev, mode="graph", steps_per_call=16,
                      autocast="bf16")
    learner.train(64)
    row = learner.read_metrics()[0]
    assert all(torch.isfinite(torch.tensor(v)) for v in row.values())


def test_a_cpu_checkpoint_continues_on_cuda_with_a_note() -> None:
    cpu = Learner([agent("td3", "ddpg-bc", 0)], [0], table(), UpdateSchedule(critic_batch=64, actor_batch=64),
                  torch.device("cpu"))
    cpu.train(5)
    cuda = _learner("off", [0])
    notes = cuda.load_member_states([cpu.member_state(0)])
    assert len(notes) == 1 and "saved on cpu" in notes[0] and "not exact" in notes[0]
    cuda.train(5)
