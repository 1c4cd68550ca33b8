"""Recipes for ``offrl/pointmaze/{umaze,medium,large}-v0``: D4RL's maze2d, regenerated.

Why regenerate: D4RL's maze2d datasets are the standard sparse-reward,
goal-conditioned navigation benchmark, and a machine without internet cannot
download Minari's conversions. The recipe is D4RL's (and Minari's
``D4RL/pointmaze/*``): the ball navigates to a sequence of random goals in a
continuing task (``continuing_task=True, reset_target=True``: the environment
draws a new goal, uniformly over the free cells plus +-0.25 noise, as soon as
one is reached). The behaviour policy is :mod:`maze_controller` (BFS planner
+ PD waypoint controller) with Gaussian action noise (std 0.5), clipped to the
action bounds. Each goal is one episode: it ends with a *truncation* when the
goal is reached (the task itself never terminates), and the next episode starts
where the ball stands, with the new goal. A goal not reached within the
evaluation horizon is abandoned (truncation, environment reset).

Rewards are sparse (1 within 0.45 of the goal). Observations are dicts
(``achieved_goal``, ``desired_goal``, ``observation``) that offrl flattens in
that alphabetical order. The evaluation environment stored in the dataset is
D4RL maze2d's: one fixed goal cell per maze (D4RL's), random start cells,
goal kept when reached (returns count the steps spent at the goal), 300 / 600
/ 800 steps. Reference scores are measured on exactly that environment: a
uniformly random policy (``ref_min_score``) and the noiseless controller
(``ref_max_score``).
"""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from offrl.data.metadata import REWARD_MODE
from offrl.datagen.recipes.maze_controller import MazeGrid, WaypointController
from offrl.errors import OfflineRLError
from offrl.datagen.progress import recipe_progress

NOISE_STD = 0.5  # D4RL maze2d's action noise
EXTRA = "maze"
DEFAULT_BUDGET: dict[str, Any] = {"steps": 1_000_000, "eval_episodes": 100}
QUICK_BUDGET: dict[str, Any] = {"steps": 5_000, "eval_episodes": 5}

G = "g"  # gymnasium-robotics' goal-cell marker


@dataclass(frozen=True)
class MazeSpec:
    """One maze: its gymnasium-robotics id, layout, D4RL evaluation goal cell and horizon."""

    name: str
    env_id: str
    maze_map: tuple[tuple[int, ...], ...]
    eval_goal_cell: tuple[int, int]  # (row, column) of D4RL maze2d's fixed goal
    eval_steps: int  # D4RL maze2d's episode length

    @property
    def dataset_id(self) -> str:
        return f"offrl/pointmaze/{self.name}-v0"

    def data_map(self) -> list[list[Any]]:
        return [list(row) for row in self.maze_map]

    def eval_map(self) -> list[list[Any]]:
        """The layout with the single goal cell marked: every other free cell is a start cell."""
        m = self.data_map()
        m[self.eval_goal_cell[0]][self.eval_goal_cell[1]] = G
        return m


