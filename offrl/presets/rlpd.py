"""RLPD: online RL with the offline data in the replay, from scratch (Ball, Smith, Kostrikov & Levine 2023).

RLPD does not pre-train: a SAC agent starts learning online, and every batch is half offline data, half
collected (symmetric sampling). What makes it work is in the critic: an ensemble of 10 Q networks with
LayerNorm, the target the min over 2 members drawn afresh at each update, and 20 critic updates per
environment step (UTD 20) with the targets moving after each. Values from ``ikostrikov/rlpd``:
``configs/{td,sac,rlpd}_config.py``, ``agents/sac/sac_learner.py`` and the README's D4RL locomotion
command (``--utd_ratio=20 --start_training 5000 --max_steps 250000``).
"""
from __future__ import annotations

from offrl.presets.registry import Preset, register_preset

register_preset(Preset(
    name="rlpd",
    description="RLPD: SAC online with the offline data, 50/50 batches, 10 LayerNorm Q (min of 2), UTD 20, "
                "250k environment steps, no pre-training",
    source="Ball et al. 2023, RLPD; ikostrikov/rlpd configs/rlpd_config.py, sac_config.py, td_config.py, "
           "agents/sac/sac_learner.py, README (D4RL locomotion)",
    values={
        "critic": {"name": "td3", "hidden_dims": [256, 256], "num_q": 10, "layer_norm": True,
                   "layer_norm_position": "before-activation", "init": "fql", "q_lr": 3e-4, "discount": 0.99,
                   "target_update_rate": 0.005, "batch_size": 256, "updates_per_step": 20},
        "critic@td3": {"target_subset": 2, "q_agg": "min", "entropy_backup": True, "policy_noise": 0.0,
                       "alpha_critic": 0.0, "target_cadence": "every"},
        "actor": {"name": "sac", "batch_size": 256},
        "actor@sac": {"hidden_dims": [256, 256], "init": "fql", "lr": 3e-4, "q_agg": "mean",
                      "learn_temperature": True, "init_temperature": 1.0, "target_entropy_per_dim": -0.5,
                      "temperature_lr": 3e-4, "temperature_loss": "alpha", "log_std_min": -20.0,
                      "log_std_max": 2.0, "log_std_offset": 0.0, "update_every": 1},
        "data": {"reward": "none", "normalize_obs": False},
        "trainer": {"steps": 1, "eval_every": 5_000, "eval_episodes": 10},
        "online": {"steps": 250_000, "offline_fraction": 0.5, "updates_per_step": 1, "start_steps": 5_000,
                   "eval_every": 5_000, "log_every": 1_000},
    },
    notes="SAC (tanh-Gaussian, state-dependent σ, α₀ = 1 tuned towards H̄ = −A/2, the actor on the mean of the 10 "
          "Q) with the soft backup; every layer Glorot-uniform with zero biases (flax's xavier_uniform: init = "
          "fql), LayerNorm before the activation in Q only; 20 critic updates of 256 rows per environment step "
          "(critic.updates_per_step; RLPD slices one batch of 20 × 256), then one actor and one temperature "
          "update; uniform random actions for the first 5,000 steps before any update (start_training); raw "
          "rewards. trainer.steps = 1: offrl's offline phase has at least one iteration (RLPD's pretrain_steps "
          "is 0), negligible beside 250k × 20 updates. The AntMaze and Adroit commands differ: "
          "critic.entropy_backup=false, 'critic.hidden_dims=[256,256,256]', "
          "'actor.hidden_dims=[256,256,256]' (and critic.target_subset=1 on AntMaze).",
))
