"""The online phase (offrl.online): replay sampling, collection (truncation vs terminal), errors, end to end."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import offrl
from offrl.data.preprocess import ActionScaler, ObsNormalizer
from offrl.data.transitions import TransitionTable
from offrl.errors import ConfigError
from offrl.online.collect import Collector
from offrl.online.replay import ReplayTable
from tests.helpers import TINY, episode, read_jsonl, run_cli, write_episodes

N_OFF = 100


def _offline(n: int = N_OFF, obs_dim: int = 1) -> TransitionTable:
    """Offline rows with reward 0 and observation = row index (to tell the rows apart)."""
    idx = torch.arange(n, dtype=torch.float32)[:, None].expand(n, obs_dim).contiguous()
    return TransitionTable(idx, torch.zeros(n, 1), torch.zeros(n), idx, torch.zeros(n))


def _fill(replay: ReplayTable, k: int) -> None:
    """k collected rows per seed, reward = 1 + seed index."""
    E = replay.members
    for _ in range(k):
        replay.append(replay.pack(observations=np.zeros((E, 1)), actions=np.zeros((E, 1)),
                                  rewards=1.0 + np.arange(E), next_observations=np.zeros((E, 1)),
                                  terminals=np.zeros(E), next_actions=np.zeros((E, 1)), has_next_action=np.zeros(E)))


def _batch_rewards(replay: ReplayTable, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(replay.members, batch, generator=g)
    return replay.gather(replay.indices(u)).rewards


def test_symmetric_sampling_draws_the_offline_share_exactly_and_each_seed_its_own_rows() -> None:
    replay = ReplayTable(_offline(), members=2, capacity=N_OFF + 50, offline_fraction=0.5)
    _fill(replay, 10)
    r = _batch_rewards(replay, 64)
    assert (r[:, :32] == 0).all()  # the first half from the offline data
    assert (r[0, 32:] == 1).all() and (r[1, 32:] == 2).all()  # the rest from the seed's own collected rows


def test_online_only_and_union_sampling() -> None:
    only = ReplayTable(_offline(), members=1, capacity=N_OFF + 50, offline_fraction=0.0)
    _fill(only, 5)
    assert (_batch_rewards(only, 256) == 1).all()
    union = ReplayTable(_offline(), members=1, capacity=N_OFF + 500, offline_fraction=1.0)
    _fill(union, 100)  # as many collected as offline rows: half of a uniform draw over the union
    share = float((_batch_rewards(union, 20000) == 1).float().mean())
    assert share == pytest.approx(0.5, abs=0.02)
    fresh = ReplayTable(_offline(), members=1, capacity=N_OFF + 5, offline_fraction=1.0)
    assert (_batch_rewards(fresh, 256) == 0).all()  # nothing collected yet: the offline data only


def test_the_ring_keeps_the_offline_rows() -> None:
    replay = ReplayTable(_offline(), members=1, capacity=N_OFF + 3, offline_fraction=1.0)
    _fill(replay, 10)
    assert replay.collected == 10 and int(replay.n_online) == 3
    assert torch.equal(replay.data[:N_OFF, 0], torch.arange(N_OFF, dtype=torch.float32))


def test_capacity_smaller_than_the_dataset_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"online.capacity=50 must hold the dataset \(100 transitions\)"):
        ReplayTable(_offline(), members=1, capacity=50, offline_fraction=1.0)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_offline_fraction_outside_the_unit_interval_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^online.offline_fraction"):
        offrl.make_config(overrides={"online.offline_fraction": value})


class _Countdown(gym.Env):
    """Observation = time step; terminates at step 2 of even episodes, truncates at step 3 of odd ones."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.t, self.episode = 0, -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        even = self.episode % 2 == 0
        return np.array([self.t], np.float32), 1.0, even and self.t == 2, (not even) and self.t == 3, {}


