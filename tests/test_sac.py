"""Actor ``sac`` and the soft critics' options: the tanh-Gaussian density against torch.distributions, the actor
and temperature losses by hand, the soft backup and the random target subset by hand, the target cadence,
CQL's importance weights, clear errors, the rlpd preset pinned to ikostrikov/rlpd, and runs end to end."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import offrl
from offrl.actors.base import has_log_prob
from offrl.actors.ddpg_bc import DDPGBCActor, DDPGBCConfig
from offrl.actors.sac import SACActor, SACConfig, tanh_log_det
from offrl.component import draw_noise
from offrl.critics.cql import CQLConfig, CQLCritic
from offrl.critics.td3 import NEXT, SUBSET, TD3Config, TD3Critic
from offrl.data.transitions import Batch
from offrl.errors import ConfigError, UnknownNameError
from tests.helpers import read_jsonl

CPU = torch.device("cpu")


def _actor(**cfg: object) -> SACActor:
    torch.manual_seed(0)
    return SACActor(SACConfig(hidden_dims=(8,), **cfg), 3, 2, 100)


def _batch(b: int = 4, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(b, 3, generator=g), torch.rand(b, 2, generator=g) * 2 - 1, torch.randn(b, generator=g),
                 torch.randn(b, 3, generator=g), (torch.arange(b) % 2).float(), torch.zeros(b, 2), torch.zeros(b),
                 torch.zeros(b))


class _QView:
    """Q(s, a) = −‖a − 0.5‖² + s_0: known, differentiable in the action."""

    def q_for_actor(self, obs: Tensor, act: Tensor, agg: str = "min", u: Tensor | None = None) -> Tensor:
        return -((act - 0.5) ** 2).sum(-1) + obs[:, 0]


# --------------------------------------------------------------------------- the density


def test_log_prob_is_the_tanh_gaussians() -> None:
    actor = _actor()
    obs, eps = torch.randn(5, 3), torch.randn(5, 2)
    a, log_pi = actor.sample(obs, eps)
    mean, log_std = actor.dist(obs)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    u = mean + log_std.exp() * eps
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(log_pi, reference.log_prob(torch.tanh(u)).sum(-1), rtol=1e-4, atol=1e-4)


def test_the_tanh_correction_stays_finite_where_tanh_saturates() -> None:
    u = torch.tensor([[30.0, -30.0]])
    # log(1 − tanh²(u)) = log(4) − 2|u| − 2 log(1 + e^{−2|u|}) ≈ log 4 − 60 per dimension
    assert tanh_log_det(u).item() == pytest.approx(2 * (math.log(4.0) - 60.0), rel=1e-6)


def test_log_std_is_offset_then_clipped() -> None:
    actor = _actor(log_std_offset=-1.0, log_std_min=-1.5, log_std_max=2.0)
    with torch.no_grad():
        actor.net.out.weight.zero_()
        actor.net.out.bias.copy_(torch.tensor([0.0, 0.0, 0.3, -5.0]))  # μ = 0, raw log σ = (0.3, −5)
    _, log_std = actor.dist(torch.randn(2, 3))
    torch.testing.assert_close(log_std, torch.tensor([[-0.7, -1.5]] * 2))


# --------------------------------------------------------------------------- the losses by hand


def test_actor_loss_is_alpha_log_pi_minus_q() -> None:
    actor = _actor(init_temperature=0.3)
    batch = _batch()
    eps = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    loss, metrics = actor.loss(batch, {"eps": eps}, _QView())
    a, log_pi = actor.sample(batch.observations, eps)
    q = -((a - 0.5) ** 2).sum(-1) + batch.observations[:, 0]
    assert loss.item() == pytest.approx((0.3 * log_pi - q).mean().item(), rel=1e-5)
    assert metrics["actor/entropy"].item() == pytest.approx(-log_pi.mean().item(), rel=1e-5)
    loss.backward()
    assert actor.log_alpha.grad is None  # α is a constant of the actor's loss
    assert actor.net.out.weight.grad is not None


@pytest.mark.parametrize("form", ["alpha", "log-alpha"])
def test_temperature_loss_and_its_direction(form: str) -> None:
    """L = α (H − H̄) (RLPD) or log α (H − H̄) (CORL): the gradient in log α is α(H − H̄) or H − H̄, so α falls
    while the policy's entropy is above the target and rises below it."""
    for target in (-5.0, 5.0):
        actor = _actor(init_temperature=0.5, target_entropy_per_dim=target / 2, temperature_loss=form)
        batch = _batch()
        eps = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
        loss, _ = actor.temperature_loss(batch, {"eps": eps}, _QView())
        loss.backward()
        entropy = -actor.sample(batch.observations, eps)[1].mean().item()
        scale = 0.5 if form == "alpha" else 1.0
        assert actor.log_alpha.grad.item() == pytest.approx(scale * (entropy - target), rel=1e-5)
        assert (actor.log_alpha.grad.item() > 0) == (entropy > target)
        assert all(p.grad is None for n, p in actor.named_parameters() if n != "log_alpha")


