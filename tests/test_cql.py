"""Critics ``cql`` and ``calql``: the penalty by hand, the Lagrangian's direction, Cal-QL's bound, Monte-Carlo
returns of terminal and truncated episodes (offline and collected online), determinism, the bandit end to end
against td3, and conservatism on out-of-distribution actions."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import offrl
from offrl.actors import ACTORS
from offrl.cli.main import main
from offrl.component import Noise, NoiseSpec, NoiseTensors, draw_noise
from offrl.critics import CRITICS
from offrl.critics.calql import CalQLConfig, CalQLCritic
from offrl.critics.cql import UNIFORM, CQLConfig, CQLCritic
from offrl.data.dataset import load_offline_dataset
from offrl.data.returns import UNKNOWN, ReturnsToGo
from offrl.data.transitions import Batch, TransitionArrays
from offrl.errors import ConfigError
from offrl.learner import Agent, Learner, UpdateSchedule
from tests.helpers import read_jsonl

CPU = torch.device("cpu")
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- a critic with a Q known by hand


class _Deterministic:
    """π(s) = s[:, :1] (no noise): π(0.5) = 0.5, π(−0.5) = −0.5."""

    cfg = None

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {}

    def next_actions(self, obs: Tensor, noise: NoiseTensors) -> Tensor:
        return obs[:, :1]


class _Repeating(_Deterministic):
    """Declares noise (so the critic draws N samples) but ignores it: N identical samples of π(s) = s."""

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"z": Noise.normal(batch_size, 1)}


def _linear_q(critic: CQLCritic) -> None:
    """Q_1(s, a) = a + s, Q_2(s, a) = 2a, for the online and the target ensemble alike."""
    critic._q_all = lambda net, obs, act: torch.stack([act[:, 0] + obs[:, 0], 2.0 * act[:, 0]])  # type: ignore


def _one_state(mc: float = UNKNOWN) -> Batch:
    """s = 0.5, a = 0.2, r = 1, s' = −0.5, terminal (so y = r)."""
    return Batch(torch.tensor([[0.5]]), torch.tensor([[0.2]]), torch.tensor([1.0]), torch.tensor([[-0.5]]),
                 torch.tensor([1.0]), torch.zeros(1, 1), torch.zeros(1), torch.tensor([mc]))


def _critic(cls: type = CQLCritic, actor: object | None = None, **cfg: object) -> CQLCritic:
    config = (CalQLConfig if cls is CalQLCritic else CQLConfig)(hidden_dims=(4,), num_samples=2, **cfg)
    critic = cls(config, 1, 1)
    critic.attach_policy(actor or _Deterministic())
    _linear_q(critic)
    return critic


def _noise(critic: CQLCritic, actor: object) -> NoiseTensors:
    noise = draw_noise(critic.update_noise(1, actor), torch.Generator().manual_seed(0), CPU)
    noise[UNIFORM] = torch.tensor([[[0.25], [0.75]]])  # uniform actions 2u − 1 = −0.5, 0.5
    return noise


def _by_hand(q_data: float, q_uniform: list[float], q_next: float, q_cur: float, n: int = 2) -> float:
    """R(s) − Q(s, a) for one state, N = 2, T = 1: uniform terms + A·log 2 (A = 1), the policy's one sample
    weighted + A·log 2 + log N (it stands for N identical samples)."""
    terms = [q + LOG2 for q in q_uniform] + [q_next + LOG2 + math.log(n), q_cur + LOG2 + math.log(n)]
    return math.log(sum(math.exp(t) for t in terms)) - q_data


def test_the_penalty_equals_its_hand_computed_value() -> None:
    actor = _Deterministic()
    critic = _critic(cql_alpha=3.0)
    batch = _one_state()
    _, metrics = critic.q_loss(batch, _noise(critic, actor), actor)
    # Q_1 = a + s at s = 0.5: data 0.7, uniform (−0.5, 0.5) → (0, 1), π(s') = −0.5 → 0, π(s) = 0.5 → 1
    gap_1 = _by_hand(0.7, [0.0, 1.0], 0.0, 1.0)
    # Q_2 = 2a: data 0.4, uniform → (−1, 1), π(s') → −1, π(s) → 1
    gap_2 = _by_hand(0.4, [-1.0, 1.0], -1.0, 1.0)
    assert gap_1 == pytest.approx(math.log(6 + 6 * math.e) - 0.7)  # the sum, written out once
    assert metrics["critic/cql_penalty"].item() == pytest.approx(3.0 * (gap_1 + gap_2), rel=1e-6)
    assert metrics["critic/cql_gap"].item() == pytest.approx((gap_1 + gap_2) / 2, rel=1e-6)
    # the TD part: y = r = 1 (terminal): (0.7 − 1)² + (0.4 − 1)²
    assert metrics["critic/q_loss"].item() == pytest.approx(0.09 + 0.36, rel=1e-6)


