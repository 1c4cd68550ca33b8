"""The conservative critics' presets: CQL offline on locomotion, Cal-QL for offline-to-online fine-tuning.

Values from CORL (``corl-team/CORL``): ``configs/offline/cql/{halfcheetah,hopper,walker2d}/*_v2.yaml`` for
CQL (the same critic settings on every locomotion dataset) and ``configs/finetune/cal_ql/{pen,door,hammer,
relocate}/cloned_v1.yaml`` for Cal-QL (identical across the four); the algorithms are
``algorithms/offline/cql.py`` and ``algorithms/finetune/cal_ql.py``.

The actor is CORL's: SAC's tanh-Gaussian (``sac``) with a state-dependent σ (3 hidden layers of 256,
orthogonal √2 initialisation, log σ offset −1), its temperature tuned towards H̄ = −A in CORL's log α form
(``temperature_loss = log-alpha``, Adam at the policy's rate), Q = the min of the twins; the penalty
weights its samples by log π (CORL's ``cql_importance_sample``). What differs: CORL's log σ multiplier and
offset are learned scalars (fixed at 1 and −1 here). Nothing here was validated on the papers' datasets.
"""
from __future__ import annotations

from offrl.presets.registry import Preset, register_preset

_CORL = "corl-team/CORL"
_ACTOR_NOTE = ("The actor is CORL's SAC tanh-Gaussian (actor sac: 3×256, orthogonal init, log σ offset −1, "
               "target entropy −A, CORL's log α loss at the policy's learning rate, min of the twin Q); the "
               "penalty weights its samples by log π (policy_density auto). CORL's log σ multiplier and offset "
               "are learned scalars there, fixed here. CORL's train() computes the actor's, temperature's and "
               "critic's losses from the parameters before the step and then steps them all "
               "(trainer.update_order = joint).")
_POLICY = {"name": "sac", "batch_size": 256}


def _sac(lr: float) -> dict:
    """CORL's TanhGaussianPolicy and its entropy tuning (algorithms/offline/cql.py, finetune/cal_ql.py)."""
    return {"hidden_dims": [256, 256, 256], "init": "orthogonal", "lr": lr, "temperature_lr": lr,
            "log_std_min": -20.0, "log_std_max": 2.0, "log_std_offset": -1.0, "q_agg": "min",
            "learn_temperature": True, "init_temperature": 1.0, "target_entropy_per_dim": -1.0,
            "temperature_loss": "log-alpha", "update_every": 1}


register_preset(Preset(
    name="cql-locomotion",
    description="CQL on locomotion: fixed α = 10, N = 10 samples, 3×256 Q, normalised states, raw rewards, "
                "1M steps",
    source=f"Kumar et al. 2020, CQL; {_CORL} algorithms/offline/cql.py and configs/offline/cql/"
           "{halfcheetah,hopper,walker2d}/*_v2.yaml",
    values={
        "critic": {"name": "cql", "hidden_dims": [256, 256, 256], "q_lr": 3e-4, "batch_size": 256, "discount": 0.99,
                   "target_update_rate": 0.005, "init": "orthogonal"},
        "critic@cql": {"cql_alpha": 10.0, "num_samples": 10, "temperature": 1.0, "lagrange": False,
                       "max_target_backup": False, "policy_noise": 0.0, "q_agg": "min"},
        "actor": dict(_POLICY),
        "actor@sac": _sac(3e-5),
        "data": {"reward": "none", "normalize_obs": True},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10, "update_order": "joint"},
    },
    notes="CORL's locomotion configs: cql_alpha 10, cql_n_actions 10, cql_temp 1, importance sampling, no "
          "Lagrangian, no max backup, no clipping of the gap, qf_lr 3e-4, policy_lr 3e-5, soft target rate "
          "5e-3 every step, 3 hidden layers of 256, normalised states, raw rewards (hopper-medium's config alone "
          "normalises them: --set data.reward=locomotion). Its Q networks are orthogonal with gain √2 and an "
          "output layer at gain 1e-2; offrl's init = orthogonal keeps √2 for the output layer too. " + _ACTOR_NOTE,
))

register_preset(Preset(
    name="calql-finetune",
    description="Cal-QL offline then online: fixed α = 1, max backup over N = 10, gap clipped at −200, 1M offline "
                "+ 1M online steps, half of each batch offline",
    source=f"Nakamoto et al. 2023, Cal-QL; {_CORL} algorithms/finetune/cal_ql.py and configs/finetune/cal_ql/"
           "{pen,door,hammer,relocate}/cloned_v1.yaml",
    values={
        "critic": {"name": "calql", "hidden_dims": [256, 256, 256], "q_lr": 3e-4, "batch_size": 256,
                   "discount": 0.99, "target_update_rate": 0.005, "init": "orthogonal"},
        "critic@calql": {"cql_alpha": 1.0, "num_samples": 10, "temperature": 1.0, "lagrange": False,
                         "target_action_gap": 0.8, "max_target_backup": True, "clip_diff_min": -200.0,
                         "policy_noise": 0.0, "q_agg": "min", "sparse_reward": False},
        "actor": dict(_POLICY),
        "actor@sac": _sac(1e-4),
        "data": {"reward": "none", "normalize_obs": False},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10, "update_order": "joint"},
        "online": {"steps": 1_000_000, "offline_fraction": 0.5, "updates_per_step": 1},
    },
    notes="CORL's Adroit (cloned) configs, the same for pen, door, hammer and relocate: cql_alpha 1 offline and "
          "online, no Lagrangian, max target backup, cql_clip_diff_min −200, 10 samples, 3 hidden layers of 256, "
          "orthogonal init (gain √2 everywhere, zero biases — offrl's init = orthogonal), policy_lr 1e-4, "
          "qf_lr 3e-4, raw rewards and states, 1M offline then 1M online iterations with half of each batch "
          "from the offline data (mixing_ratio 0.5 → online.offline_fraction 0.5). Monte-Carlo returns: "
          "truncated episodes sum to their end, collected episodes get theirs when they end (CORL writes 0 for "
          "online transitions). CORL's AntMaze configs differ: --set critic.cql_alpha=5 critic.lagrange=true "
          "critic.target_action_gap=0.8 'critic.hidden_dims=[256,256,256,256,256]' critic.sparse_reward=true "
          "data.reward=antmaze trainer.eval_every=50000 trainer.eval_episodes=100; CORL's AntMaze rewards are "
          "10r − 5, offrl's antmaze mode r − 1 (a tenth of the scale up to a shift), so α, the temperature and "
          "the gap target do not carry over one to one. " + _ACTOR_NOTE,
))