def test_groups_and_stages() -> None:
    learned, fixed = _actor(), _actor(learn_temperature=False, init_temperature=0.2)
    assert [s.group for s in learned.stages()] == ["actor", "temperature"]
    assert list(learned.param_groups()["temperature"].params) == [learned.log_alpha]
    assert [s.group for s in fixed.stages()] == ["actor"] and list(fixed.param_groups()) == ["actor"]
    assert fixed.entropy_temperature().item() == pytest.approx(0.2)
    assert "log_alpha" not in fixed.state_dict()  # a constant: not per-seed training state


def test_acting_uses_the_mean_and_collecting_samples() -> None:
    actor = _actor()
    obs = torch.randn(6, 3)
    mean, _ = actor.dist(obs)
    torch.testing.assert_close(actor.act(obs, _QView(), {}), torch.tanh(mean))
    noise = draw_noise(actor.explore_noise(6), torch.Generator().manual_seed(0), CPU)
    explored = actor.explore(obs, _QView(), noise, scale=0.1)
    torch.testing.assert_close(explored, actor.sample(obs, noise["eps"])[0])
    assert explored.abs().max() <= 1.0 and not torch.allclose(explored, torch.tanh(mean))


# --------------------------------------------------------------------------- the soft critics


def _q_by_hand(critic: TD3Critic) -> None:
    """Q_i(s, a) = (i + 1) · a_0 + s_0 for the online and target ensembles (K members)."""
    def q_all(net: object, obs: Tensor, act: Tensor) -> Tensor:
        return torch.stack([(i + 1) * act[:, 0] + obs[:, 0] for i in range(critic.cfg.num_q)])
    critic._q_all = q_all  # type: ignore[method-assign]


def test_the_soft_backup_by_hand() -> None:
    actor = _actor(init_temperature=0.4)
    critic = TD3Critic(TD3Config(hidden_dims=(4,), entropy_backup=True, policy_noise=0.0, discount=0.9), 3, 2)
    critic.attach_policy(actor)
    _q_by_hand(critic)
    batch = _batch()
    noise = draw_noise(critic.update_noise(4, actor), torch.Generator().manual_seed(3), CPU)
    y = critic.td_target(batch, noise)
    a_next, log_pi = actor.sample(batch.next_observations, noise[NEXT + "eps"])
    q_next = torch.minimum(a_next[:, 0], 2 * a_next[:, 0]) + batch.next_observations[:, 0]
    expected = batch.rewards + 0.9 * (1 - batch.terminals) * (q_next - 0.4 * log_pi)
    torch.testing.assert_close(y, expected)


