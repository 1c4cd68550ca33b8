"""Critics without V: next actions in the table, sarsa's and td3's targets by hand, the masked
no-next-action case, policy-delayed targets, gradient isolation, V estimated from the policy."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

import offrl
from offrl.actors import ACTORS
from offrl.actors.base import Actor, ActorConfig
from offrl.component import Noise, NoiseSpec, NoiseTensors
from offrl.critics import CRITICS
from offrl.critics.sarsa import SarsaConfig, SarsaCritic
from offrl.critics.td3 import TD3Config, TD3Critic
from offrl.data.dataset import load_offline_dataset
from offrl.data.transitions import Batch, next_actions_in_episodes
from offrl.errors import OfflineRLError
from offrl.learner import Agent, Learner, UpdateSchedule
from tests.helpers import episode, read_jsonl, write_episodes

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- next actions in the table


def test_next_actions_stop_at_every_episode_end() -> None:
    actions = np.arange(14, dtype=np.float32).reshape(7, 2)  # episodes [0, 3), [3, 5), [5, 7)
    nxt, has = next_actions_in_episodes(actions, np.array([0, 3, 5]))
    assert has.tolist() == [1, 1, 0, 1, 0, 1, 0]
    np.testing.assert_array_equal(nxt[[0, 1, 3, 5]], actions[[1, 2, 4, 6]])
    assert not nxt[[2, 4, 6]].any()  # no action is invented where the data has none


def test_loaded_table_has_next_actions_within_episodes(empty_store: Path) -> None:
    rng = np.random.default_rng(0)
    eps = [episode(4, 3, 2, rng, terminated=False), episode(3, 3, 2, rng, terminated=True)]
    write_episodes("test/next/a-v0", eps, gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                   gym.spaces.Box(-1, 1, (2,), np.float32))
    table = load_offline_dataset("test/next/a-v0").arrays.to_table("cpu")
    assert table.has_next_action.tolist() == [1, 1, 1, 0, 1, 1, 0]  # the truncated end (3) has none
    torch.testing.assert_close(table.next_actions[:3], table.actions[1:4])
    torch.testing.assert_close(table.next_actions[4:6], table.actions[5:7])
    batch = table.gather(torch.tensor([3, 4]))
    assert batch.has_next_action.tolist() == [0, 1] and batch.terminals.tolist() == [0, 0]


# --------------------------------------------------------------------------- sarsa


def _batch(terminals: list[float], has_next: list[float]) -> Batch:
    g = torch.Generator().manual_seed(3)
    b = len(terminals)
    return Batch(torch.randn(b, 3, generator=g), torch.rand(b, 2, generator=g) * 2 - 1, torch.randn(b, generator=g),
                 torch.randn(b, 3, generator=g), torch.tensor(terminals), torch.rand(b, 2, generator=g) * 2 - 1,
                 torch.tensor(has_next))


def _shift_targets(critic: SarsaCritic | TD3Critic) -> None:
    """Make Q̄ differ from Q (and between members), so a target read from the wrong network shows."""
    with torch.no_grad():
        for p in critic.q_target.parameters():
            p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize("q_agg", ["min", "mean"])
def test_sarsa_target_backs_up_the_dataset_next_action(q_agg: str) -> None:
    torch.manual_seed(0)
    critic = SarsaCritic(SarsaConfig(hidden_dims=(16,), q_agg=q_agg, discount=0.9), 3, 2)
    _shift_targets(critic)
    batch = _batch([0.0, 1.0, 0.0], [1.0, 0.0, 1.0])
    q_next = critic._q_all(critic.q_target, batch.next_observations, batch.next_actions)  # Q̄_i(s', a'_data)
    agg = q_next.min(0).values if q_agg == "min" else q_next.mean(0)
    y, m = critic.td_target(batch)
    torch.testing.assert_close(y, batch.rewards + 0.9 * (1 - batch.terminals) * agg)
    assert y[1] == batch.rewards[1]  # terminal: no bootstrap
    assert m.tolist() == [1.0, 1.0, 1.0]
    other = batch._replace(next_actions=-batch.next_actions)
    assert not torch.allclose(critic.td_target(other)[0][[0, 2]], y[[0, 2]])  # it is the dataset's a' that counts


def test_sarsa_drops_transitions_without_a_next_action() -> None:
    """The end of a truncated episode (non-terminal, no a'_data) leaves the loss and its gradient
    unchanged whatever its data; the loss is the mean over the others."""
    torch.manual_seed(0)
    critic = SarsaCritic(SarsaConfig(hidden_dims=(16,)), 3, 2)
    batch = _batch([0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0])  # row 1: truncated end
    loss, metrics = critic.q_loss(batch, {}, None)
    y, _ = critic.td_target(batch)
    q_all = critic._q_all(critic.q_net, batch.observations, batch.actions)
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(loss, ((q_all[:, keep] - y[keep]) ** 2).sum() / 3)
    assert metrics["critic/valid_fraction"].item() == pytest.approx(0.75)
    grads = torch.autograd.grad(loss, list(critic.q_net.parameters()))
    changed = batch._replace(rewards=batch.rewards + torch.tensor([0.0, 50.0, 0.0, 0.0]),
                             actions=batch.actions * torch.tensor([[1.0], [-1.0], [1.0], [1.0]]))
    loss2, _ = critic.q_loss(changed, {}, None)
    torch.testing.assert_close(loss2, loss)
    for a, b in zip(grads, torch.autograd.grad(loss2, list(critic.q_net.parameters()))):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- td3


class _StubActor(Actor):
    """A policy with known next actions: π̄(s) = tanh(s₀, s₁) + scale·ξ, ξ its declared noise."""

    def __init__(self, scale: float = 0.0, update_every: int = 1) -> None:
        super().__init__(ActorConfig(update_every=update_every), 3, 2, 10)
        self.scale = scale

    def next_action_noise(self, batch_size: int) -> NoiseSpec:
        return {"xi": Noise.normal(batch_size, 2)} if self.scale else {}

    @torch.no_grad()
    def next_actions(self, obs: Tensor, noise: NoiseTensors) -> Tensor:
        a = torch.tanh(obs[:, :2])
        return a + self.scale * noise["xi"] if self.scale else a


@pytest.mark.parametrize("sigma, q_agg, alpha_critic", [(0.0, "min", 0.0), (0.2, "min", 0.0), (0.0, "mean", 0.0),
                                                        (0.2, "min", 0.5)])
def test_td3_target_backs_up_through_the_actors_next_action(sigma: float, q_agg: str, alpha_critic: float) -> None:
    """y = r + γ(1 − d)[agg Q̄(s', a') − α_c·has_next·‖a' − a'_data‖²], a' = clip(π̄(s') + clip(σε, ±c), ±1)."""
    torch.manual_seed(0)
    cfg = TD3Config(hidden_dims=(16,), policy_noise=sigma, noise_clip=0.3, q_agg=q_agg, alpha_critic=alpha_critic,
                    discount=0.9)
    critic = TD3Critic(cfg, 3, 2)
    actor = _StubActor(scale=0.5)
    critic.attach_policy(actor)
    _shift_targets(critic)
    batch = _batch([0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0])
    spec = critic.update_noise(4, actor)
    assert set(spec) == ({"next.xi", "smooth"} if sigma else {"next.xi"})
    noise = {"next.xi": torch.randn(4, 2), "smooth": torch.randn(4, 2) * 2}
    a_next = (torch.tanh(batch.next_observations[:, :2]) + 0.5 * noise["next.xi"]).clamp(-1, 1)
    if sigma:
        a_next = (a_next + (sigma * noise["smooth"]).clamp(-0.3, 0.3)).clamp(-1, 1)
    q_all = critic._q_all(critic.q_target, batch.next_observations, a_next)
    q_next = q_all.min(0).values if q_agg == "min" else q_all.mean(0)
    penalty = alpha_critic * ((a_next - batch.next_actions) ** 2).sum(-1) * batch.has_next_action
    expected = batch.rewards + 0.9 * (1 - batch.terminals) * (q_next - penalty)
    torch.testing.assert_close(critic.td_target(batch, noise), expected)
    shifted = {**noise, "next.xi": noise["next.xi"] + 1.0}  # another next action, another target
    assert not torch.allclose(critic.td_target(batch, shifted)[[0, 2, 3]], expected[[0, 2, 3]])


def _learner(critic: str, actor: str, schedule: UpdateSchedule, **actor_cfg: object) -> Learner:
    from tests.test_learner import TINY_ACTOR, table

    torch.manual_seed(0)
    ccls, acls = CRITICS.get(critic), ACTORS.get(actor)
    agent = Agent(ccls(ccls.Config(hidden_dims=(16,)), 3, 2),
                  acls(acls.Config(**{**TINY_ACTOR[actor], **actor_cfg}), 3, 2, 100))
    return Learner([agent], [0], table(), schedule, CPU)


@pytest.mark.parametrize("actor", ["ddpg-bc", "fql"])
def test_td3_and_its_actor_never_move_each_other(actor: str) -> None:
    """The actor's stage leaves the critic (weights and optimiser) untouched, and the critic's stage —
    whose target runs the actor — leaves the actor untouched."""
    lrn = _learner("td3", actor, UpdateSchedule(critic_batch=32, actor_batch=32))
    batch = lrn.table.gather(torch.randint(0, 500, (1, 32)))
    for owner, other in (("actor", "critic."), ("critic", "actor.")):
        before = {k: v.clone() for k, v in lrn.stack.state.items()}
        update = lrn.updates[owner]
        noise = {n: s.draw(None, CPU).unsqueeze(0) for n, s in update.noise.items()}
        for _key, _stage, run in update.stages:
            run(batch, noise)
        assert all(torch.equal(before[k], lrn.stack.state[k]) for k in before if k.startswith(other)), owner
        assert any(not torch.equal(before[k], lrn.stack.state[k]) for k in before if k.startswith(f"{owner}."))


def test_td3_targets_move_only_when_the_actor_updates() -> None:
    """Policy delay E = 2: critic target and actor target both move in iterations 0, 2, 4 and stay in 1, 3."""
    lrn = _learner("td3", "ddpg-bc", UpdateSchedule(critic_batch=16, actor_batch=16, actor_every=2), update_every=2)
    watched = ["critic.q_target.out.weight", "actor.mean_target.out.weight", "critic.q_net.out.weight"]
    moved = []
    for _ in range(5):
        before = [lrn.stack.state[k].clone() for k in watched]
        lrn.train(1)
        moved.append([not torch.equal(b, lrn.stack.state[k]) for b, k in zip(before, watched)])
    assert [m[0] for m in moved] == [True, False, True, False, True]
    assert [m[1] for m in moved] == [True, False, True, False, True]
    assert all(m[2] for m in moved)  # the critic itself learns every iteration


def test_td3_target_rate_with_several_critic_updates_per_iteration() -> None:
    critic = TD3Critic(TD3Config(hidden_dims=(8,), updates_per_step=2, target_update_rate=0.1), 3, 2)
    critic.attach_policy(_StubActor(update_every=2))
    rates = [critic.target_rate(torch.tensor(float(c))).item() for c in range(1, 9)]
    # iterations 0..3 hold critic updates (1, 2), (3, 4), (5, 6), (7, 8); the actor updates in 0 and 2
    assert rates == pytest.approx([0.0, 0.1, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0])


@pytest.mark.parametrize("key, value", [("q_agg", "q1"), ("policy_noise", -0.1), ("alpha_critic", -1.0)])
def test_td3_rejects_bad_config(key: str, value: object) -> None:
    with pytest.raises(OfflineRLError, match=key):
        TD3Config(**{key: value})
    if key == "q_agg":
        with pytest.raises(OfflineRLError, match="q_agg.*Valid choices: mean, min"):
            SarsaConfig(q_agg=value)


# --------------------------------------------------------------------------- V from the policy


def test_v_is_q_at_the_policy_averaged_over_fixed_quadrature_points() -> None:
    torch.manual_seed(0)
    obs = torch.randn(6, 3)
    critic = SarsaCritic(SarsaConfig(hidden_dims=(16,), v_samples=3), 3, 2)
    with pytest.raises(RuntimeError, match="attach_policy"):
        critic.v(obs)
    critic.attach_policy(_StubActor())  # deterministic: one sample, V = min Q̄(s, π(s))
    torch.testing.assert_close(critic.v(obs), critic.q(obs, torch.tanh(obs[:, :2])))
    critic.attach_policy(_StubActor(scale=0.3))
    z = critic.v_noise_0  # [K, 1, A]: K fixed draws shared by every state
    assert z.shape == (3, 1, 2)
    by_hand = torch.stack([critic.q(obs, (torch.tanh(obs[:, :2]) + 0.3 * z[k]).clamp(-1, 1)) for k in range(3)]).mean(0)
    torch.testing.assert_close(critic.v(obs), by_hand)
    torch.testing.assert_close(critic.v(obs), critic.v(obs))  # a function of s: no hidden randomness
    torch.testing.assert_close(critic.advantage(obs, torch.zeros(6, 2)), critic.q(obs, torch.zeros(6, 2)) - by_hand)
    assert torch.equal(critic.implicit_weight(obs, torch.zeros(6, 2)), torch.ones(6))


def test_next_action_noise_must_be_batch_first() -> None:
    class Transposed(_StubActor):
        def next_action_noise(self, batch_size: int) -> NoiseSpec:
            return {"z": Noise.normal(5, batch_size, 2)}

    with pytest.raises(OfflineRLError, match="batch on dim 0"):
        TD3Critic(TD3Config(hidden_dims=(8,)), 3, 2).attach_policy(Transposed())


def test_td3_needs_an_actor_with_next_actions(tmp_path: Path) -> None:
    class NoNext(Actor):
        pass

    critic = TD3Critic(TD3Config(hidden_dims=(8,)), 3, 2)
    critic.attach_policy(NoNext(ActorConfig(), 3, 2, 1))
    with pytest.raises(OfflineRLError, match="does not implement next_actions"):
        critic.td_target(_batch([0.0], [1.0]), {})


def test_backup_critics_train_on_data_with_truncations(empty_store: Path, tmp_path: Path) -> None:
    """End to end on episodes that bootstrap and end both ways: sarsa reports the share it keeps."""
    rng = np.random.default_rng(0)
    eps = [episode(5, 3, 2, rng, terminated=bool(i % 2)) for i in range(8)]
    write_episodes("test/boot/a-v0", eps, gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                   gym.spaces.Box(-1, 1, (2,), np.float32))
    for critic, actor in (("sarsa", "gaussian-awr"), ("td3", "ddpg-bc")):
        cfg = offrl.make_config(critic=critic, actor=actor, dataset="test/boot/a-v0", steps=40,
                                overrides={"critic.hidden_dims": [16], "actor.hidden_dims": [16],
                                           "critic.batch_size": 32, "actor.batch_size": 32, "data.reward": "none",
                                           "trainer.log_every": 20})
        assert offrl.train(cfg, tmp_path / critic).finished
        rows = read_jsonl(tmp_path / critic / "train.jsonl")
        assert all(np.isfinite(v) for r in rows for v in r.values())
        if critic == "sarsa":  # 4 of 40 transitions are truncated ends
            assert all(0.8 < r["critic/valid_fraction"] < 1.0 for r in rows), rows
