"""Bring your own data: `offrl data import` / `offrl.data.from_arrays` (D4RL and OGBench layouts), evaluation on
any registered gymnasium environment (`--eval-env`, `offrl eval --env`), and docs/datasets.md's "Your own data"
section, run as printed."""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from offrl.data.arrays import LAYOUTS_HELP, read_arrays, recover_episodes
from offrl.data.dataset import load_offline_dataset
from offrl.data.store import dataset_dir
from offrl.errors import DatasetError
from offrl.datagen.importer import from_arrays, import_file
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _rows(n: int, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": rng.standard_normal((n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
            "rewards": rng.standard_normal(n)}


def test_d4rl_layout_without_next_observations_cuts_at_terminals_and_timeouts(empty_store: Path) -> None:
    a = _rows(20)
    a["terminals"] = np.zeros(20, bool)
    a["terminals"][4] = True  # episode 0: rows 0-4 end in a terminal state
    a["timeouts"] = np.zeros(20, bool)
    a["timeouts"][11] = True  # episode 1: rows 5-11, cut by a time limit; episode 2: rows 12-19, cut by the end
    summary = from_arrays("mine/t/d4rl-v0", **a)
    assert (summary["episodes"], summary["terminations"], summary["truncations"]) == (3, 1, 2)
    assert summary["dropped_transitions"] == 2 and summary["transitions"] == 18  # rows 11 and 19: no next state
    ds = load_offline_dataset("mine/t/d4rl-v0")
    t = ds.arrays
    assert len(t) == 18 and t.terminals.sum() == 1 and t.terminals[4] == 1
    np.testing.assert_allclose(t.observations[:5], a["observations"][:5], atol=1e-6)
    np.testing.assert_allclose(t.next_observations[:4], a["observations"][1:5], atol=1e-6)  # s' = next row's s
    np.testing.assert_allclose(t.observations[5:11], a["observations"][5:11], atol=1e-6)  # row 11 dropped
    np.testing.assert_allclose(t.next_observations[10], a["observations"][11], atol=1e-6)
    np.testing.assert_allclose(t.rewards[5:11], a["rewards"][5:11], atol=1e-6)
    assert ds.make_env is None and "no env" in ds.eval_unavailable  # no --env: trains, evaluation skipped


def test_d4rl_next_observations_keep_every_row_and_find_unmarked_cuts(empty_store: Path) -> None:
    a = _rows(12)
    nxt = np.roll(a["observations"], -1, axis=0)
    nxt[5] = 9.0  # an episode cut that no flag marks: s'_5 is not s_6
    nxt[-1] = 7.0
    summary = from_arrays("mine/t/next-v0", a["observations"], a["actions"], a["rewards"], np.zeros(12, bool),
                          next_observations=nxt)
    assert summary["transitions"] == 12 and summary["episodes"] == 2 and summary["unmarked_cuts"] == 1
    t = load_offline_dataset("mine/t/next-v0").arrays
    np.testing.assert_allclose(t.next_observations, nxt, atol=1e-6)
    assert t.terminals.sum() == 0 and t.timeouts.sum() == 2


def test_ogbench_raw_layout_final_states_and_masks() -> None:
    # OGBench's files: trajectories of 4 transitions + a final state whose action is not a transition
    a = _rows(10)
    a["terminals"] = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 1], np.float32)
    a["masks"] = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1], np.float32)  # the task is complete in state 2
    rec = recover_episodes(a)
    assert rec.layout == "ogbench" and len(rec.episodes) == 2 and rec.transitions == 8
    first = rec.episodes[0]
    np.testing.assert_allclose(first.observations, a["observations"][:5])  # s0..s4: T + 1 observations
    assert first.terminations.tolist() == [False, False, True, False]  # terminal state inside, the episode goes on
    assert first.truncations.tolist() == [False, False, False, True]
    compact = {**a, "valids": 1 - a["terminals"], "terminals": np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1])}
    same = recover_episodes(compact)  # ogbench.load_dataset(compact_dataset=True): valids decide
    assert [e.observations.tolist() for e in same.episodes] == [e.observations.tolist() for e in rec.episodes]


