"""PointMaze recipe: planner, controller success, Minari output, determinism, `offrl run` on it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from offrl.data.store import minari_root
from offrl.datagen.recipes import pointmaze  # noqa: E402
from offrl.datagen.recipes.maze_controller import MazeGrid  # noqa: E402

DATASET_ID = "offrl/pointmaze/umaze-v0"
STEPS = 3000


@pytest.fixture(scope="module")
def umaze_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store holding a small generated umaze dataset (seed 0)."""
    root = tmp_path_factory.mktemp("pointmaze-store")
    with minari_root(root):
        pointmaze.make(DATASET_ID, seed=0, steps=STEPS, eval_episodes=4)
    yield root


@pytest.fixture
def umaze(umaze_store: Path, monkeypatch: pytest.MonkeyPatch):
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(umaze_store))
    return minari.load_dataset(DATASET_ID)


def test_planner_shortest_path_and_coordinates() -> None:
    grid = MazeGrid(pointmaze.MAZES["umaze"].data_map())
    # The U: from the bottom-left cell around the wall to the top-left cell.
    assert grid.path((3, 1), (1, 1)) == [(3, 1), (3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    for name, maze in pointmaze.MAZES.items():
        g = MazeGrid(maze.data_map())
        for cell in g.free_cells():
            assert g.cell_of(g.cell_center(cell)) == cell, name
        dist = g.distances_to(maze.eval_goal_cell)
        assert all(dist[c] >= 0 for c in g.free_cells()), f"{name}: every free cell reaches the goal"


def test_grid_matches_gymnasium_robotics_layout() -> None:
    """Our copies of the layouts and coordinate convention are gymnasium-robotics' own."""
    from gymnasium_robotics.envs.maze import maps

    originals = {"umaze": maps.U_MAZE, "medium": maps.MEDIUM_MAZE, "large": maps.LARGE_MAZE}
    for name, maze in pointmaze.MAZES.items():
        assert maze.data_map() == originals[name]
        env = pointmaze.make_eval_env(maze)
        grid = MazeGrid(maze.data_map())
        for cell in grid.free_cells():
            np.testing.assert_allclose(grid.cell_center(cell), env.unwrapped.maze.cell_rowcol_to_xy(np.array(cell)))
        env.close()


@pytest.mark.parametrize("name", ["umaze", "medium", "large"])
def test_noisy_controller_reaches_its_goals(name: str) -> None:
    """The behaviour policy must navigate: every goal reached, many goals per budget."""
    maze = pointmaze.MAZES[name]
    episodes, stats = pointmaze.collect(maze, steps=4000, seed=1)
    assert stats.goals_abandoned == 0
    assert stats.success_rate == 1.0
    assert stats.goals_reached >= {"umaze": 30, "medium": 20, "large": 12}[name]
    assert sum(len(e.rewards) for e in episodes) == 4000


def test_dataset_is_standard_minari(umaze) -> None:
    import gymnasium as gym

    ds = umaze
    assert ds.total_steps == STEPS
    obs_space = ds.spec.observation_space
    assert isinstance(obs_space, gym.spaces.Dict)
    assert sorted(obs_space.spaces) == ["achieved_goal", "desired_goal", "observation"]
    assert [obs_space[k].shape for k in sorted(obs_space.spaces)] == [(2,), (2,), (4,)]
    assert ds.spec.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    episodes = list(ds.iterate_episodes())
    assert len(episodes) == ds.total_episodes > 20
    previous_end = None
    for k, ep in enumerate(episodes):
        T = len(ep.rewards)
        assert ep.observations["observation"].shape == (T + 1, 4)
        assert not ep.terminations.any(), "a continuing task never terminates"
        assert ep.truncations[-1] and not ep.truncations[:-1].any()
        assert set(np.unique(ep.rewards)) <= {0.0, 1.0}
        goal = ep.observations["desired_goal"]
        assert np.allclose(goal, goal[0]), "one goal per episode"
        np.testing.assert_allclose(ep.observations["achieved_goal"], ep.observations["observation"][:, :2])
        if k < len(episodes) - 1:  # each finished episode ends when its goal is reached
            assert ep.rewards[-1] == 1.0
            assert np.linalg.norm(ep.observations["achieved_goal"][-1] - goal[-1]) <= 0.45
        if previous_end is not None:  # the ball continues where it stopped
            np.testing.assert_allclose(ep.observations["observation"][0], previous_end)
        previous_end = ep.observations["observation"][-1]
    assert np.all(np.abs(np.concatenate([e.actions for e in episodes])) <= 1.0)


def test_reference_scores_and_recipe_metadata(umaze) -> None:
    import minari

    import offrl

    meta = umaze.storage.metadata
    lo, hi = meta["ref_min_score"], meta["ref_max_score"]
    assert hi > lo + 50, "the controller must beat the random policy by far on the eval env"
    assert minari.get_normalized_score(umaze, np.array([lo, hi])) == pytest.approx([0.0, 1.0])
    recipe = meta["offrl_recipe"]
    assert recipe["recipe"] == "offrl.datagen.recipes.pointmaze"
    assert "waypoint controller" in recipe["behaviour_policy"]
    assert recipe["seed"] == 0
    assert recipe["budget"] == {"steps": STEPS, "eval_episodes": 4}
    assert recipe["offrl_version"] == offrl.__version__
    assert recipe["controller_success_rate"] == 1.0


def test_eval_env_is_d4rl_maze2d(umaze) -> None:
    env = umaze.recover_environment(eval_env=True)
    assert env.spec.max_episode_steps == 300
    kwargs = env.spec.kwargs
    assert kwargs["continuing_task"] is True and kwargs["reset_target"] is False
    marked = [(i, j) for i, row in enumerate(kwargs["maze_map"]) for j, c in enumerate(row) if c == "g"]
    assert marked == [pointmaze.MAZES["umaze"].eval_goal_cell]
    grid = MazeGrid(pointmaze.MAZES["umaze"].data_map())
    goals = {grid.cell_of(env.reset(seed=s)[0]["desired_goal"]) for s in range(5)}
    assert goals == {pointmaze.MAZES["umaze"].eval_goal_cell}, "a fixed goal cell (plus position noise)"
    env.close()
    data_env = umaze.recover_environment()
    assert data_env.spec.kwargs["reset_target"] is True
    data_env.close()


def test_same_seed_same_data(empty_store: Path) -> None:
    import minari

    def arrays(dataset_id: str) -> list[np.ndarray]:
        out = []
        for ep in minari.load_dataset(dataset_id).iterate_episodes():
            out += [ep.observations[k] for k in sorted(ep.observations)] + [ep.actions, ep.rewards, ep.truncations]
        return out

    a = pointmaze.collect(pointmaze.MAZES["medium"], 600, seed=3)[0]
    b = pointmaze.collect(pointmaze.MAZES["medium"], 600, seed=3)[0]
    c = pointmaze.collect(pointmaze.MAZES["medium"], 600, seed=4)[0]
    assert all(np.array_equal(x.actions, y.actions) for x, y in zip(a, b)) and len(a) == len(b)
    assert not np.array_equal(a[0].actions, c[0].actions)
    pointmaze.make("offrl/pointmaze/medium-v0", seed=3, steps=600, eval_episodes=2)
    first = arrays("offrl/pointmaze/medium-v0")
    meta = minari.load_dataset("offrl/pointmaze/medium-v0").storage.metadata
    import shutil

    shutil.rmtree(empty_store / "offrl/pointmaze/medium-v0")
    pointmaze.make("offrl/pointmaze/medium-v0", seed=3, steps=600, eval_episodes=2)
    second = arrays("offrl/pointmaze/medium-v0")
    meta2 = minari.load_dataset("offrl/pointmaze/medium-v0").storage.metadata
    assert len(first) == len(second) and all(np.array_equal(x, y) for x, y in zip(first, second))
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (meta2["ref_min_score"], meta2["ref_max_score"])


def test_registered_without_robotics_and_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.datagen.builtins import BUILTIN_DATASETS
    from offrl.errors import OfflineRLError

    for name in ("umaze", "medium", "large"):
        spec = BUILTIN_DATASETS.get(f"offrl/pointmaze/{name}-v0")
        assert spec.requires == ("gymnasium_robotics",) and spec.extra == "maze"
        assert spec.default_budget["steps"] == 1_000_000
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # import now fails
    with pytest.raises(OfflineRLError, match=r"offrl\[maze\]"):
        pointmaze.make(DATASET_ID, steps=10, eval_episodes=1)


@pytest.mark.slow
def test_offrl_run_trains_on_generated_pointmaze(umaze_store: Path, tmp_path: Path) -> None:
    """`offrl run` on a generated maze dataset reports a normalised score."""
    out = tmp_path / "run"
    env = dict(os.environ, MINARI_DATASETS_PATH=str(umaze_store), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "offrl", "run", "--dataset", DATASET_ID, "--steps", "200",
           "--eval-every", "200", "--eval-episodes", "3", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines() if line.strip()]
    assert rows and np.isfinite(rows[-1]["normalized_score_100"])
