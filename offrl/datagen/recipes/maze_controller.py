"""Planner plus PD waypoint controller that drives the PointMaze ball to a goal.

This is the behaviour policy of D4RL's maze2d datasets, rebuilt for the
gymnasium-robotics maze layout: a breadth-first search over the free cells of
the maze grid gives, for every cell, the neighbouring cell one step closer to
the goal; the controller steers towards the centre of that cell (or, inside
the goal's cell, towards the goal itself) with a PD law

    a = kp * (waypoint - position) - kd * velocity,

clipped to the action bounds. Noise is added by the caller (the dataset recipe),
so the same controller without noise is the "expert" reference policy.

Pure numpy: no gymnasium-robotics import, so it is testable and cheap. The
cell <-> coordinate convention is gymnasium-robotics' (``Maze.cell_rowcol_to_xy``):
row ``i`` grows downwards (``y`` decreases), column ``j`` grows rightwards, the
maze is centred on the origin.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

WALL = 1
#: Four-connected moves (row, column): the ball cannot cut wall corners diagonally.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass
class MazeGrid:
    """The maze as a grid of free/wall cells with continuous-coordinate conversions."""

    maze_map: Sequence[Sequence[Any]]
    scaling: float = 1.0
    walls: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.walls = np.array([[cell == WALL for cell in row] for row in self.maze_map], dtype=bool)
        self._next: dict[tuple[int, int], np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape  # type: ignore[return-value]

    def free_cells(self) -> list[tuple[int, int]]:
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(~self.walls))]

    def cell_center(self, cell: tuple[int, int]) -> np.ndarray:
        rows, cols = self.shape
        x = (cell[1] + 0.5) * self.scaling - cols * self.scaling / 2
        y = rows * self.scaling / 2 - (cell[0] + 0.5) * self.scaling
        return np.array([x, y])

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        rows, cols = self.shape
        i = int(np.floor((rows * self.scaling / 2 - xy[1]) / self.scaling))
        j = int(np.floor((xy[0] + cols * self.scaling / 2) / self.scaling))
        return min(max(i, 0), rows - 1), min(max(j, 0), cols - 1)

    def distances_to(self, goal: tuple[int, int]) -> np.ndarray:
        """Shortest path length (in cells) from every cell to ``goal``; -1 for walls/unreachable."""
        dist = np.full(self.shape, -1, dtype=np.int64)
        dist[goal] = 0
        queue = deque([goal])
        while queue:
            i, j = queue.popleft()
            for di, dj in MOVES:
                n = (i + di, j + dj)
                if 0 <= n[0] < self.shape[0] and 0 <= n[1] < self.shape[1]:
                    if not self.walls[n] and dist[n] < 0:
                        dist[n] = dist[i, j] + 1
                        queue.append(n)
        return dist

    def next_cells(self, goal: tuple[int, int]) -> np.ndarray:
        """For each cell, the neighbour one step closer to ``goal`` (cached per goal): [rows, cols, 2]."""
        if goal not in self._next:
            dist = self.distances_to(goal)
            nxt = np.zeros(self.shape + (2,), dtype=np.int64)
            for cell in self.free_cells():
                best = cell
                for di, dj in MOVES:
                    n = (cell[0] + di, cell[1] + dj)
                    if dist[n] >= 0 and dist[n] < dist[best]:
                        best = n
                nxt[cell] = best
            self._next[goal] = nxt
        return self._next[goal]

    def path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """The cells of a shortest path from ``start`` to ``goal`` (both included)."""
        if self.distances_to(goal)[start] < 0:
            raise ValueError(f"cell {start} cannot reach {goal}")
        nxt = self.next_cells(goal)
        cells = [start]
        while cells[-1] != goal:
            cells.append(tuple(int(v) for v in nxt[cells[-1]]))  # type: ignore[arg-type]
        return cells


@dataclass
class WaypointController:
    """PD controller following the planner's next waypoint; deterministic (noise is the caller's)."""

    grid: MazeGrid
    kp: float = 10.0  # proportional gain on (waypoint - position)
    kd: float = 1.0  # damping gain on velocity
    action_low: float = -1.0
    action_high: float = 1.0

    def waypoint(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        cell, goal_cell = self.grid.cell_of(position), self.grid.cell_of(goal)
        if cell == goal_cell:
            return np.asarray(goal, dtype=np.float64)
        nxt = self.grid.next_cells(goal_cell)[cell]
        return self.grid.cell_center((int(nxt[0]), int(nxt[1])))

    def __call__(self, position: np.ndarray, velocity: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Clean action for the ball at ``position`` with ``velocity`` heading to ``goal``."""
        target = self.waypoint(position, goal)
        action = self.kp * (target - position) - self.kd * np.asarray(velocity)
        return np.clip(action, self.action_low, self.action_high)

    def act_on_obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Action from a PointMaze dict observation (``observation`` = [x, y, vx, vy])."""
        o = obs["observation"]
        return self(o[:2], o[2:4], obs["desired_goal"])
