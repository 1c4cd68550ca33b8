"""``graph`` mode's control flow on a CPU, with a stand-in for CUDA graphs (offrl.learner.graphs.FakeGraphs).

A fake replay runs the recorded Python again, so graph mode must compute bit for bit what eager mode
computes: any mistake in warm-up, capture points, remainders, policy-delay alignment or resume shows as
a difference. Also: flat-buffer draws, the packed table, the capture-time metric check, generator states
across device types, and what counts as "too large".
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from offrl.component import Noise
from offrl.data.transitions import TransitionTable
from offrl.learner import Learner, UpdateSchedule
from offrl.learner.graphs import FakeGraphs
from offrl.learner.rng import MemberGenerators
from tests.test_learner import agent, table

CPU = torch.device("cpu")


def _learner(mode: str, seeds: list[int], every: int = 2, spc: int = 4, critic: str = "td3",
             actor: str = "ddpg-bc", graphs: FakeGraphs | None = None) -> Learner:
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16, actor_every=every)
    return Learner([agent(critic, actor, s) for s in seeds], seeds, table(), schedule, CPU, mode=mode,
                   steps_per_call=spc, graphs=graphs, compile_in_graph=False)


def _state(learner: Learner) -> dict[str, torch.Tensor]:
    out = {k: v.clone() for k, v in learner.stack.state.items()}
    out.update({f"m{i}/{k}": m.clone() for k, o in learner.optims.items() for i, m in enumerate(o.exp_avg)})
    return out


def _assert_same(a: Learner, b: Learner) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.iterations == b.iterations
    assert a.read_metrics() == b.read_metrics()


@pytest.mark.parametrize("every", [1, 2, 3])
def test_graph_mode_computes_exactly_what_eager_mode_computes(every: int) -> None:
    """Chunks of every size (shorter and longer than a graph, odd lengths under a policy delay)."""
    chunks = [1, 7, 13, 4, 5, 3, 8, 1, 9]
    fake = FakeGraphs()
    graph, eager = _learner("graph", [0, 3], every=every, spc=6 if every == 3 else 4, graphs=fake), \
        _learner("off", [0, 3], every=every)
    for n in chunks:
        graph.train(n)
        eager.train(n)
    _assert_same(graph, eager)
    assert fake.warmups == max(Learner.WARMUP_ITERATIONS, 2 * every)
    # every capture is keyed by (length, policy-delay phase, regime) and happens once
    assert len(fake.captures) == len(set(fake.captures))
    assert all(length <= graph.steps_per_call and 0 <= phase < every for length, phase, _ in fake.captures)


def test_no_eager_iteration_once_warm(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGraphs()
    learner = _learner("graph", [0], graphs=fake)
    eager_steps = []
    original = learner._step_once
    monkeypatch.setattr(learner, "_step_once", lambda: (eager_steps.append(learner.iterations), original())[1])
    learner._graphs.step = learner._step_once
    learner.train(4 + 4 * 5 + 3)  # warm-ups (2 per kind of iteration), five whole graphs, a remainder of 3
    assert eager_steps == [0, 1, 2, 3]  # only the warm-ups ran eagerly
    assert fake.captures == [(4, 0, (True, True)), (3, 0, (True, True))]
    assert fake.replays == 6
    learner.train(4)  # starts at phase 1 of the policy delay (after the odd remainder): a graph of its own
    assert fake.captures[-1] == (4, 1, (True, True))


def test_resume_in_graph_mode_warms_up_again_and_continues_exactly() -> None:
    """A resumed run is a new process: its learner warms up before capturing (cf. pytorch#99397)."""
    reference = _learner("graph", [1], graphs=FakeGraphs())
    reference.train(30)
    first = _learner("graph", [1], graphs=FakeGraphs())
    first.train(17)
    fake = FakeGraphs()
    second = _learner("graph", [1], graphs=fake)
    notes = second.load_member_states([first.member_state(0)])
    assert notes == []
    second.train(13)
    assert fake.warmups == 4  # 2 × actor.update_every, again in the new learner
    first.read_metrics()
    reference.read_metrics()
    second_state, ref_state = _state(second), _state(reference)
    for k in ref_state:
        assert torch.equal(second_state[k], ref_state[k]), k


def test_two_phase_training_in_graph_mode_equals_eager() -> None:
    """Critic only, then the actor on the frozen critic: graphs never span the phase boundary, and the
    actor's phase warms up (and allocates its metrics) before anything of it is captured."""
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16, actor_every=2, critic_until=11, actor_from=11)
    fake = FakeGraphs()
    learners = [Learner([agent("expectile", "gaussian-awr", 0)], [0], table(), schedule, CPU, mode=mode,
                        steps_per_call=4, graphs=g, compile_in_graph=False)
                for mode, g in (("graph", fake), ("off", None))]
    for learner in learners:
        for n in (1, 9, 7, 8):
            learner.train(n)
    _assert_same(*learners)
    assert all(regime in {(True, False), (False, True)} for _, _, regime in fake.captures)
    assert fake.warmups == 8  # 4 in each phase
    assert schedule.actor_updates_in(25) == 7 and schedule.critic_updates_in(25) == 11