def test_one_deterministic_sample_equals_n_identical_samples() -> None:
    """The shortcut for actors without noise (one sample, + T·log N) is the sum over N copies."""
    for temperature in (1.0, 0.5):
        det, rep = _Deterministic(), _Repeating()
        a, b = _critic(actor=det, temperature=temperature), _critic(actor=rep, temperature=temperature)
        assert (a.policy_samples(det), b.policy_samples(rep)) == (1, 2)
        ga, _ = a.gaps(_one_state(), a.q_values(_one_state(), _noise(a, det)))
        gb, _ = b.gaps(_one_state(), b.q_values(_one_state(), _noise(b, rep)))
        torch.testing.assert_close(ga, gb)


class _Noisy(_Deterministic):
    """π(s, z) = tanh(s[:, :2] + z): a different action per state and per sample."""

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"z": Noise.normal(batch_size, 2)}

    def next_actions(self, obs: Tensor, noise: NoiseTensors) -> Tensor:
        return torch.tanh(obs[:, :2] + noise["z"])


def test_every_sample_is_scored_at_its_own_state() -> None:
    """With B = 3 states and a real Q network, each source's Q values are Q(s_b, a) for state b's own
    samples: uniform, π(s_b), and π(s'_b) scored at s_b (as CORL)."""
    torch.manual_seed(0)
    actor = _Noisy()
    critic = CQLCritic(CQLConfig(hidden_dims=(8,), num_samples=2), 3, 2)
    critic.attach_policy(actor)
    g = torch.Generator().manual_seed(2)
    b = 3
    batch = Batch(torch.randn(b, 3, generator=g), torch.rand(b, 2, generator=g) * 2 - 1, torch.zeros(b),
                  torch.randn(b, 3, generator=g), torch.zeros(b), torch.zeros(b, 2), torch.zeros(b), torch.zeros(b))
    noise = draw_noise(critic.update_noise(b, actor), g, CPU)
    q = critic.q_values(batch, noise)
    rep = lambda x: x.repeat_interleave(2, 0)  # noqa: E731  state b's rows: 2b, 2b + 1
    direct = lambda a: critic._q_all(critic.q_net, rep(batch.observations), a).reshape(2, b, 2)  # noqa: E731
    torch.testing.assert_close(q["data"], critic._q_all(critic.q_net, batch.observations, batch.actions))
    torch.testing.assert_close(q["uniform"], direct((2 * noise[UNIFORM] - 1).reshape(b * 2, 2)))
    torch.testing.assert_close(q["pi"], direct(torch.tanh(rep(batch.observations)[:, :2] + noise["cql.pi.z"])))
    torch.testing.assert_close(q["next_pi"],
                               direct(torch.tanh(rep(batch.next_observations)[:, :2] + noise["cql.next_pi.z"])))


def test_the_max_backup_takes_the_best_of_n_next_actions() -> None:
    torch.manual_seed(0)
    actor = _Noisy()
    g = torch.Generator().manual_seed(4)
    batch = Batch(torch.randn(3, 3, generator=g), torch.zeros(3, 2), torch.ones(3), torch.randn(3, 3, generator=g),
                  torch.tensor([0.0, 1.0, 0.0]), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3))
    for max_backup, n in ((False, 1), (True, 4)):
        critic = CQLCritic(CQLConfig(hidden_dims=(8,), num_samples=4, max_target_backup=max_backup, discount=0.9), 3, 2)
        critic.attach_policy(actor)
        noise = draw_noise(critic.update_noise(3, actor), g, CPU)
        nxt = batch.next_observations.repeat_interleave(n, 0)
        a = torch.tanh(nxt[:, :2] + noise["next.z"])  # [(b n), A]
        q = critic._q_all(critic.q_target, nxt, a).min(0).values.reshape(3, n).max(-1).values
        torch.testing.assert_close(critic.td_target(batch, noise), 1.0 + 0.9 * (1 - batch.terminals) * q)


