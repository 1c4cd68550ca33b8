"""The shared learner: Adam and schedules on the device, per-seed clipping, the update schedule,
gradient isolation, no host sync inside an iteration, and seeds trained together = seeds alone."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import offrl
from offrl.actors import ACTORS
from offrl.component import ParamGroup, Stage
from offrl.critics import CRITICS
from offrl.data.transitions import TransitionTable
from offrl.errors import ConfigError
from offrl.learner import Agent, Learner, UpdateSchedule
from offrl.learner.optim import GroupOptimizer, clip_grad_norm, lr_factor
from tests.helpers import read_jsonl, run_cli

CPU = torch.device("cpu")
TINY_ACTOR = {"gaussian-awr": {"hidden_dims": (16,)}, "ddpg-bc": {"hidden_dims": (16,)},
              "diffusion-resample": {"hidden": 16, "depth": 1, "num_samples": 4, "dropout": 0.1},
              "edp": {"hidden": 16, "depth": 1, "num_samples": 4, "solver_steps": 3, "timesteps": 20},
              "fql": {"hidden_dims": (16,), "flow_steps": 3},
              "flow-resample": {"hidden_dims": (16,), "flow_steps": 3, "num_samples": 4}}
CRITIC_NAMES = ["expectile", "quantile", "exponential", "sarsa", "td3"]
ACTOR_NAMES = ["gaussian-awr", "diffusion-resample", "edp", "ddpg-bc", "fql", "flow-resample"]


def table(n: int = 500, obs_dim: int = 3, act_dim: int = 2) -> TransitionTable:
    """Random transitions in episodes of 10 steps: every 10th step ends its episode (every 20th by a
    termination, the others truncated), so bootstraps, terminals and missing next actions all occur."""
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(n, act_dim, generator=g) * 2 - 1
    last = (torch.arange(n) % 10) == 9
    next_actions = torch.where(last[:, None], 0.0, torch.roll(actions, -1, 0))
    terminals = ((torch.arange(n) % 20) == 19).float()
    return TransitionTable(torch.randn(n, obs_dim, generator=g), actions, torch.randn(n, generator=g),
                           torch.randn(n, obs_dim, generator=g), terminals, next_actions, (~last).float())


def agent(critic: str, actor: str, seed: int, **actor_cfg: object) -> Agent:
    torch.manual_seed(seed)
    ccls, acls = CRITICS.get(critic), ACTORS.get(actor)
    c = ccls(ccls.Config(hidden_dims=(16,)), 3, 2)
    a = acls(acls.Config(**{**TINY_ACTOR[actor], **actor_cfg}), 3, 2, 100)
    return Agent(c, a)


def learner(critic: str, actor: str, seeds: list[int], schedule: UpdateSchedule | None = None,
            **actor_cfg: object) -> Learner:
    return Learner([agent(critic, actor, s, **actor_cfg) for s in seeds], seeds, table(),
                   schedule or UpdateSchedule(critic_batch=32, actor_batch=32), CPU)


# --- Adam, schedules, clipping --------------------------------------------------------------------------------
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("fused", [True, False])
def test_group_optimizer_is_pytorchs_adam(weight_decay: float, fused: bool) -> None:
    """Stacked seeds, a device LR, fused or foreach: the same numbers as torch.optim.Adam(W)."""
    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(2, 4, 3, generator=g), torch.randn(2, 5, generator=g)]
    ref = [torch.nn.Parameter(p.clone()) for p in ours]
    cls = torch.optim.AdamW if weight_decay else torch.optim.Adam
    torch_opt = cls(ref, lr=1e-2, weight_decay=weight_decay)
    opt = GroupOptimizer(["a", "b"], ours, ParamGroup(ref, lr=1e-2, weight_decay=weight_decay), fused=fused)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, gr in zip(ref, grads):
            p.grad = gr.clone()
        torch_opt.step()
        opt.step(grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_cosine_lr_lives_on_the_device_and_decays_to_zero() -> None:
    p = [torch.zeros(1, 3)]
    opt = GroupOptimizer(["p"], p, ParamGroup([torch.nn.Parameter(torch.zeros(3))], lr=0.1, schedule="cosine",
                                              total_updates=4), fused=False)
    lrs = []
    for _ in range(6):
        opt.step([torch.ones(1, 3)])
        lrs.append(opt.lr.item())
    # update k uses ½(1 + cos(πk/T)) · lr: 0.1, 0.0854, 0.05, 0.0146, then 0 once T updates are done
    assert lrs[:4] == pytest.approx([0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05,
                                     0.1 * (1 + math.cos(3 * math.pi / 4)) / 2], rel=1e-5)
    assert lrs[4] == pytest.approx(0.0, abs=1e-9) and lrs[5] == pytest.approx(0.0, abs=1e-9)
    assert lr_factor("constant", torch.tensor(7.0), 4).item() == 1.0


def test_gradient_clipping_is_per_seed() -> None:
    grads = [torch.tensor([[3.0, 4.0], [300.0, 400.0]]), torch.tensor([[0.0], [0.0]])]
    clipped, norm = torch.func.vmap(lambda *g: clip_grad_norm(list(g), 10.0))(*grads)
    torch.testing.assert_close(norm, torch.tensor([5.0, 500.0]))
    torch.testing.assert_close(clipped[0], torch.tensor([[3.0, 4.0], [6.0, 8.0]]), rtol=1e-5, atol=1e-5)


# --- the contract is enforced ----------------------------------------------------------------------------------
def test_parameters_must_be_in_exactly_one_group() -> None:
    a = agent("expectile", "gaussian-awr", 0)
    a.actor.param_groups = lambda: {"actor": ParamGroup(a.actor.mean_net.parameters(), 1e-3)}  # log_std left out
    with pytest.raises(ConfigError, match="in no parameter group: actor.log_std"):
        Learner([a], [0], table(), UpdateSchedule(critic_batch=8, actor_batch=8), CPU)
    b = agent("expectile", "gaussian-awr", 0)
    b.critic.param_groups = lambda: {"q": ParamGroup(b.critic.parameters(), 1e-3),
                                     "v": ParamGroup(b.critic.v_net.parameters(), 1e-3)}
    with pytest.raises(ConfigError, match="in two groups"):
        Learner([b], [0], table(), UpdateSchedule(critic_batch=8, actor_batch=8), CPU)


@pytest.mark.parametrize("actor", ACTOR_NAMES)
def test_actors_inherit_one_group_of_their_trainable_parameters(actor: str) -> None:
    """The base Actor's group: every parameter with requires_grad (not ddpg-bc's target or an EMA copy), with
    the config's lr, schedule, clipping and weight decay; one stage on ``loss``."""
    cls = ACTORS.get(actor)
    a = cls(cls.Config(**{**TINY_ACTOR[actor], "lr": 1e-3, "cosine_decay": True, "max_grad_norm": 2.0}), 3, 2, 77)
    (name, group), = a.param_groups().items()
    assert name == "actor" and (group.lr, group.schedule, group.max_grad_norm, group.total_updates) == (
        1e-3, "cosine", 2.0, 77)
    assert group.weight_decay == getattr(a.cfg, "weight_decay", 0.0)
    trainable = {id(p) for p in a.parameters() if p.requires_grad}
    assert {id(p) for p in group.params} == trainable and len(group.params) == len(trainable)
    assert [(s.group, s.loss) for s in a.stages()] == [("actor", a.loss)]