def test_a_random_target_subset_by_hand() -> None:
    critic = TD3Critic(TD3Config(hidden_dims=(4,), num_q=4, target_subset=2), 3, 2)
    assert set(critic.subset_noise()) == {SUBSET}
    q_all = torch.tensor([[1.0, 7.0], [5.0, 2.0], [3.0, 4.0], [0.0, 9.0]])
    # draws (0.9, 0.1, 0.2, 0.8) rank members 3, 0, 1, 2: the subset is members 1 and 2 for every row
    u = {SUBSET: torch.tensor([0.9, 0.1, 0.2, 0.8])}
    torch.testing.assert_close(critic.aggregate_target(q_all, u), torch.tensor([3.0, 2.0]))
    critic.cfg.q_agg = "mean"
    torch.testing.assert_close(critic.aggregate_target(q_all, u), torch.tensor([4.0, 3.0]))
    # without a subset (0 or all members) no draw is declared and the aggregate is over the whole ensemble
    assert TD3Critic(TD3Config(hidden_dims=(4,), num_q=4, target_subset=4), 3, 2).subset_noise() == {}
    whole = TD3Critic(TD3Config(hidden_dims=(4,), num_q=4), 3, 2)
    torch.testing.assert_close(whole.aggregate_target(q_all, {}), torch.tensor([0.0, 2.0]))


def test_every_subset_of_two_is_drawn() -> None:
    critic = TD3Critic(TD3Config(hidden_dims=(4,), num_q=4, target_subset=2), 3, 2)
    g = torch.Generator().manual_seed(0)
    eye = torch.eye(4) * -1.0  # member i's row is −1 where the column is i: the min reveals the chosen pair
    seen = set()
    for _ in range(200):
        u = draw_noise(critic.subset_noise(), g, CPU)
        chosen = (u[SUBSET].argsort().argsort() < 2).nonzero().flatten().tolist()
        assert critic.aggregate_target(eye, u).tolist() == [-1.0 if i in chosen else 0.0 for i in range(4)]
        seen.add(tuple(chosen))
    assert len(seen) == 6


@pytest.mark.parametrize("cadence, moved", [("actor", [False, False, True]), ("every", [True, True, True])])
def test_target_cadence(cadence: str, moved: list[bool]) -> None:
    """With 3 critic updates per iteration, TD3's targets move after the iteration's last one; SAC's after each."""
    critic = TD3Critic(TD3Config(hidden_dims=(4,), updates_per_step=3, target_cadence=cadence), 3, 2)
    critic.attach_policy(DDPGBCActor(DDPGBCConfig(hidden_dims=(4,)), 3, 2, 10))
    with torch.no_grad():
        for p in critic.q_net.parameters():
            p.add_(1.0)
    for step, should_move in enumerate(moved, start=1):
        before = [p.clone() for p in critic.q_target.parameters()]
        critic.after_update(torch.tensor(step))
        changed = any(not torch.equal(b, p) for b, p in zip(before, critic.q_target.parameters()))
        assert changed == should_move, step


def test_cql_weights_policy_samples_by_their_density() -> None:
    """With a density (sac, policy_density auto) each policy sample enters the logsumexp as Q − log π, CORL's
    importance weights; uniform samples as Q + A log 2."""
    actor = _actor()
    critic = CQLCritic(CQLConfig(hidden_dims=(4,), num_samples=2), 3, 2)
    critic.attach_policy(actor)
    assert critic.use_density
    q = {"data": torch.tensor([[0.5]]), "uniform": torch.tensor([[[0.1, 0.2]]]), "pi": torch.tensor([[[0.3, 0.4]]]),
         "next_pi": torch.tensor([[[0.6, 0.7]]]), "log_pi": torch.tensor([[-1.0, 0.5]]),
         "log_next_pi": torch.tensor([[0.2, -0.3]])}
    gap, _ = critic.gaps(_batch(1), q)
    terms = [0.1 + 2 * math.log(2), 0.2 + 2 * math.log(2), 0.6 - 0.2, 0.7 + 0.3, 0.3 + 1.0, 0.4 - 0.5]
    assert gap.item() == pytest.approx(math.log(sum(math.exp(t) for t in terms)) - 0.5, rel=1e-6)
    # the log π it gets are the actor's own, for its samples at s and at s'
    batch = _batch(3)
    noise = draw_noise(critic.update_noise(3, actor), torch.Generator().manual_seed(0), CPU)
    values = critic.q_values(batch, noise)
    _, log_pi = actor.sample(batch.observations.repeat_interleave(2, 0), noise["cql.pi.eps"])
    torch.testing.assert_close(values["log_pi"], log_pi.reshape(3, 2))
    uniform = CQLCritic(CQLConfig(hidden_dims=(4,), num_samples=2, policy_density="uniform"), 3, 2)
    uniform.attach_policy(actor)
    assert not uniform.use_density and "log_pi" not in uniform.q_values(batch, noise)