def test_each_component_samples_its_own_table() -> None:
    small, large = table(50), table(400)
    learner = Learner([agent("expectile", "gaussian-awr", 0)], [0], {"critic": small, "actor": large},
                      UpdateSchedule(critic_batch=8, actor_batch=8), CPU)
    idx_critic, *_, idx_actor = [n for n in learner._plan((True, True)) if n.kind == "randint"]
    assert (idx_critic.high, idx_actor.high) == (50, 400)
    learner.train(3)
    with pytest.raises(Exception, match="shared_batch"):
        Learner([agent("expectile", "gaussian-awr", 0)], [0], {"critic": small, "actor": large},
                UpdateSchedule(critic_batch=8, actor_batch=8, shared_batch=True), CPU)


def test_a_metric_first_appearing_inside_a_capture_is_an_error() -> None:
    fake = FakeGraphs()
    learner = _learner("graph", [0], every=1, graphs=fake)
    learner.train(Learner.WARMUP_ITERATIONS)
    critic = learner.updates["critic"]
    key, stage, run = critic.stages[0]

    def with_new_metric(batch: object, noise: object) -> dict:
        return {**run(batch, noise), "critic/surprise": torch.zeros(len(learner.seeds))}

    critic.stages[0] = (key, stage, with_new_metric)
    with pytest.raises(RuntimeError, match="critic/surprise.*first appeared inside a CUDA-graph capture"):
        learner.train(4)


# --- draws -------------------------------------------------------------------------------------------------
def test_flat_buffer_draws_give_each_seed_its_solo_numbers() -> None:
    plan = [Noise.randint(1000, 64), Noise.normal(8, 3), Noise.uniform(5), Noise.randint(2, 7), Noise.normal(4)]
    together = MemberGenerators([4, 9], CPU).draw(plan)
    for e, seed in enumerate([4, 9]):
        alone = MemberGenerators([seed], CPU).draw(plan)
        for t, a in zip(together, alone):
            assert torch.equal(t[e], a[0])
    idx, normal, uniform, coin, _ = together
    assert idx.shape == (2, 64) and idx.dtype == torch.long and 0 <= idx.min() and idx.max() < 1000
    assert normal.shape == (2, 8, 3) and normal.dtype == torch.float32
    assert uniform.dtype == torch.float32 and ((0 <= uniform) & (uniform < 1)).all()
    assert set(coin.unique().tolist()) <= {0, 1}


def test_flat_buffer_indices_are_uniform() -> None:
    """floor(u · n) with float64 u: every index equally likely (a chi-square check at 0.1% level)."""
    n, draws = 50, 200_000
    [idx] = MemberGenerators([0], CPU).draw([Noise.randint(n, draws)])
    counts = torch.bincount(idx[0], minlength=n).double()
    expected = draws / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 86.7  # the 99.9% quantile of chi-square with 49 degrees of freedom


def test_generator_state_from_another_device_type_is_rederived_and_said() -> None:
    gens = MemberGenerators([3], CPU)
    saved = {"device_type": "cuda", "state": torch.zeros(16, dtype=torch.uint8)}
    notes = gens.load_member_states([saved], iteration=500)
    assert len(notes) == 1 and "saved on cuda" in notes[0] and "not exact" in notes[0]
    again = MemberGenerators([3], CPU)
    again.load_member_states([saved], iteration=500)
    assert torch.equal(gens.draw([Noise.normal(5)])[0], again.draw([Noise.normal(5)])[0])  # re-derived, seeded
    same = MemberGenerators([3], CPU)
    assert same.load_member_states([gens.member_state(0)], iteration=500) == []


def test_packed_table_gathers_every_field_in_one_go() -> None:
    t = table(40)
    idx = torch.tensor([[0, 9, 39], [5, 5, 19]])
    batch = t.gather(idx)
    fields = ("observations", "actions", "rewards", "next_observations", "terminals", "next_actions",
              "has_next_action", "mc_returns")
    assert len(batch) == len(fields)
    for name, got in zip(fields, batch):
        column = getattr(t, name)
        assert torch.equal(got, column[idx]), name
    assert t.data.shape == (40, 3 + 2 + 1 + 3 + 1 + 2 + 1 + 1)


def test_a_table_without_next_actions_has_none() -> None:
    t = TransitionTable(torch.zeros(4, 2), torch.ones(4, 1), torch.zeros(4), torch.zeros(4, 2), torch.zeros(4))
    assert torch.equal(t.has_next_action, torch.zeros(4)) and torch.equal(t.next_actions, torch.zeros(4, 1))