def test_calql_bounds_the_policy_terms_by_the_monte_carlo_return() -> None:
    actor = _Deterministic()
    batch_high, batch_none = _one_state(mc=50.0), _one_state()
    calql, cql = _critic(CalQLCritic), _critic()
    q = calql.q_values(batch_high, _noise(calql, actor))
    gap, metrics = calql.gaps(batch_high, q)
    # every policy term is below G = 50, so each is replaced by G (the uniform and data terms are not)
    expected = [_by_hand(0.7, [0.0, 1.0], 50.0, 50.0), _by_hand(0.4, [-1.0, 1.0], 50.0, 50.0)]
    torch.testing.assert_close(gap, torch.tensor(expected))
    assert metrics["critic/bound_rate"].item() == 1.0
    # with G unknown (−inf) or below every Q, Cal-QL is CQL
    torch.testing.assert_close(calql.gaps(batch_none, q)[0], cql.gaps(batch_none, q)[0])
    low = _one_state(mc=-50.0)
    torch.testing.assert_close(calql.gaps(low, q)[0], cql.gaps(low, q)[0])
    assert calql.gaps(low, q)[1]["critic/bound_rate"].item() == 0.0


def test_the_lagrange_multiplier_rises_above_the_target_gap_and_falls_below_it() -> None:
    actor = _Deterministic()
    for target, direction in ((-100.0, 1.0), (100.0, -1.0)):
        critic = _critic(lagrange=True, target_action_gap=target)
        assert [s.group for s in critic.stages()] == ["q", "alpha"] and "alpha" in critic.param_groups()
        loss, _ = critic.alpha_loss(_one_state(), _noise(critic, actor), actor)
        (grad,) = torch.autograd.grad(loss, [critic.log_alpha])
        assert -grad.item() * direction > 0, target  # gradient descent moves log α′ in `direction`
    # and in training: α′ (logged as cql_alpha · α′) climbs while the gap exceeds τ_gap
    rows = _train_rows("cql", {"critic.lagrange": True, "critic.target_action_gap": -100.0}, steps=30)
    alphas = [r["critic/cql_alpha"] for r in rows]
    assert alphas[0] > 0.1 * math.e * 0.99 and alphas == sorted(alphas) and alphas[-1] > alphas[0]
    rows = _train_rows("cql", {"critic.lagrange": True, "critic.target_action_gap": 100.0}, steps=30)
    alphas = [r["critic/cql_alpha"] for r in rows]
    assert alphas == sorted(alphas, reverse=True) and alphas[-1] < alphas[0]


def _train_rows(critic: str, overrides: dict, steps: int, tmp: Path | None = None, seed: int = 0) -> list[dict]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(tmp or d) / f"{critic}-{seed}"
        cfg = offrl.make_config(critic=critic, actor="ddpg-bc", preset="bandit", steps=steps, seed=seed,
                                overrides={"trainer.log_every": 10, "trainer.eval_every": steps,
                                           "trainer.eval_episodes": 10, **overrides})
        offrl.train(cfg, out)
        return read_jsonl(out / "train.jsonl")


def test_bad_values_are_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="critic.num_samples"):
        CQLConfig(num_samples=0)
    with pytest.raises(ConfigError, match="critic.temperature"):
        CQLConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="clip_diff_min"):
        CQLConfig(clip_diff_min=5.0, clip_diff_max=1.0)
    CQLConfig(clip_diff_min=-math.inf, clip_diff_max=math.inf)  # no clip either way: valid
    with pytest.raises(ConfigError, match="critic.clip_diff_max must be"):
        CQLConfig(clip_diff_max=-math.inf)


def test_an_actor_without_next_actions_is_refused_when_paired() -> None:
    from offrl.actors.base import Actor, ActorConfig

    class NoNext(Actor):
        Config = ActorConfig

    critic = CRITICS.get("calql")(CalQLConfig(hidden_dims=(4,)), 3, 2)
    with pytest.raises(ConfigError, match="critic 'calql'.*NoNext does not implement next_actions"):
        Agent(critic, NoNext(ActorConfig(), 3, 2, 10))


# --------------------------------------------------------------------------- Monte-Carlo returns


