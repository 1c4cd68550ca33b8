"""Decoupled data (episode sub-sampling, validation split) and two-phase training (docs/bottleneck.md)."""
from __future__ import annotations

import numpy as np
import pytest

from offrl.config import resolve
from offrl.data.split import split_dataset, split_episodes, take_episodes
from offrl.data.transitions import TransitionArrays
from offrl.errors import ConfigError, DatasetError, OfflineRLError
from offrl.trainer.phases import update_schedule


def arrays(lengths: list[int]) -> TransitionArrays:
    """Episodes whose transitions carry their episode index in every field (easy to check)."""
    ep = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)]).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n = len(ep)
    return TransitionArrays(observations=ep[:, None].repeat(2, 1), actions=ep[:, None].astype(np.float32),
                            rewards=ep.astype(np.float32), next_observations=ep[:, None].repeat(2, 1),
                            terminals=np.zeros(n, np.float32), timeouts=np.zeros(n, bool), episode_starts=starts,
                            episode_returns=np.asarray(lengths, np.float64))


def test_sizes_nesting_and_disjoint_validation() -> None:
    s = split_episodes(200, value_fraction=0.25, policy_fraction=0.5, validation_fraction=0.1, seed=3)
    assert len(s.validation) == 20 and len(s.value) == 45 and len(s.policy) == 90  # 180 training episodes
    train = set(range(200)) - set(s.validation.tolist())
    assert set(s.value.tolist()) <= train and set(s.policy.tolist()) <= train
    assert list(s.value) == sorted(s.value) and len(set(s.value.tolist())) == 45
    assert set(s.value.tolist()) != set(s.policy.tolist()[:45])  # their own draws, not one shared ordering
    bigger = split_episodes(200, value_fraction=0.5, policy_fraction=1.0, validation_fraction=0.1, seed=3)
    assert np.array_equal(bigger.validation, s.validation)  # the held-out set does not move with the fractions
    assert set(s.value.tolist()) < set(bigger.value.tolist())  # smaller shares are nested in larger ones
    assert sorted(bigger.policy.tolist()) == sorted(train)


def test_draws_are_deterministic_and_seeded() -> None:
    a = split_episodes(100, 0.3, 0.3, 0.2, seed=0)
    b = split_episodes(100, 0.3, 0.3, 0.2, seed=0)
    c = split_episodes(100, 0.3, 0.3, 0.2, seed=1)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("validation", "value", "policy"))
    assert not np.array_equal(a.validation, c.validation)


def test_at_least_one_episode_and_a_clear_error_when_nothing_is_left() -> None:
    assert len(split_episodes(5, 0.01, 0.01).value) == 1
    with pytest.raises(DatasetError, match="validation_fraction"):
        split_episodes(1, validation_fraction=0.5)


def test_take_episodes_keeps_whole_episodes_and_their_boundaries() -> None:
    src = arrays([3, 1, 4, 2])
    out = take_episodes(src, np.array([0, 2]))
    assert out.rewards.tolist() == [0, 0, 0, 2, 2, 2, 2]
    assert out.episode_starts.tolist() == [0, 3] and out.episode_returns.tolist() == [3, 4]
    _, has_next = out.next_actions()
    assert has_next.tolist() == [1, 1, 0, 1, 1, 1, 0]  # no next action across the cut
    assert take_episodes(src, np.arange(4)) is src


def test_split_dataset_tables(minari_store: object) -> None:
    class Data:
        value_fraction, policy_fraction, validation_fraction, split_seed = 0.5, 0.25, 0.2, 0

    split = split_dataset(arrays([2] * 50), Data())
    assert split.decoupled and split.summary()["value_transitions"] == 40 and split.summary()["policy_episodes"] == 10
    tables = split.tables("cpu")
    assert set(tables) == {"critic", "actor"} and len(tables["critic"]) == 40 and len(tables["actor"]) == 20
    val = set(split.validation.rewards.tolist())
    assert not val & (set(split.value.rewards.tolist()) | set(split.policy.rewards.tolist()))

    class Full(Data):
        value_fraction = policy_fraction = 1.0
        validation_fraction = 0.0

    whole = split_dataset(arrays([2] * 50), Full())
    assert not whole.decoupled and len(whole.tables("cpu")) == 100  # one table, shared: the default run as before


@pytest.mark.parametrize("key,value", [("value_fraction", 0), ("policy_fraction", 1.5), ("validation_fraction", 1)])
def test_bad_fractions_are_clear_errors(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"data.{key}"):
        resolve([{"data": {key: value}}])


def test_two_phase_schedule() -> None:
    cfg = resolve([{"critic": {"name": "sarsa"}, "actor": {"name": "ddpg-bc"},
                    "trainer": {"steps": 100, "phases": "two-phase", "critic_steps": 30}}])
    s = update_schedule(cfg)
    assert (s.critic_until, s.actor_from) == (30, 30)
    assert s.due(29) == (True, False) and s.due(30) == (False, True)
    half = update_schedule(resolve([{"trainer": {"steps": 100, "phases": "two-phase"}}]))
    assert half.critic_until == 50
    assert update_schedule(resolve([{}])).critic_until == 0  # joint


def test_two_phase_is_refused_for_critics_that_back_up_through_the_actor() -> None:
    with pytest.raises(ConfigError, match="critic 'td3' backs up through the actor"):
        resolve([{"critic": {"name": "td3"}, "trainer": {"steps": 100, "phases": "two-phase"}}])
    resolve([{"critic": {"name": "td3"}, "trainer": {"steps": 100}}])  # joint training is fine


@pytest.mark.parametrize("trainer,match", [
    ({"phases": "twophase"}, "two-phase"),
    ({"phases": "two-phase", "critic_steps": 100, "steps": 100}, "0 < trainer.critic_steps < trainer.steps"),
    ({"critic_steps": 10}, "trainer.phases=joint"),
])
def test_bad_phase_settings_are_clear_errors(trainer: dict, match: str) -> None:
    with pytest.raises(OfflineRLError, match=match):
        resolve([{"trainer": {"steps": 1000, **trainer}}])