def test_an_actor_without_lr_is_told_what_to_define() -> None:
    from offrl.actors.base import Actor, ActorConfig

    a = Actor(ActorConfig(), 3, 2, 10)
    with pytest.raises(NotImplementedError, match="lr.*cosine_decay.*param_groups"):
        a.param_groups()


def test_an_actor_stage_never_moves_the_critic() -> None:
    lrn = learner("expectile", "ddpg-bc", [0, 1])
    critic_keys = [k for k in lrn.stack.state if k.startswith("critic.")]
    before = {k: lrn.stack.state[k].clone() for k in lrn.stack.state}
    moments = [m.clone() for o in lrn.optims.values() if o.names[0].startswith("critic.") for m in o.exp_avg]
    update = lrn.updates["actor"]
    batch = lrn.table.gather(torch.randint(0, 500, (2, 32)))
    for _key, _stage, run in update.stages:
        run(batch, {})
    assert all(torch.equal(before[k], lrn.stack.state[k]) for k in critic_keys)
    assert all(torch.equal(a, m) for a, m in zip(moments, [m for o in lrn.optims.values()
                                                            if o.names[0].startswith("critic.") for m in o.exp_avg]))
    assert any(not torch.equal(before[k], lrn.stack.state[k]) for k in lrn.stack.state if k.startswith("actor."))