def test_which_actors_have_a_density() -> None:
    assert has_log_prob(_actor())
    assert not has_log_prob(DDPGBCActor(DDPGBCConfig(hidden_dims=(4,)), 3, 2, 10))


# --------------------------------------------------------------------------- clear errors


def test_clear_errors() -> None:
    ddpg = DDPGBCActor(DDPGBCConfig(hidden_dims=(4,)), 3, 2, 10)
    with pytest.raises(ConfigError, match="entropy_backup.*'sac'"):
        TD3Critic(TD3Config(hidden_dims=(4,), entropy_backup=True, policy_noise=0.0), 3, 2).attach_policy(ddpg)
    with pytest.raises(ConfigError, match="policy_noise=0"):
        TD3Config(entropy_backup=True, policy_noise=0.2)
    with pytest.raises(ConfigError, match="target_subset=3.*num_q=2"):
        TD3Config(target_subset=3)
    with pytest.raises(UnknownNameError, match="target cadence.*actor, every"):
        TD3Config(target_cadence="sometimes")
    with pytest.raises(ConfigError, match="policy_density=actor.*'sac'"):
        CQLCritic(CQLConfig(hidden_dims=(4,), policy_density="actor"), 3, 2).attach_policy(ddpg)
    with pytest.raises(UnknownNameError, match="temperature loss.*alpha, log-alpha"):
        SACConfig(temperature_loss="beta")
    with pytest.raises(ConfigError, match="init_temperature"):
        SACConfig(init_temperature=0.0)


# --------------------------------------------------------------------------- the rlpd preset


def test_rlpd_preset_is_rlpds_code() -> None:
    cfg = offrl.make_config(preset="rlpd", dataset="offrl/bandit/multimodal-v0")
    c, a, o = cfg.critic_cfg, cfg.actor_cfg, cfg.online
    assert (cfg.critic, cfg.actor) == ("td3", "sac")
    # configs/rlpd_config.py: num_qs 10, num_min_qs 2, critic_layer_norm; td_config.py: 256×2, lr 3e-4, γ 0.99, τ 5e-3
    assert (c.num_q, c.target_subset, c.layer_norm, c.hidden_dims) == (10, 2, True, (256, 256))
    assert (c.q_lr, c.discount, c.target_update_rate, c.q_agg) == (3e-4, 0.99, 0.005, "min")
    # sac_config.py: backup_entropy, init_temperature 1, temp_lr 3e-4; sac_learner.py: H̄ = −A/2, actor on the mean Q
    assert (c.entropy_backup, c.policy_noise, c.target_cadence) == (True, 0.0, "every")
    assert (a.init_temperature, a.temperature_lr, a.target_entropy_per_dim, a.q_agg) == (1.0, 3e-4, -0.5, "mean")
    assert (a.lr, a.hidden_dims, a.log_std_min, a.log_std_max, a.temperature_loss) == (3e-4, (256, 256), -20, 2,
                                                                                       "alpha")
    # networks.py default_init = xavier_uniform, flax's zero biases; MLP: Dense → LayerNorm → activation
    assert (c.init, a.init, c.layer_norm_position) == ("fql", "fql", "before-activation")
    # README's locomotion command: --utd_ratio=20 --start_training 5000 --max_steps 250000; offline_ratio 0.5
    assert (c.updates_per_step, o.start_steps, o.steps, o.offline_fraction, o.updates_per_step) == (
        20, 5000, 250_000, 0.5, 1)
    assert (cfg.trainer.steps, cfg.data.reward) == (1, "none")