def test_ogbench_regular_layout() -> None:
    a = _rows(8)
    a["next_observations"] = a["observations"] + 1.0
    a["terminals"] = np.array([0, 0, 0, 1, 0, 0, 0, 1])  # the last transition of each trajectory
    a["masks"] = np.ones(8)
    rec = recover_episodes(a, "ogbench")
    assert [len(e.rewards) for e in rec.episodes] == [4, 4]
    np.testing.assert_allclose(rec.episodes[1].observations[-1], a["next_observations"][7])
    assert rec.terminations == 0 and rec.truncations == 2


def test_files_hdf5_and_folders(tmp_path: Path, empty_store: Path) -> None:
    import h5py

    a = _rows(30)
    a["terminals"] = np.zeros(30, bool)
    a["terminals"][[9, 19, 29]] = True
    with h5py.File(tmp_path / "d.hdf5", "w") as h:
        for k, v in a.items():
            h[k] = v
        h.create_group("infos")["qpos"] = np.zeros((30, 2))  # groups (D4RL's infos/) are not read
    (tmp_path / "npy").mkdir()
    for k, v in a.items():
        np.save(tmp_path / "npy" / f"{k}.npy", v)
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "part0.npz", **{k: v[:15] for k, v in a.items()})  # ends mid-episode: a cut
    np.savez(tmp_path / "npz" / "part1.npz", **{k: v[15:] for k, v in a.items()})
    h5 = import_file(tmp_path / "d.hdf5", "mine/t/h5-v0")
    npy = import_file(tmp_path / "npy", "mine/t/npy-v0")
    assert h5["episodes"] == npy["episodes"] == 3 and h5["transitions"] == npy["transitions"] == 30
    arrays, ends = read_arrays(tmp_path / "npz")
    assert ends.tolist() == [14, 29]
    parts = import_file(tmp_path / "npz", "mine/t/npz-v0")
    assert parts["episodes"] == 4 and parts["dropped_transitions"] == 1  # row 14: its next state is in the next file


@pytest.mark.parametrize("change, key", [
    (lambda a: a.pop("rewards"), "'rewards' is missing"),
    (lambda a: a.update(actions=a["actions"][:5]), "'actions' has 5 rows but observations have 20"),
    (lambda a: a.update(observations=a["observations"][:, 0]), r"'observations' has shape \(20,\)"),
    (lambda a: a.update(terminals=np.full(20, 0.5)), "'terminals' holds 0.5 at row 0"),
    (lambda a: a.update(timeouts=np.zeros((20, 2))), r"'timeouts' has shape \(20, 2\)"),
    (lambda a: a["rewards"].__setitem__(3, np.nan), r"'rewards' holds NaN/inf \(first at row 3\)"),
    (lambda a: a.update(masks=np.ones(20), timeouts=np.zeros(20)), "ambiguous: give the layout"),
    (lambda a: a.pop("terminals"), "'terminals' is missing"),
])
def test_bad_input_is_one_error_naming_the_key_and_the_valid_layouts(change, key: str) -> None:
    a = {**_rows(20), "terminals": np.zeros(20, bool)}
    change(a)
    with pytest.raises(DatasetError, match=key) as e:
        recover_episodes(a, source="f.npz")
    assert str(e.value).startswith("f.npz: ") and LAYOUTS_HELP in str(e.value)


def test_ids_spaces_and_replacing(empty_store: Path) -> None:
    a = {**_rows(10), "terminals": np.ones(10, bool)}
    with pytest.raises(DatasetError, match="reserved for offrl's built-in datasets.*'mine/x-v0'"):
        from_arrays("offrl/x-v0", **a)
    from_arrays("mine/x-v0", **a)
    with pytest.raises(DatasetError, match="already in the local store; add --force"):
        from_arrays("mine/x-v0", **a)
    from_arrays("mine/x-v0", **a, replace=True)
    with pytest.raises(DatasetError, match="'CartPole-v1' does not match the data: its action space is Discrete"):
        from_arrays("mine/y-v0", **a, env="CartPole-v1")
    with pytest.raises(DatasetError, match=r"'Pendulum-v1' does not match the data: its action space is Box\(-2.0, "
                                           r"2.0, \(1,\), float32\), the data's actions are 2 continuous values"):
        from_arrays("mine/y-v0", **a, env="Pendulum-v1")
    with pytest.raises(DatasetError, match="'offrl/MultimodalBandit-v0' does not match the data of arrays .*: its "
                                           "observations have 2 values .*the data's have 3"):
        from_arrays("mine/y-v0", **a, env="offrl/MultimodalBandit-v0")
    wide = {**a, "actions": a["actions"] * 3.0}  # no environment: bounded by the data's own range
    from_arrays("mine/wide-v0", **wide)
    ds = load_offline_dataset("mine/wide-v0")
    np.testing.assert_allclose(ds.action_space.low, wide["actions"].min(0), rtol=1e-5)
    assert np.abs(ds.arrays.actions).max() <= 1.0
    with pytest.raises(DatasetError, match="both reference scores"):
        from_arrays("mine/z-v0", **a, ref_min_score=0.0)