# Layouts of gymnasium_robotics.envs.maze.maps (U_MAZE, MEDIUM_MAZE, LARGE_MAZE),
# copied so that the recipes register without gymnasium-robotics installed.
MAZES: dict[str, MazeSpec] = {
    "umaze": MazeSpec(
        "umaze",
        "PointMaze_UMaze-v3",
        ((1, 1, 1, 1, 1), (1, 0, 0, 0, 1), (1, 1, 1, 0, 1), (1, 0, 0, 0, 1), (1, 1, 1, 1, 1)),
        (1, 1),
        300,
    ),
    "medium": MazeSpec(
        "medium",
        "PointMaze_Medium-v3",
        (
            (1, 1, 1, 1, 1, 1, 1, 1),
            (1, 0, 0, 1, 1, 0, 0, 1),
            (1, 0, 0, 1, 0, 0, 0, 1),
            (1, 1, 0, 0, 0, 1, 1, 1),
            (1, 0, 0, 1, 0, 0, 0, 1),
            (1, 0, 1, 0, 0, 1, 0, 1),
            (1, 0, 0, 0, 1, 0, 0, 1),
            (1, 1, 1, 1, 1, 1, 1, 1),
        ),
        (6, 6),
        600,
    ),
    "large": MazeSpec(
        "large",
        "PointMaze_Large-v3",
        (
            (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
            (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1),
            (1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1),
            (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1),
            (1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1),
            (1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1),
            (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1),
            (1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1),
            (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        ),
        (7, 9),
        800,
    ),
}


def import_robotics() -> Any:
    """Import gymnasium-robotics and register its maze ids, or fail naming the extra."""
    import gymnasium as gym

    try:
        # it prints an unrelated Adroit notice (to stderr) on import
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics
    except ImportError:
        raise OfflineRLError(
            "The PointMaze datasets need gymnasium-robotics: `pip install 'offrl[maze]'` "
            "(or `pip install gymnasium-robotics`)."
        ) from None
    gym.register_envs(gymnasium_robotics)
    return gymnasium_robotics


def maze_for(dataset_id: str) -> MazeSpec:
    for maze in MAZES.values():
        if maze.dataset_id == dataset_id:
            return maze
    from offrl.errors import unknown

    raise unknown("PointMaze dataset", dataset_id, [m.dataset_id for m in MAZES.values()])


def make_data_env(maze: MazeSpec, steps: int) -> Any:
    """The collection environment: continuing task, a new random goal whenever one is reached."""
    import gymnasium as gym

    import_robotics()
    return gym.make(
        maze.env_id,
        maze_map=maze.data_map(),
        continuing_task=True,
        reset_target=True,
        max_episode_steps=int(steps),
    )


def make_eval_env(maze: MazeSpec) -> Any:
    """D4RL maze2d's evaluation environment: fixed goal, random start, goal kept when reached."""
    import gymnasium as gym

    import_robotics()
    return gym.make(
        maze.env_id,
        maze_map=maze.eval_map(),
        continuing_task=True,
        reset_target=False,
        max_episode_steps=maze.eval_steps,
    )


def controller_for(maze: MazeSpec) -> WaypointController:
    return WaypointController(MazeGrid(maze.data_map()))


@dataclass
class CollectionStats:
    """How well the behaviour policy navigated while collecting."""

    goals_reached: int
    goals_abandoned: int

    @property
    def success_rate(self) -> float:
        total = self.goals_reached + self.goals_abandoned
        return self.goals_reached / total if total else float("nan")


class _Episode:
    """Accumulates one episode's dict observations (T+1), actions, rewards and flags."""

    def __init__(self, first_obs: dict[str, np.ndarray]) -> None:
        self.obs: dict[str, list[np.ndarray]] = {k: [np.array(v)] for k, v in first_obs.items()}
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []

    def add(self, action: np.ndarray, reward: float, next_obs: dict[str, np.ndarray]) -> None:
        self.actions.append(action)
        self.rewards.append(float(reward))
        for k, v in next_obs.items():
            self.obs[k].append(np.array(v))

    def buffer(self, terminated: bool) -> Any:
        from offrl.datagen.writer import episode_buffer

        T = len(self.rewards)
        terms = np.zeros(T, bool)
        truncs = np.zeros(T, bool)
        (terms if terminated else truncs)[-1] = True
        obs = {k: np.stack(v) for k, v in sorted(self.obs.items())}
        return episode_buffer(obs, np.stack(self.actions), np.asarray(self.rewards), terms, truncs)


def collect(
    maze: MazeSpec,
    steps: int,
    seed: int,
    noise: float = NOISE_STD,
    on_step: Callable[[int], None] | None = None,
) -> tuple[list[Any], CollectionStats]:
    """Run the noisy controller for ``steps`` steps; one episode per goal (see module docstring)."""
    env = make_data_env(maze, steps)
    unwrapped = env.unwrapped
    controller = controller_for(maze)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    episodes: list[Any] = []
    reached = abandoned = 0

    obs, _ = env.reset(seed=seed)
    episode, length = _Episode(obs), 0
    for t in range(steps):
        action = controller.act_on_obs(obs) + noise * rng.standard_normal(2)
        action = np.clip(action, low, high).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        length += 1
        episode.add(action, reward, next_obs)  # next_obs still carries the goal just reached
        success = bool(info.get("success", False))
        stuck = not success and length >= maze.eval_steps
        if success or terminated or truncated or stuck or t == steps - 1:
            episodes.append(episode.buffer(terminated=bool(terminated)))
            reached += int(success)
            abandoned += int(stuck)
            if terminated or truncated or stuck:
                next_obs, _ = env.reset()
            else:  # the environment has drawn the next goal; the ball stays where it is
                next_obs = dict(next_obs, desired_goal=np.array(unwrapped.goal, dtype=np.float64))
            episode, length = _Episode(next_obs), 0
        obs = next_obs
        if on_step is not None and (t + 1) % 1000 == 0:
            on_step(1000)
    env.close()
    return episodes, CollectionStats(reached, abandoned)


def evaluate(env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray], episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``act`` over ``episodes`` episodes of ``env`` (reset seeds seed, seed+1, ...)."""
    returns = np.zeros(episodes)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns[k] += reward
            done = terminated or truncated
    return returns


def reference_scores(maze: MazeSpec, episodes: int, seed: int) -> tuple[float, float]:
    """(uniform random policy, noiseless controller) mean returns on the evaluation environment."""
    env = make_eval_env(maze)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high

    def random_policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        return rng.uniform(low, high).astype(np.float32)

    controller = controller_for(maze)
    random_returns = evaluate(env, random_policy, episodes, seed)
    expert_returns = evaluate(env, lambda o: controller.act_on_obs(o).astype(np.float32), episodes, seed)
    env.close()
    return float(random_returns.mean()), float(expert_returns.mean())


def make(
    dataset_id: str = "offrl/pointmaze/umaze-v0",
    seed: int = 0,
    steps: int = DEFAULT_BUDGET["steps"],
    eval_episodes: int = DEFAULT_BUDGET["eval_episodes"],
    noise: float = NOISE_STD,
    replace: bool = False,
) -> Path:
    """Write ``dataset_id`` (``steps`` transitions), deterministic for ``seed``; return its directory.

    ``replace`` swaps a new dataset in for an existing one once it is complete.
    """
    import offrl
    from offrl.datagen.writer import write_minari_dataset

    maze = maze_for(dataset_id)
    import_robotics()
    if steps < 1 or eval_episodes < 1:
        raise OfflineRLError(f"steps and eval_episodes must be positive (got {steps}, {eval_episodes}).")
    start = time.perf_counter()
    with recipe_progress() as progress:
        task = progress.add_task(f"{dataset_id}: controller", total=steps)
        episodes, stats = collect(maze, steps, seed, noise, on_step=lambda n: progress.advance(task, n))
        progress.update(task, completed=steps)
        task = progress.add_task(f"{dataset_id}: reference scores ({eval_episodes} episodes x 2)", total=None)
        ref_min, ref_max = reference_scores(maze, eval_episodes, seed + 1_000_003)
        progress.update(task, total=1, completed=1)
    recipe = {
        "recipe": "offrl.datagen.recipes.pointmaze",
        "behaviour_policy": (
            f"BFS planner + PD waypoint controller (kp=10, kd=1), Gaussian action noise std {noise}, "
            "clipped to the action bounds; goals resampled uniformly over free cells when reached"
        ),
        "seed": seed,
        "budget": {"steps": steps, "eval_episodes": eval_episodes},
        "offrl_version": offrl.__version__,
        "maze": maze.name,
        "episode_split": "one episode per goal: truncation when reached (or abandoned after "
        f"{maze.eval_steps} steps); never terminated",
        "goals_reached": stats.goals_reached,
        "goals_abandoned": stats.goals_abandoned,
        "controller_success_rate": stats.success_rate,
        "ref_min_policy": f"uniform random actions, mean of {eval_episodes} evaluation episodes",
        "ref_max_policy": f"noiseless waypoint controller, mean of {eval_episodes} evaluation episodes",
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    data_env, eval_env = make_data_env(maze, steps), make_eval_env(maze)
    path = write_minari_dataset(
        dataset_id,
        episodes,
        env=data_env.spec,
        eval_env=eval_env.spec,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        algorithm_name="offrl maze2d waypoint controller (D4RL recipe)",
        description=f"PointMaze {maze.name}: D4RL maze2d recipe, {steps} steps of a noisy waypoint controller",
        extra_metadata={"offrl_recipe": recipe, "num_episodes_average_score": eval_episodes, REWARD_MODE: "none"},
        requirements=["gymnasium-robotics>=1.4"],
        replace=replace,
    )
    data_env.close()
    eval_env.close()
    return path