def test_policy_delay_and_update_ratios() -> None:
    schedule = UpdateSchedule(critic_updates=2, critic_batch=16, actor_updates=3, actor_batch=16, actor_every=2)
    lrn = learner("expectile", "gaussian-awr", [0], schedule)
    lrn.train(5)  # iterations 0..4: the actor updates on 0, 2, 4
    assert lrn.update_counts["critic"].item() == 10 and lrn.update_counts["actor"].item() == 9
    assert lrn.optims["actor/actor"].count.item() == 9 and lrn.optims["critic/q"].count.item() == 10
    assert schedule.actor_updates_in(5) == 9


class _NoHostSync(TorchDispatchMode):
    """Fails on any op that reads a tensor value back to Python (what would stall a CUDA graph)."""

    BANNED = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.__name__.split(".")[0]
        if name in self.BANNED:
            raise AssertionError(f"host synchronisation inside the training iteration: aten.{name}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("critic", CRITIC_NAMES)
@pytest.mark.parametrize("actor", ACTOR_NAMES)
def test_an_iteration_never_synchronises_with_the_host(critic: str, actor: str) -> None:
    """Static shapes and no value read back: the property CUDA-graph capture and compile rely on.
    Acting too (V estimates of critics without V, candidate selection)."""
    lrn = learner(critic, actor, [0, 1])
    lrn.train(1)  # allocates the metric accumulators
    rand = lrn.rng.draw(lrn._plan((True, True)))
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    with _NoHostSync(), torch.no_grad():
        lrn._iteration(rand, (True, True))
        lrn.act(torch.randn(2, 5, 3), gens)


@pytest.mark.parametrize("critic, actor, every", [("expectile", "gaussian-awr", 1), ("td3", "fql", 1),
                                                  ("expectile", "flow-resample", 1), ("td3", "ddpg-bc", 2)])
def test_a_joint_iteration_never_synchronises_with_the_host(critic: str, actor: str, every: int) -> None:
    """trainer.update_order=joint (FQL's one step on the sum of the losses): the same property, on iterations
    with and without the actor (its zero-gradient steps included)."""
    schedule = UpdateSchedule(critic_batch=32, actor_batch=32, actor_every=every, order="joint")
    lrn = Learner([agent(critic, actor, s, **({"update_every": every} if every > 1 else {})) for s in (0, 1)],
                  [0, 1], table(), schedule, CPU)
    lrn.train(1)
    with _NoHostSync(), torch.no_grad():
        for due in ((True, True), (True, False)):
            lrn._iteration(lrn.rng.draw(lrn._plan(due)), due)


FIDELITY_OPTIONS = {
    "edp": {"guide": "q-gradient", "q_agg": "random", "ema_every": 2, "ema_start": 1, "act_with": "live",
            "sampler": "dpm-solver", "solver": "singlestep", "solver_spacing": "time_uniform", "solver_t_end": 0.06},
    "diffusion-resample": {"q_agg": "random", "ema_every": 3, "ema_start": 2, "init": "orthogonal",
                           "activation": "swish", "time_dim": 8, "time_mlp": (16, 16)},
    "flow-resample": {"q_agg": "random", "init": "orthogonal"},
}


@pytest.mark.parametrize("actor", sorted(FIDELITY_OPTIONS))
def test_fidelity_options_never_synchronise_and_seeds_match_alone(actor: str) -> None:
    """Random Q members, the EMA cadence, the singlestep solver and live acting: no read-back in an
    iteration or when acting, and seed 1 beside seed 0 gets the weights (and EMA) it gets alone."""
    opts = FIDELITY_OPTIONS[actor]
    lrn = learner("expectile", actor, [0, 1], **opts)
    lrn.train(1)
    rand = lrn.rng.draw(lrn._plan((True, True)))
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    with _NoHostSync(), torch.no_grad():
        lrn._iteration(rand, (True, True))
        lrn.act(torch.randn(2, 5, 3), gens)
    group, solo = learner("expectile", actor, [0, 1], **opts), learner("expectile", actor, [1], **opts)
    group.train(5)
    solo.train(5)
    for name, value in solo.stack.state.items():
        torch.testing.assert_close(group.stack.state[name][1], value[0], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("critic, actor", [("td3", "ddpg-bc"), ("sarsa", "fql"), ("td3", "diffusion-resample"),
                                           ("td3", "gaussian-awr")])
def test_seeds_together_match_seeds_alone_on_bootstrapped_data(critic: str, actor: str) -> None:
    """On data with bootstraps (not the all-terminal bandit): the backups through next actions, the policy
    delay and the V estimates give seed 1 the same weights beside seed 0 as alone."""
    schedule = UpdateSchedule(critic_batch=32, actor_batch=32, actor_every=2)
    group, solo = learner(critic, actor, [0, 1], schedule), learner(critic, actor, [1], schedule)
    group.train(7)
    solo.train(7)
    for name, value in solo.stack.state.items():
        torch.testing.assert_close(group.stack.state[name][1], value[0], rtol=1e-4, atol=1e-5, msg=name)
    assert any(not torch.equal(group.stack.state[n][0], group.stack.state[n][1]) for n in group.stack.state)


# --- seeds trained together reproduce seeds trained alone -------------------------------------------------------
def _logs(run_dir: Path) -> tuple[list[dict], list[dict]]:
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    return strip(read_jsonl(run_dir / "train.jsonl")), strip(read_jsonl(run_dir / "eval.jsonl"))


def _close(a: list[dict], b: list[dict], rtol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float):
                assert y[k] == pytest.approx(x[k], rel=rtol, abs=1e-6), (k, x[k], y[k])
            else:
                assert x[k] == y[k], k


GROUP = {"critic.hidden_dims": [16, 16], "critic.batch_size": 32, "actor.batch_size": 32,
         "trainer.eval_every": 120, "trainer.eval_episodes": 12, "trainer.eval_envs": 4, "trainer.log_every": 40}


@pytest.mark.parametrize("critic", CRITIC_NAMES)
@pytest.mark.parametrize("actor", ACTOR_NAMES)
def test_each_seed_of_a_group_reproduces_its_solo_run(critic: str, actor: str, tmp_path: Path) -> None:
    """Same batches, same noise (dropout included), same evaluation episodes: metrics and scores agree
    with the solo run to float tolerance (batched kernels sum in another order)."""
    actor_cfg = {f"actor.{k}": list(v) if isinstance(v, tuple) else v for k, v in TINY_ACTOR[actor].items()}
    overrides = {**GROUP, **actor_cfg}
    group = offrl.train(offrl.make_config(critic=critic, actor=actor, steps=120, seeds="0,1", overrides=overrides),
                        tmp_path / "group")
    solo = offrl.train(offrl.make_config(critic=critic, actor=actor, steps=120, seed=1, overrides=overrides),
                       tmp_path / "solo")
    assert group.finished and [r.run_dir.name for r in group.runs] == ["seed0", "seed1"]
    train_g, eval_g = _logs(tmp_path / "group" / "seed1")
    train_s, eval_s = _logs(tmp_path / "solo")
    _close(train_g, train_s, rtol=1e-4)
    _close(eval_g, eval_s, rtol=1e-4)
    assert group.runs[1].summary["final_score_100"] == pytest.approx(solo.summary["final_score_100"], rel=1e-4)
    assert _logs(tmp_path / "group" / "seed0")[0] != train_s  # the other seed really is another seed


def test_multi_seed_layout_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "g"
    proc = run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--seeds", "0-2", "--steps", "60",
                   "--eval-every", "60", "--eval-episodes", "10", "--save-every", "30", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["group.json", "seed0", "seed1", "seed2"]
    import json

    for s in range(3):
        cfg = json.loads((out / f"seed{s}" / "config.json").read_text())
        assert cfg["trainer"]["seed"] == s and cfg["trainer"]["seeds"] == ""  # an ordinary solo run directory
        assert json.loads((out / f"seed{s}" / "summary.json").read_text())["status"] == "finished"
    assert "mean" in proc.stdout and "seeds 0, 1, 2" in proc.stdout
    again = run_cli("run", "--resume", str(out), "--quiet")  # finished: a no-op
    assert again.returncode == 0, again.stderr


def test_graph_mode_needs_cuda(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU error")
    proc = run_cli("run", "--preset", "bandit", "--steps", "10", "--compile", "graph", "--device", "cpu",
                   "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "trainer.compile=graph" in proc.stderr and "needs a CUDA device" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()