def test_rlpd_runs_online_end_to_end(tmp_path: Path) -> None:
    cfg = offrl.make_config(preset="rlpd", dataset="offrl/bandit/multimodal-v0", overrides={
        "critic.hidden_dims": [16, 16], "actor.hidden_dims": [16, 16], "critic.num_q": 4, "critic.updates_per_step": 2,
        "critic.batch_size": 32, "actor.batch_size": 32, "online.steps": 120, "online.start_steps": 40,
        "online.eval_every": 60, "online.log_every": 60, "trainer.eval_episodes": 5})
    result = offrl.train(cfg, tmp_path / "run")
    assert result.finished
    evals = read_jsonl(tmp_path / "run" / "eval.jsonl")
    assert [e["step"] for e in evals] == [1, 61, 121]
    train = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert all(math.isfinite(r["actor/temperature"]) for r in train if "actor/temperature" in r)
    assert any("actor/temperature" in r for r in train)


def test_sac_with_cql_learns_the_bandit(tmp_path: Path) -> None:
    """cql + sac (CORL's CQL at the bandit's α) finds a good mode offline: far above the behaviour mean's ≈ 18."""
    cfg = offrl.make_config(critic="cql", actor="sac", preset="bandit", steps=1000,
                            overrides={"trainer.eval_every": 1000})
    result = offrl.train(cfg, tmp_path / "run")
    score = read_jsonl(tmp_path / "run" / "eval.jsonl")[-1]["normalized_score_100"]
    assert result.finished and score > 60, score


# --------------------------------------------------------------------------- seeds on the member axis


def _soft_agent(critic: str, seed: int):  # noqa: ANN202
    from offrl.learner import Agent

    torch.manual_seed(seed)
    if critic == "td3":
        c = TD3Critic(TD3Config(hidden_dims=(16,), num_q=4, target_subset=2, entropy_backup=True, policy_noise=0.0,
                                updates_per_step=2, target_cadence="every"), 3, 2)
    else:
        c = CQLCritic(CQLConfig(hidden_dims=(16,), num_samples=3, lagrange=True), 3, 2)
    return Agent(c, SACActor(SACConfig(hidden_dims=(16,)), 3, 2, 100))


@pytest.mark.parametrize("critic, order", [("td3", "sequential"), ("cql", "joint")])
def test_soft_pairings_never_synchronise_and_seeds_match_alone(critic: str, order: str) -> None:
    """The subset draw, the soft backup, the density-weighted penalty and the temperature stage: no read-back
    inside an iteration, and seed 1 beside seed 0 gets the weights (α included) it gets alone."""
    from offrl.learner import Learner, UpdateSchedule
    from tests.test_learner import _NoHostSync, table

    schedule = UpdateSchedule(critic_batch=32, actor_batch=32, critic_updates=2 if critic == "td3" else 1,
                              order=order)
    group = Learner([_soft_agent(critic, s) for s in (0, 1)], [0, 1], table(), schedule, CPU)
    solo = Learner([_soft_agent(critic, 1)], [1], table(), schedule, CPU)
    group.train(1)
    rand = group.rng.draw(group._plan((True, True)))
    with _NoHostSync(), torch.no_grad():
        group._iteration(rand, (True, True))
    group, solo = (Learner([_soft_agent(critic, s) for s in (0, 1)], [0, 1], table(), schedule, CPU),
                   Learner([_soft_agent(critic, 1)], [1], table(), schedule, CPU))
    group.train(6)
    solo.train(6)
    for name, value in solo.stack.state.items():
        torch.testing.assert_close(group.stack.state[name][1], value[0], rtol=1e-4, atol=1e-5, msg=name)
    alpha = group.stack.state["actor.log_alpha"]
    assert alpha.shape == (2,) and not torch.equal(alpha, torch.zeros(2))  # α trained, per seed