def test_truncation_bootstraps_and_a_terminal_does_not() -> None:
    ds = SimpleNamespace(obs_normalizer=ObsNormalizer.identity(1), action_scaler=ActionScaler(np.array([-1.0]),
                         np.array([1.0])), arrays=SimpleNamespace(episode_returns=np.array([0.0, 1.0])),
                         reward_mode="none", act_dim=1, success_key=None)
    replay = ReplayTable(_offline(), members=1, capacity=N_OFF + 20, offline_fraction=0.0)
    col = Collector(_Countdown, [0], ds, torch.device("cpu"), 1e-5)
    for _ in range(5):  # episode 0: 2 steps (terminal), episode 1: 3 steps (truncated)
        col.step(torch.zeros(1, 1), replay)
    rows = replay.gather(torch.arange(N_OFF, N_OFF + 5))
    assert rows.terminals.tolist() == [0, 1, 0, 0, 0]  # the truncation at row 4 is no terminal: it bootstraps
    assert rows.next_observations[:, 0].tolist() == [1, 2, 1, 2, 3]  # the real next state, stored before reset
    assert rows.observations[:, 0].tolist() == [0, 1, 0, 1, 2]
    assert rows.has_next_action.tolist() == [1, 0, 1, 1, 0]  # a' only inside an episode
    assert col.read_episodes()[0]["online/return_mean"] == pytest.approx(2.5)


def _pendulum_ds() -> SimpleNamespace:
    return SimpleNamespace(obs_normalizer=ObsNormalizer.identity(4), action_scaler=ActionScaler(np.array([-3.0]),
                           np.array([3.0])), arrays=SimpleNamespace(episode_returns=np.array([0.0, 1.0])),
                           reward_mode="none", act_dim=1, success_key=None)


def test_a_mujoco_collector_saved_mid_episode_continues_exactly() -> None:
    """Collector + replay state (MuJoCo integration state, TimeLimit count, generators) into a fresh collector:
    the next transitions are those of the uninterrupted collector, bit for bit."""
    ds = _pendulum_ds()
    make = lambda: gym.make("InvertedPendulum-v5")  # noqa: E731
    actions = torch.rand(40, 1, 1, generator=torch.Generator().manual_seed(0)) * 0.4 - 0.2
    a_rep = ReplayTable(_offline(obs_dim=4), 1, N_OFF + 60, 1.0)
    from offrl.data.returns import ReturnsToGo

    a = Collector(make, [3], ds, torch.device("cpu"), 1e-5, ReturnsToGo(0.99))  # Cal-QL's returns kept too
    for t in range(15):
        a.step(actions[t], a_rep)
    saved = ({"replay": a_rep.member_state(0), "collector": a.member_state(0)})
    assert saved["collector"]["env"]["env"]["kind"] == "mujoco" and saved["collector"]["episode_rows"]
    for t in range(15, 40):
        a.step(actions[t], a_rep)
    b_rep = ReplayTable(_offline(obs_dim=4), 1, N_OFF + 60, 1.0)
    b = Collector(make, [3], ds, torch.device("cpu"), 1e-5, ReturnsToGo(0.99))
    b_rep.load_member_states([saved["replay"]])
    assert b.load_member_states([saved["collector"]], b_rep) == []  # no note: the state was saved whole
    for t in range(15, 40):
        b.step(actions[t], b_rep)
    assert a.episodes[0] >= 1  # an episode begun before the save ended after it: its returns were written
    assert torch.equal(a_rep.data, b_rep.data) and a.episodes == b.episodes
    assert torch.equal(a.random_actions(), b.random_actions())  # the generators too


def test_an_environment_that_cannot_be_saved_resumes_at_a_new_episode_with_a_note() -> None:
    ds = SimpleNamespace(obs_normalizer=ObsNormalizer.identity(1), action_scaler=ActionScaler(np.array([-1.0]),
                         np.array([1.0])), arrays=SimpleNamespace(episode_returns=np.array([0.0, 1.0])),
                         reward_mode="none", act_dim=1, success_key=None)
    rep = ReplayTable(_offline(), 1, N_OFF + 20, 0.0)
    col = Collector(_Countdown, [0], ds, torch.device("cpu"), 1e-5)
    col.step(torch.zeros(1, 1), rep)  # mid-episode 0
    state = col.member_state(0)
    assert state["env"] is None
    again = Collector(_Countdown, [0], ds, torch.device("cpu"), 1e-5)
    [note] = again.load_member_states([state])
    assert "cannot be saved mid-episode" in note and "new episode" in note
    assert again.episodes == [1] and again.obs[0, 0] == 0.0 and not bool(again.prev_live[0])


def test_every_actor_declares_its_exploration() -> None:
    from offrl.actors import ACTORS

    for name in ACTORS.names():
        assert ACTORS.get(name).exploration in ("gaussian", "sample"), name


