"""The papers' hyperparameter sets (values from algorithms.md and the papers cited)."""
from __future__ import annotations

from offrl.presets.registry import Preset, register_preset

_IQL_SOURCE = "Kostrikov et al. 2022, IQL, Appendix B / Table 5"

register_preset(Preset(
    name="iql-locomotion",
    description="IQL on MuJoCo locomotion: τ=0.7, β=3, 1M steps, locomotion reward scaling",
    source=_IQL_SOURCE,
    values={
        "critic": {"name": "expectile", "tau": 0.7},
        "actor": {"name": "gaussian-awr", "beta": 3.0},
        "data": {"reward": "locomotion"},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10},
    },
))

register_preset(Preset(
    name="iql-antmaze",
    description="IQL on AntMaze: τ=0.9, β=10, rewards r − 1, 1M steps, 100 evaluation episodes",
    source=_IQL_SOURCE,
    values={
        "critic": {"name": "expectile", "tau": 0.9},
        "actor": {"name": "gaussian-awr", "beta": 10.0},
        "data": {"reward": "antmaze"},
        "trainer": {"steps": 1_000_000, "eval_every": 100_000, "eval_episodes": 100},
    },
))

register_preset(Preset(
    name="bandit",
    description="Small networks and batches sized for the built-in multimodal bandit (CPU seconds to a minute)",
    source="offrl (no paper); critic/actor losses and τ, β as in IQL",
    values={
        "critic": {"hidden_dims": [64, 64], "batch_size": 128},
        "actor": {"hidden_dims": [64, 64], "batch_size": 128},
        "data": {"dataset": "offrl/bandit/multimodal-v0", "reward": "none"},
        "trainer": {"steps": 3_000, "eval_every": 1_000, "eval_episodes": 100, "log_every": 250, "save_every": 1_000},
    },
))