# --- precision ----------------------------------------------------------------------------------------------
def test_bf16_autocast_trains_the_actor_and_acts_in_float32() -> None:
    schedule = UpdateSchedule(critic_batch=16, actor_batch=16)
    seeds = [0, 1]
    learner = Learner([agent("expectile", "gaussian-awr", s) for s in seeds], seeds, table(), schedule, CPU,
                      autocast="bf16")
    fp32 = Learner([agent("expectile", "gaussian-awr", s) for s in seeds], seeds, table(), schedule, CPU)
    learner.train(20)
    fp32.train(20)
    a, b = learner.read_metrics(), fp32.read_metrics()
    for row_a, row_b in zip(a, b):
        assert torch.isfinite(torch.tensor(list(row_a.values()))).all()
        assert row_a["critic/q_loss"] == pytest.approx(row_b["critic/q_loss"], rel=0.1)  # critics stay fp32
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    actions = learner.act(torch.zeros(2, 5, 3), gens)
    assert actions.dtype == torch.float32 and actions.shape == (2, 5, 2)
    with pytest.raises(Exception, match="autocast"):
        Learner([agent("expectile", "gaussian-awr", 0)], [0], table(), schedule, CPU, autocast="fp8")


def test_precision_resolves_per_device() -> None:
    from offrl.trainer.runtime import resolve_precision

    assert resolve_precision(torch.device("cpu"), "auto") == "highest"
    assert resolve_precision(torch.device("cuda"), "auto") == "high"
    assert resolve_precision(torch.device("cpu"), "high") == "high"
    with pytest.raises(Exception, match="matmul precision.*highest"):
        resolve_precision(CPU, "tf32")


def test_only_allocation_failures_count_as_too_large() -> None:
    from offrl.trainer.agents import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as e:
        assert is_out_of_memory(e)
    assert not is_out_of_memory(RuntimeError("my plugin ran out of memory budget"))
    assert not is_out_of_memory(ValueError("alloc"))


# --- the trainer in graph mode ---------------------------------------------------------------------------------
@pytest.fixture
def fake_graph_mode(monkeypatch: pytest.MonkeyPatch) -> list[FakeGraphs]:
    """The trainer's ``graph`` mode on a CPU: fake graphs, the eager iteration captured (so runs are exact)."""
    import offrl.learner.learner as learner_mod

    made: list[FakeGraphs] = []

    def fake(device: torch.device) -> FakeGraphs:
        made.append(FakeGraphs())
        return made[-1]

    monkeypatch.setattr(learner_mod, "CudaGraphs", fake)
    monkeypatch.setattr(learner_mod.Learner, "_compiled_iteration", lambda self: self._iteration)
    real = learner_mod.resolve_speed_mode
    monkeypatch.setattr("offrl.trainer.trainer.resolve_speed_mode",
                        lambda mode, device, steps: "graph" if mode == "graph" else real(mode, device, steps))
    return made


def _bandit_cfg(compile_mode: str, steps: int = 130) -> object:
    import offrl

    return offrl.make_config(preset="bandit", actor="ddpg-bc", critic="td3", steps=steps, seed=0, overrides={
        "trainer.compile": compile_mode, "trainer.eval_every": 40, "trainer.save_every": 40, "trainer.log_every": 20,
        "trainer.eval_episodes": 5, "trainer.steps_per_call": 6, "actor.update_every": 2, "trainer.eval_async": "off"})


def test_trainer_graph_mode_equals_eager_and_resumes(fake_graph_mode: list[FakeGraphs], tmp_path: Path) -> None:
    from offrl.trainer.api import resume, train
    from tests.helpers import read_jsonl

    train(_bandit_cfg("off"), tmp_path / "eager")
    train(_bandit_cfg("graph"), tmp_path / "graph")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    for log in ("train.jsonl", "eval.jsonl"):
        assert strip(read_jsonl(tmp_path / "graph" / log)) == strip(read_jsonl(tmp_path / "eager" / log)), log
    # eager iterations only while warming up; after that whole graphs and a few remainders, each captured once
    fake = fake_graph_mode[0]
    assert fake.warmups == 4 and fake.replays >= 130 // 6
    assert len(fake.captures) == len(set(fake.captures)) <= 6, fake.captures

    # killed after its next-to-last checkpoint, then resumed in a new learner: warm-up again, same logs
    rolled = tmp_path / "rolled"
    shutil.copytree(tmp_path / "graph", rolled)
    for name in ("summary.json", "checkpoint.pt", "run.lock"):
        (rolled / name).unlink(missing_ok=True)
    (rolled / "checkpoint.prev.pt").replace(rolled / "checkpoint.pt")
    resume(rolled)
    assert fake_graph_mode[-1].warmups == 4
    for log in ("train.jsonl", "eval.jsonl"):
        assert strip(read_jsonl(rolled / log)) == strip(read_jsonl(tmp_path / "graph" / log)), log


def test_trainer_chunks_are_whole_graphs() -> None:
    from types import SimpleNamespace

    from offrl.trainer.trainer import CHUNK, Trainer

    t = SimpleNamespace(steps=10_000, log_every=1000, eval_every=5000, save_every=50_000, steps_per_call=16)
    fake = SimpleNamespace(cfg=SimpleNamespace(trainer=t), step=0, mode="graph")
    sizes = []
    while fake.step < 1000:
        n = Trainer._chunk(fake)
        sizes.append(n)
        fake.step += n
    assert fake.step == 1000 and all(n % 16 == 0 for n in sizes[:-1]) and max(sizes) >= CHUNK
    fake.mode = "off"
    assert Trainer._chunk(fake) == CHUNK