def test_monte_carlo_returns_of_a_terminal_and_a_truncated_episode() -> None:
    # episode 0: 3 steps ending in a terminal; episode 1: 2 steps cut by a time limit (no terminal)
    rewards = np.array([1.0, 2.0, 3.0, 1.0, 1.0])
    terminals = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    g = ReturnsToGo(0.9).table(rewards, terminals, np.array([0, 3]))
    np.testing.assert_allclose(g, [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3, 1 + 0.9, 1], rtol=1e-6)
    # a sparse task's failed episode (ending on the lowest reward): r_min / (1 − γ) everywhere
    sparse = ReturnsToGo(0.9, sparse_reward=True).table(np.array([0.0, 1.0, -1.0, -1.0]), np.array([0, 1, 0, 0.0]),
                                                          np.array([0, 2]))
    np.testing.assert_allclose(sparse, [0.9, 1.0, -10.0, -10.0], rtol=1e-6)


def test_the_table_carries_the_returns_only_with_a_discount() -> None:
    arrays = TransitionArrays(
        observations=np.zeros((5, 1)), actions=np.zeros((5, 1)), rewards=np.array([1.0, 2.0, 3.0, 1.0, 1.0]),
        next_observations=np.zeros((5, 1)), terminals=np.array([0.0, 0.0, 1.0, 0.0, 0.0]),
        timeouts=np.array([0, 0, 0, 0, 1.0]), episode_starts=np.array([0, 3]), episode_returns=np.array([6.0, 2.0]))
    table = arrays.to_table("cpu", ReturnsToGo(0.5))
    torch.testing.assert_close(table.mc_returns, torch.tensor([2.75, 3.5, 3.0, 1.5, 1.0]))
    assert table.gather(torch.tensor([1, 3])).mc_returns.tolist() == [3.5, 1.5]
    assert torch.isneginf(arrays.to_table("cpu").mc_returns).all()  # no discount: unknown, no bound


def test_collected_episodes_get_their_returns_when_they_end() -> None:
    from types import SimpleNamespace

    from offrl.data.preprocess import ActionScaler, ObsNormalizer
    from offrl.online.collect import Collector
    from offrl.online.replay import ReplayTable
    from tests.test_online import N_OFF, _Countdown, _offline

    ds = SimpleNamespace(obs_normalizer=ObsNormalizer.identity(1), action_scaler=ActionScaler(np.array([-1.0]),
                         np.array([1.0])), arrays=SimpleNamespace(episode_returns=np.array([0.0]),
                         rewards=np.array([0.0, 1.0])), reward_mode="none", act_dim=1, success_key=None)
    replay = ReplayTable(_offline(), members=1, capacity=N_OFF + 20, offline_fraction=0.0)
    col = Collector(_Countdown, [0], ds, CPU, 1e-5, ReturnsToGo(0.5))
    rows = lambda: replay.gather(torch.arange(N_OFF, N_OFF + 5)).mc_returns.tolist()  # noqa: E731
    for _ in range(4):  # episode 0: 2 steps, reward 1 each, terminal; episode 1: 3 steps, truncated
        col.step(torch.zeros(1, 1), replay)
    assert rows()[:2] == [1.5, 1.0] and all(math.isinf(v) and v < 0 for v in rows()[2:4])  # episode 1 runs on
    col.step(torch.zeros(1, 1), replay)
    assert rows() == [1.5, 1.0, 1.75, 1.5, 1.0]  # the truncated episode: the discounted sum to its end


# --------------------------------------------------------------------------- training


def test_a_run_is_reproduced_exactly_under_its_seed() -> None:
    over = {"critic.lagrange": True}
    a = _train_rows("calql", over, steps=20)
    b = _train_rows("calql", over, steps=20)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(_train_rows("calql", over, steps=20, seed=1)) != strip(a)


