"""Collecting: one gymnasium environment per seed, stepped in lockstep, transitions written to the replay.

Seed ``s``'s environment is reset with seeds derived from (s, ONLINE_STREAM, episode) and its exploration noise
comes from its own generator (derived from (s, ONLINE_STREAM)), so a seed collects the same alone as in a group.
Time limits and terminals are kept apart as gymnasium says: ``terminated`` is a terminal (no bootstrap),
``truncated`` is not (the critic bootstraps from the real next state, which is stored before the reset).
Observations, actions and rewards go through the dataset's own maps (observation normalisation, unit actions
clipped as the data were, the dataset's reward preprocessing), so collected rows are like offline rows.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from offrl.data.flatten import flatten_obs
from offrl.data.returns import UNKNOWN, ReturnsToGo
from offrl.data.preprocess import preprocess_rewards
from offrl.online.envstate import env_state, restore_env_state
from offrl.online.replay import ReplayTable
from offrl.trainer.runtime import derived_seed

#: Stream of the online phase's seeds (environment resets, exploration) under each run seed.
ONLINE_STREAM = 0x0_1_1_E


class Collector:
    """E environments (one per seed) and what they are doing: current observation, episode return and length."""

    def __init__(self, make_env: Callable[[], Any], seeds: list[int], dataset: Any, device: torch.device,
                 action_clip_eps: float, returns: ReturnsToGo | None = None) -> None:
        self.envs = [make_env() for _ in seeds]
        # Monte-Carlo returns of collected episodes (Cal-QL's bound), written when each episode ends
        self.returns = returns
        rewards = getattr(getattr(dataset, "arrays", None), "rewards", None)
        self.failure_reward = float(np.min(rewards)) if rewards is not None and len(rewards) else None
        self.episode_rows: list[list[int]] = [[] for _ in seeds]  # replay rows of each env's current episode
        self.episode_rewards: list[list[float]] = [[] for _ in seeds]
        self.seeds = list(seeds)
        self.dataset = dataset
        self.device = device
        self.limit = 1.0 - action_clip_eps
        self.generators = []
        for s in seeds:
            g = torch.Generator(device=device)
            g.manual_seed(derived_seed(s, ONLINE_STREAM))
            self.generators.append(g)
        self.episodes = [0] * len(seeds)
        self.ep_return = np.zeros(len(seeds))
        self.ep_length = np.zeros(len(seeds), np.int64)
        self.finished: list[list[float]] = [[] for _ in seeds]  # returns of episodes ended since the last read
        self.successes: list[list[float]] = [[] for _ in seeds]
        self.prev_rows: torch.Tensor | None = None  # replay row of each env's previous transition
        self.prev_live = torch.zeros(len(seeds), dtype=torch.bool)  # whether that transition's episode goes on
        self.obs = np.stack([self._reset(e) for e in range(len(seeds))])

    def _reset(self, e: int) -> np.ndarray:
        obs, _ = self.envs[e].reset(seed=derived_seed(self.seeds[e], ONLINE_STREAM, self.episodes[e]))
        return self._norm(obs)

    def _norm(self, obs: Any) -> np.ndarray:
        x = flatten_obs(obs).reshape(1, -1).astype(np.float64)
        return np.asarray(self.dataset.obs_normalizer(x), np.float32)[0]

    def random_actions(self) -> torch.Tensor:
        """Uniform actions [E, A] in [−1, 1], from each seed's own generator (``online.start_steps``)."""
        A = self.dataset.act_dim
        return torch.stack([torch.rand(A, generator=g, device=self.device) * 2 - 1 for g in self.generators])

    def observations(self) -> torch.Tensor:
        """The current observations as the actors take them: [E, 1, O] on the device."""
        return torch.as_tensor(self.obs, device=self.device).unsqueeze(1)

    def step(self, actions: torch.Tensor, replay: ReplayTable) -> None:
        """Step every environment with its seed's action [E, A] (unit space) and append the transitions."""
        unit = np.clip(actions.detach().cpu().numpy().astype(np.float64), -self.limit, self.limit)
        E = len(self.envs)
        next_obs = np.zeros_like(self.obs)
        rewards, terminals, done = np.zeros(E), np.zeros(E), np.zeros(E, bool)
        ds = self.dataset
        key = getattr(ds, "success_key", None)
        for e, env in enumerate(self.envs):
            obs, r, term, trunc, info = env.step(ds.action_scaler.to_env(unit[e]).astype(np.float32))
            next_obs[e] = self._norm(obs)
            rewards[e], terminals[e], done[e] = float(r), float(term), bool(term or trunc)
            self.ep_return[e] += float(r)
            self.ep_length[e] += 1
            if done[e]:
                self.finished[e].append(float(self.ep_return[e]))
                if key is not None:
                    self.successes[e].append(float(bool(info.get(key, False))))
        pre = preprocess_rewards(rewards.astype(np.float32), ds.arrays.episode_returns, ds.reward_mode)
        A = unit.shape[1]
        rows = replay.pack(observations=self.obs, actions=unit, rewards=pre, next_observations=next_obs,
                           terminals=terminals, next_actions=np.zeros((E, A)), has_next_action=np.zeros(E),
                           mc_returns=np.full(E, UNKNOWN))  # known once the episode ends (_finish_returns)
        if self.prev_rows is not None:  # the previous transition of a continuing episode gets a' = this action
            replay.link_next_action(self.prev_rows, torch.as_tensor(unit, dtype=torch.float32), self.prev_live)
        self.prev_rows = replay.append(rows)
        self.prev_live = torch.as_tensor(~done)
        if self.returns is not None:
            where = self.prev_rows.tolist()
            for e in range(E):
                self.episode_rows[e].append(int(where[e]))
                self.episode_rewards[e].append(float(pre[e]))
        for e in np.flatnonzero(done):
            self._finish_returns(int(e), float(terminals[e]), replay)
            self.episodes[e] += 1
            self.ep_return[e], self.ep_length[e] = 0.0, 0
            next_obs[e] = self._reset(int(e))
        self.obs = next_obs

    def _finish_returns(self, e: int, terminal: float, replay: ReplayTable) -> None:
        """Write the Monte-Carlo returns of env ``e``'s episode that just ended into its replay rows (a
        truncated episode sums to its end, as the dataset's: offrl.data.returns). Rows the ring has since
        overwritten (an episode longer than the seed's block) are skipped."""
        if self.returns is None:
            return
        rows, rewards = self.episode_rows[e], self.episode_rewards[e]
        self.episode_rows[e], self.episode_rewards[e] = [], []
        terminals = np.zeros(len(rewards))
        terminals[-1] = terminal
        g = self.returns.episode(np.asarray(rewards), terminals, self.failure_reward)
        keep = min(len(rows), replay.per_member)  # the newest rows are still in place
        replay.set_mc_returns(torch.as_tensor(rows[len(rows) - keep:]), torch.as_tensor(g[len(g) - keep:]))

    def read_episodes(self) -> list[dict[str, float]]:
        """Per seed: the mean return (and success) of the episodes that ended since the last read, then reset."""
        out = []
        for e in range(len(self.envs)):
            row: dict[str, float] = {"online/episodes": float(self.episodes[e])}
            if self.finished[e]:
                row["online/return_mean"] = float(np.mean(self.finished[e]))
            if self.successes[e]:
                row["online/success_rate_100"] = 100.0 * float(np.mean(self.successes[e]))
            out.append(row)
            self.finished[e], self.successes[e] = [], []
        return out

    # --- checkpoints ------------------------------------------------------------------------------
    def member_state(self, e: int) -> dict[str, Any]:
        """Seed ``e``'s collection state as plain data: its environment mid-episode (None where it cannot be
        saved, :mod:`offrl.online.envstate`), episode counters, current observation, exploration generator."""
        return {
            "env": env_state(self.envs[e]),
            "episodes": int(self.episodes[e]), "ep_return": float(self.ep_return[e]),
            "ep_length": int(self.ep_length[e]), "obs": torch.as_tensor(self.obs[e]).clone(),
            "finished": list(self.finished[e]), "successes": list(self.successes[e]),
            "generator": self.generators[e].get_state(),
            "prev_row": None if self.prev_rows is None else int(self.prev_rows[e]),
            "prev_live": bool(self.prev_live[e]),
            "episode_rows": list(self.episode_rows[e]), "episode_rewards": list(self.episode_rewards[e]),
        }

    def load_member_states(self, states: list[dict[str, Any]], replay: ReplayTable | None = None) -> list[str]:
        """Restore every seed from :meth:`member_state` dicts (``replay``: already restored); returns notes for
        the seeds whose environment could not be saved (they start a new episode: the run goes on, no longer
        step for step the same; the interrupted episode's Monte-Carlo returns are written as a truncated one's)."""
        notes = []
        rows = []
        for e, s in enumerate(states):
            self.episode_rows[e] = [int(r) for r in s.get("episode_rows", [])]
            self.episode_rewards[e] = [float(r) for r in s.get("episode_rewards", [])]
            self.generators[e].set_state(s["generator"])
            self.finished[e], self.successes[e] = [float(x) for x in s["finished"]], [float(x) for x in s["successes"]]
            self.episodes[e] = int(s["episodes"])
            rows.append(-1 if s["prev_row"] is None else int(s["prev_row"]))
            if s["env"] is not None:
                restore_env_state(self.envs[e], s["env"])
                self.ep_return[e], self.ep_length[e] = float(s["ep_return"]), int(s["ep_length"])
                self.obs[e] = np.asarray(s["obs"], np.float32)
                self.prev_live[e] = bool(s["prev_live"])
            else:
                if replay is not None and self.episode_rows[e]:
                    self._finish_returns(e, 0.0, replay)  # it ends here, cut short like a time limit
                self.episodes[e] += 1  # the interrupted episode ends here; its transitions stay in the replay
                self.ep_return[e], self.ep_length[e] = 0.0, 0
                self.obs[e] = self._reset(e)
                self.prev_live[e] = False
                env = self.envs[e]
                name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
                notes.append(f"seed {self.seeds[e]}: its environment ({name}) cannot be saved mid-episode, so the "
                             "online phase resumed it at a new episode (the interrupted episode's transitions are "
                             "kept); from here the run is not step for step the uninterrupted one")
        self.prev_rows = None if all(r < 0 for r in rows) else torch.as_tensor(rows)
        return notes

    def close(self) -> None:
        for env in self.envs:
            env.close()
