"""One OGBench "play" episode: the scripted plan oracles doing random sub-tasks, seeded per episode.

OGBench's play datasets (``data_gen_scripts/generate_manipspace.py`` with the
``commands.sh`` settings: 1,000 episodes of 1,001 steps, ``PlanOracle`` with
noise 0.1 and smoothing 0.5) come from oracles that follow a pre-computed,
noise-perturbed plan for one sub-task (move a cube, press a button, open the
drawer or window), then the collection environment draws the next sub-task.
The oracles ship in the ``ogbench`` wheel and are imported from it.

What offrl adds is seeding: OGBench's script draws from numpy's global RNG
without a seed. Here every episode has its own seeds, derived from (seed,
environment, episode index, attempt) only, so an episode is the same whichever
worker process makes it, and in whatever order -- which makes parallel and
resumed generation reproducible. Each episode records observations s_0..s_T,
actions a_0..a_{T-1}, and for every observation the simulator's ``qpos`` and
the button states (what single-task relabelling reads).

Scene episodes get OGBench's health check: an episode where the cube leaves
the table's visible area (too far right, or far left outside the drawer) is
discarded and redone with the next attempt's seeds.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.envs.ogbench import ManipEnv, make_collection_env, quiet

NOISE = 0.1  # PlanOracle's plan noise (OGBench's default for play data)
NOISE_SMOOTHING = 0.5  # Gaussian smoothing of that noise over time
MAX_ATTEMPTS = 50  # scene health-check retries before giving up (OGBench retries forever)


@dataclass
class Episode:
    """Arrays of one episode (T transitions) plus how the oracle fared."""

    observations: np.ndarray  # [T+1, obs_dim] float32
    actions: np.ndarray  # [T, 5] float32, as sent to the environment (clipped to [-1, 1])
    qpos: np.ndarray  # [T+1, nq] qpos of each observation's state (float32 once returned by play)
    button_states: np.ndarray  # [T+1, n_buttons] int8 (zero columns without buttons)
    subtasks_done: int  # sub-task plans the oracle finished
    subtasks_succeeded: int  # ... of which the environment counted as achieved
    attempts: int  # 1 + discarded (unhealthy) scene episodes


def episode_seeds(env_name: str, seed: int, index: int, attempt: int) -> tuple[int, int, int]:
    """(environment reset seed, numpy global seed for the oracles, seed of the episode's own draws)."""
    ss = np.random.SeedSequence([zlib.crc32(env_name.encode()), seed, index, attempt])
    a, b, c = (int(x) for x in ss.generate_state(3))
    return a, b, c


def p_stack(env: ManipEnv, rng: np.random.Generator) -> float:
    """Probability of stacking the target cube on another (OGBench's per-episode draw)."""
    if env.name == "cube-single":
        return 0.0
    if env.name == "cube-double":
        return float(rng.uniform(0.0, 0.25))
    return 0.5  # scene (puzzle ignores it)


class OracleEpisodes:
    """Builds the collection environment and its oracles once, then plays episodes on request."""

    def __init__(self, env: ManipEnv, length: int) -> None:
        self.env_spec = env
        self.length = length
        self.env = make_collection_env(env, max_episode_steps=length + 1)
        self.oracles = self._oracles()

    def _oracles(self) -> dict[str, Any]:
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        kw = dict(env=self.env, noise=NOISE, noise_smoothing=NOISE_SMOOTHING)
        family = self.env_spec.family
        if family == "cube":
            return {"cube": CubePlanOracle(**kw)}
        if family == "puzzle":
            return {"button": ButtonPlanOracle(gripper_always_closed=True, **kw)}
        return {
            "cube": CubePlanOracle(**kw),
            "button": ButtonPlanOracle(**kw),
            "drawer": DrawerPlanOracle(**kw),
            "window": WindowPlanOracle(**kw),
        }

    def play(self, seed: int, index: int) -> Episode:
        """Episode ``index`` of the dataset with ``seed``; numpy's global RNG is restored afterwards."""
        saved = np.random.get_state()
        try:
            for attempt in range(MAX_ATTEMPTS):
                ep = self._play_once(*episode_seeds(self.env_spec.name, seed, index, attempt))
                ep.attempts = attempt + 1
                if self.env_spec.family != "scene" or healthy_scene(ep.qpos):
                    ep.qpos = ep.qpos.astype(np.float32)  # stored like OGBench's files
                    return ep
            raise RuntimeError(f"{self.env_spec.name} episode {index}: no healthy episode in {MAX_ATTEMPTS} attempts")
        finally:
            np.random.set_state(saved)

    def _play_once(self, reset_seed: int, oracle_seed: int, draw_seed: int) -> Episode:
        env, T = self.env, self.length
        np.random.seed(oracle_seed)  # the oracles draw their plans from numpy's global RNG
        rng = np.random.default_rng(draw_seed)
        with quiet():
            ob, info = env.reset(seed=reset_seed)
        stack = p_stack(self.env_spec, rng)
        agent = self.oracles[info["privileged/target_task"]]
        agent.reset(ob, info)
        obs = np.empty((T + 1, ob.shape[0]), np.float32)
        acts = np.empty((T, 5), np.float32)
        qpos = np.empty((T + 1, env.unwrapped._data.qpos.shape[0]), np.float64)  # float32 once checked
        has_buttons = "button_states" in info
        buttons = np.zeros((T + 1, len(info["button_states"]) if has_buttons else 0), np.int8)
        obs[0] = ob
        done_tasks = succeeded = 0
        for t in range(T):
            action = np.clip(np.asarray(agent.select_action(ob, info), np.float64), -1.0, 1.0)
            ob, _, _, _, info = env.step(action)
            qpos[t] = info["prev_qpos"]  # the state the action was taken in (s_t)
            if has_buttons:
                buttons[t] = info["prev_button_states"]
            if agent.done:  # plan finished: count it, draw the next sub-task
                done_tasks += 1
                succeeded += bool(getattr(env.unwrapped, "_success", False))
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=stack)
                agent = self.oracles[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            obs[t + 1] = ob
            acts[t] = action
        qpos[T] = info["qpos"]
        if has_buttons:
            buttons[T] = info["button_states"]
        return Episode(obs, acts, qpos, buttons, done_tasks, succeeded, 1)  # qpos cast after the health check


def healthy_scene(qpos: np.ndarray) -> bool:
    """OGBench's scene health check: the cube stays visible (not too far right; far left only inside the drawer)."""
    xyz = qpos[:, 14:17]
    if (xyz[:, 1] >= 0.29).any():
        return False
    return not ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