def _bandit_npz(path: Path, n: int = 600) -> None:
    from offrl.datagen.recipes.bandit import behaviour_actions
    from offrl.envs import bandit

    rng = np.random.default_rng(1)
    actions = behaviour_actions(rng, n)
    np.savez(path, observations=rng.uniform(-1, 1, (n, 2)).astype(np.float32), actions=actions,
             rewards=bandit.bandit_reward(actions), terminals=np.ones(n, bool))


def test_cli_import_train_on_another_env_and_evaluate_without_the_dataset(tmp_path: Path, empty_store: Path) -> None:
    _bandit_npz(tmp_path / "b.npz")
    r = run_cli("data", "import", str(tmp_path / "b.npz"), "--id", "mine/b-v0", "--ref-min", "0.14", "--ref-max", "1")
    assert r.returncode == 0, r.stderr
    assert "600 episodes, 600 transitions, 600 terminations, 0 truncations" in r.stdout
    r = run_cli("data", "import", str(tmp_path / "b.npz"), "--id", "mine/b-v0")
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    run = tmp_path / "run"
    r = run_cli("run", "--dataset", "mine/b-v0", "--eval-env", "offrl/MultimodalBandit-v0", "--actor", "ddpg-bc",
                "--steps", "200", "--eval-every", "200", "--eval-episodes", "20", "--set", "critic.hidden_dims=[32,32]",
                "--set", "actor.hidden_dims=[32,32]", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    logged = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert logged["normalized_score_100"] is not None
    bad = run_cli("run", "--dataset", "mine/b-v0", "--eval-env", "Pendulum-v1", "--steps", "5", "--out",
                  str(tmp_path / "bad"), "--quiet")
    assert bad.returncode == 2 and "'Pendulum-v1' does not match dataset 'mine/b-v0': its observations have 3" in bad.stderr
    shutil.rmtree(dataset_dir("mine/b-v0"))  # evaluation needs no dataset
    r = run_cli("eval", str(run), "--episodes", "20", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["normalized_score_100"] == pytest.approx(logged["normalized_score_100"])
    r = run_cli("eval", str(run), "--env", "offrl/MultimodalBandit-v0", "--episodes", "20", "--json")
    assert json.loads(r.stdout)["return_mean"] == pytest.approx(logged["return_mean"])
    r = run_cli("eval", str(run), "--env", "MountainCarContinuous-v0")
    assert r.returncode == 2 and "observations have 2 values" not in r.stderr and "actions have 1 values" in r.stderr


def _section() -> str:
    text = (ROOT / "docs" / "datasets.md").read_text()
    return text[text.index("## Your own data"):text.index("## Using downloaded Minari datasets instead")]


def test_the_docs_section_runs_as_printed(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/datasets.md, "Your own data": the python block, then every command of the bash block."""
    section = _section()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/datasets.md", "exec"), {"__name__": "__docs__"})
    assert (tmp_path / "my_data.npz").is_file()
    assert load_offline_dataset("mine/bandit/py-v0").make_env is not None
    for line in re.sub(r"\\\n\s*", " ", commands).strip().splitlines():
        tokens = shlex.split(line, comments=True)
        assert tokens[0] == "offrl"
        r = run_cli(*tokens[1:])
        assert r.returncode == 0, f"{line}: {r.stderr}"
    score = json.loads((tmp_path / "runs/mine/eval.jsonl").read_text().splitlines()[-1])["normalized_score_100"]
    assert score > 50  # ddpg-bc on the bandit's modes: a good mode, not the midpoint