def _final_score(tmp_path: Path, critic: str) -> float:
    out = tmp_path / critic
    assert main(["run", "--critic", critic, "--actor", "ddpg-bc", "--preset", "bandit", "--steps", "200",
                 "--eval-every", "200", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text())["final_score_100"]


def test_cql_and_calql_learn_the_bandit_as_well_as_td3(tmp_path: Path) -> None:
    """Measured (seed 0, 200 steps, the bandit preset's α = 0.1): td3 91.6, cql 85.9, calql 92.0 (seeds 0–4:
    td3 81.4 ± 17, cql 83.0 ± 8, calql 82.9 ± 13 on average). Random actions score 0, the best mode 100."""
    td3 = _final_score(tmp_path, "td3")
    for critic in ("cql", "calql"):
        score = _final_score(tmp_path, critic)
        assert score > 60.0 and score > td3 - 20.0, (critic, score, td3)


def test_cql_is_lower_than_td3_on_out_of_distribution_actions() -> None:
    """Both critics trained 500 iterations on the bandit data beside the same actor. At the corners of the
    action square (reward ≈ 0, reached only by the data's 10% uniform background) CQL's Q is far below
    td3's, and it is pushed down more there than at the data's best modes (±0.7, 0). Measured (mean of
    min_i Q_i over 64 states, seeds 0 / 1 / 2): corners td3 +0.35 / +0.31 / +0.27 against cql (α = 1)
    −1.07 / −0.27 / −1.01; modes td3 +0.80 / +0.81 / +0.80 against cql +0.32 / +0.44 / +0.35."""
    arrays = load_offline_dataset("offrl/bandit/multimodal-v0", reward="none").arrays
    table = arrays.to_table(CPU, ReturnsToGo(0.99))
    obs = torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    corners = torch.tensor([[0.95, 0.95], [-0.95, 0.95], [0.95, -0.95], [-0.95, -0.95]])
    modes = torch.tensor([[0.7, 0.0], [-0.7, 0.0]])
    q: dict[str, dict[str, float]] = {}
    for name in ("td3", "cql"):
        torch.manual_seed(0)
        ccls, acls = CRITICS.get(name), ACTORS.get("ddpg-bc")
        extra = {"cql_alpha": 1.0} if name == "cql" else {}
        agent = Agent(ccls(ccls.Config(hidden_dims=(64, 64), batch_size=128, **extra), 2, 2),
                      acls(acls.Config(hidden_dims=(64, 64)), 2, 2, 500))
        lrn = Learner([agent], [0], table, UpdateSchedule(critic_batch=128, actor_batch=128), CPU)
        lrn.train(500)

        def mean_q(acts: Tensor) -> float:
            o, a = obs.repeat_interleave(len(acts), 0), acts.repeat(len(obs), 1)
            return lrn.stack.map(lrn.stack.template.critic.q_for_actor, o[None], a[None])[0].mean().item()

        q[name] = {"ood": mean_q(corners), "data": mean_q(modes)}
    assert q["cql"]["ood"] < q["td3"]["ood"] - 0.5, q
    assert q["td3"]["ood"] - q["cql"]["ood"] > q["td3"]["data"] - q["cql"]["data"], q


# --------------------------------------------------------------------------- presets


def test_the_presets_carry_corls_settings() -> None:
    cql = offrl.make_config(preset="cql-locomotion")
    c = cql.critic_cfg
    assert (cql.critic, cql.actor, cql.trainer.update_order) == ("cql", "sac", "joint")
    assert (c.cql_alpha, c.num_samples, c.temperature, c.lagrange, c.max_target_backup) == (10.0, 10, 1.0, False, False)
    assert (c.hidden_dims, c.q_lr, cql.actor_cfg.lr, cql.data.normalize_obs) == ((256,) * 3, 3e-4, 3e-5, True)
    calql = offrl.make_config(preset="calql-finetune")
    c = calql.critic_cfg
    assert (calql.critic, c.cql_alpha, c.lagrange, c.max_target_backup, c.clip_diff_min) == ("calql", 1.0, False, True,
                                                                                              -200.0)
    assert (calql.online.steps, calql.online.offline_fraction, calql.actor_cfg.lr) == (1_000_000, 0.5, 1e-4)
    # CORL's TanhGaussianPolicy (cal_ql.py / cql.py): 3×256, orthogonal init, log σ offset −1, target entropy −A,
    # the log α loss at the policy's learning rate, min of the twin Q, importance-sampled penalty, no entropy backup
    for cfg, lr in ((cql, 3e-5), (calql, 1e-4)):
        a = cfg.actor_cfg
        assert (cfg.actor, a.hidden_dims, a.init, a.log_std_offset, a.target_entropy_per_dim) == (
            "sac", (256,) * 3, "orthogonal", -1.0, -1.0)
        assert (a.temperature_loss, a.temperature_lr, a.lr, a.q_agg) == ("log-alpha", lr, lr, "min")
        assert (cfg.critic_cfg.policy_density, cfg.critic_cfg.entropy_backup) == ("auto", False)
    # the CQL keys are scoped to their critic: the preset still resolves with another one
    assert offrl.make_config(preset="calql-finetune", critic="td3").critic_cfg.policy_noise == 0.2