RUN = ["run", "--steps", "150", "--eval-every", "75", "--eval-episodes", "10", "--save-every", "75",
       "--set", "trainer.log_every=25", "--quiet", *TINY, "--set", "actor.cosine_decay=false"]  # IQL's fine-tuning LR


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _module_run(factory: pytest.TempPathFactory, store: Path, name: str, args: list[str]) -> Path:
    """A run shared by a module's tests, in the session's dataset store."""
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(store)
    out = factory.mktemp(name) / "run"
    proc = run_cli(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    return _module_run(tmp_path_factory, session_store, "online", RUN)


def test_online_steps_0_leaves_the_offline_run_unchanged(offline_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero"
    proc = run_cli(*RUN, "--online-steps", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for log in ("train.jsonl", "eval.jsonl"):
        assert _strip(read_jsonl(out / log)) == _strip(read_jsonl(offline_run / log))
    assert not (out / "online.json").exists()


def test_online_run_end_to_end_on_the_bandit(offline_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "online"
    proc = run_cli(*RUN, "--online-steps", "40", "--set", "online.log_every=20", "--set", "online.eval_every=20",
                   "--set", "online.start_steps=5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    train, evals = read_jsonl(out / "train.jsonl"), read_jsonl(out / "eval.jsonl")
    offline = [r for r in train if r["step"] <= 150]
    assert _strip(offline) == _strip(read_jsonl(offline_run / "train.jsonl"))  # the offline part is the same
    online = [r for r in train if r["step"] > 150]
    assert [(r["step"], r["env_step"], r["phase"]) for r in online] == [(170, 20, "online"), (190, 40, "online")]
    assert all("online/return_mean" in r and "critic/q_loss" in r for r in online)
    assert [r["step"] for r in evals] == [75, 150, 170, 190]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 190
    info = json.loads((out / "online.json").read_text())
    assert info["replay_collected_rows"] == 40 and info["offline_steps"] == 150 and info["exploration"] == "sample"


ONLINE_KILL = ["run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "100", "--eval-every", "100",
               "--eval-episodes", "10", "--save-every", "100", "--set", "trainer.log_every=50", "--online-steps",
               "400", "--set", "online.log_every=20", "--set", "online.eval_every=100", "--set",
               "online.start_steps=10", "--quiet"]


@pytest.fixture(scope="module")
def online_reference(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    return _module_run(tmp_path_factory, session_store, "online-ref", ONLINE_KILL)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_an_interrupted_online_phase_resumes_from_its_checkpoint_exactly(how: str, online_reference: Path,
                                                                        tmp_path: Path) -> None:
    """Killed (or Ctrl-C) in the online phase past its checkpoint at environment step 100: the resumed run
    continues from that checkpoint — replay, environments, generators restored — and its logs are the
    uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "offrl", *ONLINE_KILL, "--out", str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    def env_steps() -> list[int]:  # complete lines only: the run may be writing the last one
        text = (out / "train.jsonl").read_text() if (out / "train.jsonl").exists() else ""
        return [json.loads(line).get("env_step", 0) for line in text.split("\n")[:-1] if line.strip()]

    while not any(k >= 120 for k in env_steps()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=60)
    assert not (out / "summary.json").exists(), "the run finished before it could be interrupted"
    assert proc.returncode == (130 if how == "SIGINT" else -signal.SIGKILL), stderr
    resumed = run_cli("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "not used" not in resumed.stderr  # the online checkpoint itself was used, not the offline one
    for log in ("train.jsonl", "eval.jsonl"):
        assert _strip(read_jsonl(out / log)) == _strip(read_jsonl(online_reference / log))
    assert json.loads((out / "summary.json").read_text())["steps"] == 500


def test_finetune_continues_a_finished_run_and_records_its_parent(offline_run: Path, tmp_path: Path) -> None:
    before = (offline_run / "train.jsonl").read_text()
    out = tmp_path / "ft"
    proc = run_cli("finetune", str(offline_run), "--online-steps", "20", "--out", str(out),
                   "--set", "online.offline_fraction=0.5", "--set", "online.log_every=10", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (offline_run / "train.jsonl").read_text() == before  # the parent is never written
    info = json.loads((out / "online.json").read_text())
    assert info["parent"] == str(offline_run.resolve()) and info["offline_fraction"] == 0.5
    steps = [(r["step"], r.get("env_step")) for r in read_jsonl(out / "train.jsonl")]
    assert steps[-2:] == [(160, 10), (170, 20)]
    proc = run_cli("finetune", str(offline_run), "--online-steps", "20", "--out", str(out), "--quiet")
    assert proc.returncode != 0 and "not empty" in proc.stderr


def test_finetuning_a_finetuned_run_continues_its_online_phase_exactly(online_reference: Path, tmp_path: Path) -> None:
    """A parent that had 200 online steps, fine-tuned for 200 more: the copy goes on with the parent's replay,
    environments and generators, so its logs are those of one run with 400 online steps."""
    parent = tmp_path / "parent"
    args = [a if a != "400" else "200" for a in ONLINE_KILL]
    assert run_cli(*args, "--out", str(parent)).returncode == 0
    child = tmp_path / "child"
    proc = run_cli("finetune", str(parent), "--online-steps", "200", "--out", str(child), "--quiet")
    assert proc.returncode == 0, proc.stderr
    for log in ("train.jsonl", "eval.jsonl"):
        assert _strip(read_jsonl(child / log)) == _strip(read_jsonl(online_reference / log))
    info = json.loads((child / "online.json").read_text())
    assert (info["parent"], info["parent_env_steps"], info["env_steps"]) == (str(parent.resolve()), 200, 400)
    assert json.loads((child / "summary.json").read_text())["steps"] == 500
    assert json.loads((parent / "summary.json").read_text())["steps"] == 300  # the parent is never written


def test_online_phase_on_a_dataset_without_an_environment_is_one_clear_error(empty_store: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    box3 = gym.spaces.Box(-10, 10, (3,), np.float32)
    box2 = gym.spaces.Box(-1, 1, (2,), np.float32)
    write_episodes("fz/noenv/online-v0", [episode(20, 3, 2, rng, True) for _ in range(3)], box3, box2)
    cfg = offrl.make_config(actor="gaussian-awr", dataset="fz/noenv/online-v0",
                            overrides={"trainer.steps": "2", "online.steps": "5", "critic.hidden_dims": "[8]",
                                       "actor.hidden_dims": "[8]"})
    with pytest.raises(ConfigError, match=r"online.steps=5 needs an environment to collect in, but dataset "
                                          r"'fz/noenv/online-v0' has none"):
        offrl.train(cfg, tmp_path / "run")


def test_a_cosine_decayed_actor_is_refused_before_an_online_phase(tmp_path: Path) -> None:
    """IQL's cosine schedule ends at LR 0 with the offline steps: an online phase would collect with a frozen
    actor, so both ways into one say so before anything runs (IQL's own fine-tuning turns the decay off)."""
    cfg = offrl.make_config(actor="gaussian-awr", overrides={"trainer.steps": "2", "online.steps": "5",
                                                             "critic.hidden_dims": "[8]", "actor.hidden_dims": "[8]"})
    assert cfg.actor_cfg.cosine_decay  # gaussian-awr's default, IQL's offline schedule
    with pytest.raises(ConfigError, match=r"actor.cosine_decay=true decays the gaussian-awr actor's learning rate to 0 "
                                          r"over the offline steps, so the online phase \(online.steps=5\) would never "
                                          r"train the actor. Train with --set actor.cosine_decay=false"):
        offrl.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "train.jsonl").exists()
    parent = tmp_path / "parent"
    assert run_cli("run", "--steps", "4", "--eval-every", "4", "--eval-episodes", "1", "--quiet", *TINY,
                   "--out", str(parent)).returncode == 0
    proc = run_cli("finetune", str(parent), "--online-steps", "5", "--out", str(tmp_path / "ft"), "--quiet")
    assert proc.returncode == 2 and "actor.cosine_decay=true decays the gaussian-awr actor's" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "ft").exists()  # refused before copying


def test_any_group_with_a_spent_cosine_schedule_is_refused_by_name(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads the learner's parameter groups, not a config key: a critic (a plugin, here the IQL
    critic patched) whose Q group decays to 0 over the offline updates is named; a schedule long enough for
    the online phase is accepted."""
    from dataclasses import replace

    from offrl.critics.base import IQLCritic

    original = IQLCritic.param_groups
    total = {"q": 2}

    def cosine_q(self):  # type: ignore[no-untyped-def]
        groups = original(self)
        return {**groups, "q": replace(groups["q"], schedule="cosine", total_updates=total["q"])}

    monkeypatch.setattr(IQLCritic, "param_groups", cosine_q)
    over = {"trainer.steps": "2", "trainer.eval_every": "2", "trainer.eval_episodes": "1", "online.steps": "3",
            "online.eval_every": "3", "critic.hidden_dims": "[8]", "actor.hidden_dims": "[8]",
            "actor.cosine_decay": "false"}
    cfg = offrl.make_config(preset="bandit", actor="gaussian-awr", overrides=over)
    with pytest.raises(ConfigError, match=r"Parameter group 'critic/q' decays its learning rate with a cosine "
                                          r"schedule to 0 over 2 updates, and the 2 offline steps take 2 of them"):
        offrl.train(cfg, tmp_path / "run")
    total["q"] = 10  # covers the 2 offline + 3 online updates
    offrl.train(cfg, tmp_path / "ok")
    assert (tmp_path / "ok" / "online.json").exists()


def test_capacity_too_small_for_the_dataset_fails_before_training(tmp_path: Path) -> None:
    cfg = offrl.make_config(actor="gaussian-awr", overrides={"trainer.steps": "2", "online.steps": "5",
                                                             "online.capacity": "10", "critic.hidden_dims": "[8]",
                                                             "actor.hidden_dims": "[8]"})
    with pytest.raises(ConfigError, match=r"online.capacity=10 is smaller than the replay needs"):
        offrl.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "train.jsonl").exists()


def test_sweep_grids_online_keys_and_report_marks_the_online_phase(tmp_path: Path) -> None:
    """`offrl sweep --grid online.offline_fraction=…`: each cell's online phase runs with its value; the report
    records where each run's online phase starts and its learning-curve figure marks it."""
    out = tmp_path / "sweep"
    proc = run_cli("sweep", "--critics", "expectile", "--actors", "ddpg-bc", "--preset", "bandit", "--seeds", "0",
                   "--grid", "online.offline_fraction=0.5,1.0", "--set", "trainer.steps=40",
                   "--set", "trainer.eval_every=40", "--set", "trainer.eval_episodes=5", "--set", "online.steps=20",
                   "--set", "online.eval_every=10", "--workers", "2", "--out", str(out), "--no-live")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    fractions = sorted(json.loads((d / "online.json").read_text())["offline_fraction"]
                       for d in (out / "runs").iterdir())
    assert fractions == [0.5, 1.0]
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"), "--reps", "50")
    assert report.returncode == 0, report.stderr
    import pandas as pd

    runs = pd.read_csv(tmp_path / "report" / "run_scores.csv")
    assert sorted(runs["online_from"].tolist()) == [40, 40]
    evals = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert sorted(set(evals["step"])) == [40, 50, 60]  # offline evaluation, then two online ones
    if (tmp_path / "report" / "learning_curves.caption.txt").exists():  # matplotlib installed
        assert "where the online phase starts" in (tmp_path / "report" / "learning_curves.caption.txt").read_text()


@pytest.mark.parametrize("preset, critic, actor, fraction, noise", [
    ("fql-finetune", "td3", "fql", 1.0, 0.1),
    ("iql-finetune", "expectile", "gaussian-awr", 1.0, 0.1),
    ("rebrac-finetune", "td3", "ddpg-bc", 1.0, 0.2),
])
def test_finetune_presets_are_their_offline_agents_plus_fqls_online_phase(preset: str, critic: str, actor: str,
                                                                         fraction: float, noise: float) -> None:
    cfg = offrl.make_config(preset=preset)
    assert (cfg.critic, cfg.actor) == (critic, actor)
    assert (cfg.trainer.steps, cfg.online.steps, cfg.online.updates_per_step) == (1_000_000, 1_000_000, 1)
    assert cfg.online.offline_fraction == fraction and cfg.online.explore_noise == noise
    assert tuple(cfg.critic_cfg.hidden_dims) == (512, 512, 512, 512)


def test_a_finetune_preset_runs_shortened(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    proc = run_cli("run", "--preset", "iql-finetune", "--steps", "10", "--online-steps", "10", "--eval-every", "10",
                   "--set", "online.eval_every=10", "--set", "online.log_every=5", "--eval-episodes", "3",
                   "--set", "critic.hidden_dims=[16]", "--set", "actor.hidden_dims=[16]", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 20
    assert json.loads((out / "config.json").read_text())["preset"] == "iql-finetune"
