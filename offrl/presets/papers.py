"""The papers' hyperparameter sets (values from the papers and released code cited in each ``source``;
docs/algorithms.md summarises them)."""
from __future__ import annotations

from offrl.presets.registry import Preset, register_preset

_IQL_SOURCE = "Kostrikov et al. 2022, IQL, Appendix B / Table 5"
#: The IQL-family critics: keys only they have (V's settings) are scoped to them, so a preset
#: still resolves when ``--critic sarsa`` or ``--critic td3`` replaces its critic.
_IQL_CRITICS = ("expectile", "quantile", "exponential")


def _iql_critic_keys(shared: dict, **own: dict) -> dict:
    """``critic@NAME`` sections for every IQL-family critic: ``shared`` values plus each one's ``own``."""
    return {f"critic@{name}": {**shared, **own.get(name, {})} for name in _IQL_CRITICS}

register_preset(Preset(
    name="iql-locomotion",
    description="IQL on MuJoCo locomotion: τ=0.7, β=3, 1M steps, locomotion reward scaling",
    source=_IQL_SOURCE,
    values={
        "critic": {"name": "expectile"},
        "critic@expectile": {"tau": 0.7},
        "actor": {"name": "gaussian-awr"},
        "actor@gaussian-awr": {"beta": 3.0},
        "actor@edp": {"beta": 3.0},
        "data": {"reward": "locomotion"},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10, "shared_batch": True},
    },
    notes="One batch per iteration for V, the actor and Q, in IQL's code order V → actor → Q → targets "
          "(trainer.shared_batch).",
))

register_preset(Preset(
    name="iql-antmaze",
    description="IQL on AntMaze: τ=0.9, β=10, rewards r − 1, 1M steps, 100 evaluation episodes",
    source=_IQL_SOURCE,
    values={
        "critic": {"name": "expectile"},
        "critic@expectile": {"tau": 0.9},
        "actor": {"name": "gaussian-awr"},
        "actor@gaussian-awr": {"beta": 10.0},
        "actor@edp": {"beta": 10.0},
        "data": {"reward": "antmaze"},
        "trainer": {"steps": 1_000_000, "eval_every": 100_000, "eval_episodes": 100, "shared_batch": True},
    },
    notes="One batch per iteration for V, the actor and Q, in IQL's code order (trainer.shared_batch).",
))

register_preset(Preset(
    name="bandit",
    description="Small networks and batches sized for the built-in multimodal bandit (CPU seconds to a minute)",
    source="offrl (no paper); losses, τ, β and the diffusion schedules as in the papers",
    values={
        "critic": {"hidden_dims": [64, 64], "batch_size": 128},
        "actor": {"batch_size": 128},
        "actor@gaussian-awr": {"hidden_dims": [64, 64]},
        "actor@ddpg-bc": {"hidden_dims": [64, 64]},
        "actor@diffusion-resample": {"hidden": 64, "depth": 2, "dropout": 0.0, "timesteps": 20, "schedule": "cosine"},
        "actor@edp": {"hidden": 64, "depth": 2, "temperature": 0.01},
        "actor@fql": {"hidden_dims": [64, 64], "normalize_q_loss": True, "alpha": 0.3},
        "actor@flow-resample": {"hidden_dims": [64, 64]},
        "actor@sac": {"hidden_dims": [64, 64], "init_temperature": 0.01},
        "critic@cql": {"cql_alpha": 0.1},
        "critic@calql": {"cql_alpha": 0.1},
        "data": {"dataset": "offrl/bandit/multimodal-v0", "reward": "none"},
        "trainer": {"steps": 3_000, "eval_every": 1_000, "eval_episodes": 100, "log_every": 250, "save_every": 1_000},
    },
    notes="Same iterations and batch sizes for every actor, so pairings compare at equal budgets. "
          "EDP's softmax temperature is 0.01 here: its temperature 1 assumes IQL-scaled rewards (Q in the hundreds); "
          "bandit Q values span ~1, so temperature 1 would select almost uniformly among candidates. "
          "FQL's α must be tuned per task (its README); here the Q term is normalised by 1/mean|Q| (FQL's "
          "recommendation for new environments) and α = 0.3 was picked from its suggested grid on seeds 0–1 "
          "(α = 1: ≈86, α = 3: ≈75; docs/extraction.md). diffusion-resample uses a T = 20 cosine schedule: "
          "with IDQL's T = 5 its samples are blurred between the bandit's modes and argmax over a sharpening Q "
          "drifts to in-between candidates (final ≈69 against a best evaluation ≈91; docs/diffusion.md). "
          "cql and calql use α = 0.1: CQL's α acts against the TD error, whose scale is Q's — CORL's α = 10 is "
          "for locomotion Q values in the hundreds, bandit Q values are below 1; at α = 10 the penalty turns Q "
          "into the behaviour density, equal on the five modes, and ddpg-bc scored −15 (α = 1: 48, α = 0.1: 86, "
          "seed 0, 200 steps; docs/algorithms.md). sac starts its temperature at α = 0.01: SAC's α = 1 is for "
          "locomotion returns, and against bandit Q values below 1 it keeps the policy at maximum entropy (cql + sac "
          "at 1,500 steps, seed 0: 17.5 with α₀ = 1, 99.2 with α₀ = 0.01).",
))

_IDQL = "Hansen-Estruch et al. 2023, IDQL"
_IDQL_ACTOR = {"name": "diffusion-resample", "network": "ln-resnet", "hidden": 256, "depth": 3, "dropout": 0.1,
               "schedule": "vp", "timesteps": 5, "sampler": "ddpm", "lr": 3e-4, "cosine_decay": True,
               "ema_rate": 0.001, "selection": "argmax"}

register_preset(Preset(
    name="idql-a-locomotion",
    description="IDQL-A on locomotion: 1.5M critic steps (batch 256), 3M actor steps (batch 1024), N=128",
    source=f"{_IDQL}, §6 and Appendix (IDQL-A, per-dataset tuned; τ=0.7 is the locomotion default)",
    values={
        "critic": {"name": "expectile", "batch_size": 256},
        **_iql_critic_keys({"value_layer_norm": True}, expectile={"tau": 0.7}),
        "actor": {**_IDQL_ACTOR, "batch_size": 1024, "updates_per_step": 2, "num_samples": 128},
        "data": {"reward": "locomotion"},
        "trainer": {"steps": 1_500_000, "eval_every": 50_000, "eval_episodes": 10},
    },
    notes="Follows the paper. The released code differs (3M joint steps at batch 512, AdamW weight decay 1e-4, "
          "N in {16, 64, 256}): see the idql-released preset. IDQL-A tunes τ per dataset; override critic.tau.",
))

register_preset(Preset(
    name="idql-1-locomotion",
    description="IDQL-1 on locomotion (one setting per domain): 1M critic / 2M actor steps, N=64",
    source=f"{_IDQL}, §6 (IDQL-1)",
    values={
        "critic": {"name": "expectile", "batch_size": 256},
        **_iql_critic_keys({"value_layer_norm": True}, expectile={"tau": 0.7}),
        "actor": {**_IDQL_ACTOR, "batch_size": 1024, "updates_per_step": 2, "num_samples": 64},
        "data": {"reward": "locomotion"},
        "trainer": {"steps": 1_000_000, "eval_every": 50_000, "eval_episodes": 10},
    },
    notes="Actor batch 1024 as in IDQL-A (the paper gives one actor batch size).",
))

register_preset(Preset(
    name="idql-antmaze",
    description="IDQL on AntMaze: τ=0.9, rewards r − 1, 1M critic / 2M actor steps, N=32, 100 evaluation episodes",
    source=f"{_IDQL}, §6 (AntMaze: N=32)",
    values={
        "critic": {"name": "expectile", "batch_size": 256},
        **_iql_critic_keys({"value_layer_norm": True}, expectile={"tau": 0.9}),
        "actor": {**_IDQL_ACTOR, "batch_size": 1024, "updates_per_step": 2, "num_samples": 32},
        "data": {"reward": "antmaze"},
        "trainer": {"steps": 1_000_000, "eval_every": 100_000, "eval_episodes": 100},
    },
))

register_preset(Preset(
    name="idql-released",
    description="IDQL's released code: 3M joint steps at batch 512, AdamW weight decay 1e-4, N=64",
    source="IDQL released code (philippe-eecs/IDQL: launcher/examples/train_ddpm_iql_offline.py, "
           "jaxrl5/agents/ddpm_iql_simple/ddpm_iql_learner.py)",
    values={
        "critic": {"name": "expectile", "batch_size": 512},
        **_iql_critic_keys({"value_layer_norm": True}, expectile={"tau": 0.7}),
        "actor": {**_IDQL_ACTOR, "batch_size": 512, "updates_per_step": 1, "num_samples": 64, "weight_decay": 1e-4,
                  "activation": "swish", "time_embedding": "fourier", "time_dim": 128, "time_mlp": [256, 256]},
        "data": {"reward": "locomotion"},
        "trainer": {"steps": 3_000_000, "eval_every": 100_000, "eval_episodes": 10},
    },
    notes="The code evaluates N in {16, 64, 256} and holds out 5% of the data; offrl uses all data and N=64 "
          "(override actor.num_samples). The code updates actor, V and Q on the same batch; offrl samples "
          "each component's batch separately. Its exported learner's ε-network uses swish, learnable Fourier "
          "time features of size 128 and a (256, 256) time MLP (the paper's other presets keep Mish, 64, (128, 128)).",
))

register_preset(Preset(
    name="edp-iql-locomotion",
    description="EDP's IQL variant on locomotion: T=1000 linear schedule, weighted guide, singlestep DPM-Solver "
                "15 calls, N=50 softmax, 3×256 Mish Q and V, gradient clipping",
    source="Kang et al. 2023, EDP, §4–5 and released code (sail-sg/edp: diffusion/dql.py, diffusion/trainer.py, "
           "diffusion/nets.py, diffusion/hps.py)",
    values={
        "critic": {"name": "expectile", "hidden_dims": [256, 256, 256], "activation": "mish", "max_grad_norm": 9.0},
        "critic@expectile": {"tau": 0.7},
        "actor": {"name": "edp", "network": "mlp", "hidden": 256, "depth": 3, "schedule": "linear",
                  "timesteps": 1000, "sampler": "dpm-solver", "solver": "singlestep", "solver_order": 3,
                  "solver_spacing": "time_uniform", "solver_t_end": 1e-3, "solver_steps": 15, "guide": "weighted",
                  "beta": 3.0, "bc_reduction": "mean", "num_samples": 50, "selection": "softmax",
                  "temperature": 1.0, "q_agg": "min", "ema_rate": 0.005, "ema_every": 5, "ema_start": 1000,
                  "act_with": "live", "max_grad_norm": 9.0},
        "data": {"reward": "none"},
        "trainer": {"steps": 2_000_000, "eval_every": 50_000, "eval_episodes": 10},
    },
    notes="EDP's headline locomotion numbers used its TD3-style variant (here: --critic td3 with "
          "actor.guide=q-gradient); this preset is EDP's IQL variant, which the paper reports for AntMaze, Kitchen "
          "and Adroit only. Rewards are raw, as EDP's trainer leaves them on locomotion (it normalises them for "
          "Kitchen/Adroit and shifts them for AntMaze). Caution: the weighted guide's weights min(exp(β·A), 100) "
          "are not normalised, so their scale sets the balance against the noise loss; on offrl's Hopper "
          "medium-expert with IQL's reward scaling (×2.4 there) the guide outweighed the noise loss 25–60 "
          "times and no seed learned to stand in 100k updates (docs/benchmarks.md, parity). "
          "Gradient clipping is per dataset in EDP's code (diffusion/hps.py 'gn'); 9 is hopper-medium's "
          "(halfcheetah-medium 9, walker2d-medium 1, halfcheetah/hopper/walker2d-medium-replay 2/4/4, "
          "-medium-expert 7/5/5): set critic.max_grad_norm and actor.max_grad_norm together. EDP clips Q1 and Q2 "
          "separately; offrl clips the Q ensemble's group as one. EDP acts with the live policy and min over the "
          "online Q; offrl's selection reads the target Q. The EMA (rate 0.005 every 5 updates after update "
          "1000) feeds only next actions here, as EDP's policy target feeds only its TD3 backup; before update "
          "1000 offrl's copy follows the live weights, where EDP's stays at its initial weights.",
))

register_preset(Preset(
    name="ddpgbc-locomotion",
    description="DDPG+BC (TD3+BC's loss) on an IQL critic for locomotion: α=2.5, policy delay 2, "
                "normalised states, 1M steps",
    source="Loss and α=2.5: Fujimoto & Gu 2021, TD3+BC, §5 (all D4RL locomotion); pairing with in-sample "
           "value learning: Park et al. 2024, 'Is Value Learning Really the Main Bottleneck in Offline RL?'",
    values={
        "critic": {"name": "expectile"},
        "critic@expectile": {"tau": 0.7},
        "actor": {"name": "ddpg-bc", "alpha": 2.5, "bc_reduction": "mean", "hidden_dims": [256, 256],
                  "lr": 3e-4, "batch_size": 256, "policy": "deterministic", "update_every": 2},
        "data": {"reward": "locomotion", "normalize_obs": True},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10},
    },
    notes="Park et al. study AntMaze, Kitchen, Adroit and ExORL with α swept per task (their α_P weights the "
          "BC term: α = 2/α_P with offrl's summed BC error); no locomotion setting of theirs is claimed here. "
          "As TD3+BC, states are normalised (mean, std + 1e-3) and the policy is updated every 2 critic steps.",
))

# --- critics backed up through the policy (TD3+BC, ReBRAC) -----------------------------------------------------

register_preset(Preset(
    name="td3bc-locomotion",
    description="TD3+BC on locomotion: td3 critic (σ=0.2, c=0.5, min) + ddpg-bc (α=2.5, Q1), policy delay 2, "
                "normalised states, 1M steps",
    source="Fujimoto & Gu 2021, TD3+BC, §5 and released code (sfujim/TD3_BC: TD3_BC.py, main.py)",
    values={
        "critic": {"name": "td3", "hidden_dims": [256, 256], "q_lr": 3e-4, "batch_size": 256, "discount": 0.99,
                   "target_update_rate": 0.005},
        "critic@td3": {"policy_noise": 0.2, "noise_clip": 0.5, "q_agg": "min"},
        "actor": {"name": "ddpg-bc", "batch_size": 256, "update_every": 2},
        "actor@ddpg-bc": {"alpha": 2.5, "bc_reduction": "mean", "q_agg": "q1", "hidden_dims": [256, 256],
                          "lr": 3e-4, "target_update_rate": 0.005, "policy": "deterministic"},
        "data": {"reward": "none", "normalize_obs": True},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10, "shared_batch": True},
    },
    notes="TD3+BC uses raw D4RL rewards (no reward scaling) and normalises states with the dataset's mean and "
          "std + 1e-3, as data.normalize_obs does. Its actor loss uses Q1 only (actor.q_agg=q1), its critic the "
          "min of the twin targets. The released code scales the smoothing noise by max_action (1 here). "
          "TD3_BC.py's train() samples one batch per iteration for the critic and, every 2nd iteration, the "
          "actor (trainer.shared_batch; critic first, the actor on the critic just updated). It updates the "
          "actor on iterations 2, 4, … (total_it counts from 1); offrl on 1, 3, … — the same rate.",
))

#: ReBRAC's per-dataset coefficients (actor_bc_coef β, critic_bc_coef α_c) on D4RL locomotion, read from
#: tinkoff-ai/ReBRAC configs/rebrac/<env>/<env>_<dataset>.yaml (the same values as tinkoff-ai/CORL
#: configs/offline/rebrac/<env>/<dataset>_v2.yaml). offrl's actor.alpha = 1/β (ddpg-bc with summed BC).
REBRAC_D4RL_COEFS: dict[str, tuple[float, float]] = {
    "halfcheetah-random": (0.001, 0.1), "halfcheetah-medium": (0.001, 0.01), "halfcheetah-expert": (0.01, 0.01),
    "halfcheetah-medium-expert": (0.01, 0.1), "halfcheetah-medium-replay": (0.01, 0.001),
    "halfcheetah-full-replay": (0.001, 0.1),
    "hopper-random": (0.001, 0.01), "hopper-medium": (0.01, 0.01), "hopper-expert": (0.1, 0.1),
    "hopper-medium-expert": (0.1, 0.01), "hopper-medium-replay": (0.05, 0.5), "hopper-full-replay": (0.01, 0.01),
    "walker2d-random": (0.01, 0.0), "walker2d-medium": (0.05, 0.1), "walker2d-expert": (0.01, 0.5),
    "walker2d-medium-expert": (0.01, 0.01), "walker2d-medium-replay": (0.05, 0.01),
    "walker2d-full-replay": (0.01, 0.01),
}
_REBRAC_BETA, _REBRAC_ALPHA_C = REBRAC_D4RL_COEFS["hopper-medium"]


def _rebrac_table() -> str:
    return "; ".join(f"{d} β={b:g} → α={1 / b:g}, α_c={c:g}" for d, (b, c) in REBRAC_D4RL_COEFS.items())


register_preset(Preset(
    name="rebrac-locomotion",
    description="ReBRAC on locomotion: TD3+BC with LayerNorm in Q, batch 1024, lr 1e-3, 3×256 nets, actor and "
                "critic BC penalties (hopper-medium's values)",
    source="Tarasov et al. 2023, ReBRAC, released code and per-dataset configs (tinkoff-ai/ReBRAC: "
           "src/algorithms/rebrac.py, src/networks.py, src/nn.py, configs/rebrac/hopper/hopper_medium.yaml; "
           "tinkoff-ai/CORL configs/offline/rebrac/hopper/medium_v2.yaml)",
    values={
        "critic": {"name": "td3", "hidden_dims": [256, 256, 256], "layer_norm": True,
                   "layer_norm_position": "after-activation", "init": "rebrac", "q_lr": 1e-3,
                   "batch_size": 1024, "discount": 0.99, "target_update_rate": 0.005},
        "critic@td3": {"policy_noise": 0.2, "noise_clip": 0.5, "q_agg": "min", "alpha_critic": _REBRAC_ALPHA_C},
        "actor": {"name": "ddpg-bc", "batch_size": 1024, "update_every": 2},
        "actor@ddpg-bc": {"alpha": 1 / _REBRAC_BETA, "bc_reduction": "sum", "q_agg": "min",
                          "hidden_dims": [256, 256, 256], "lr": 1e-3, "target_update_rate": 0.005,
                          "policy": "deterministic", "init": "rebrac"},
        "data": {"reward": "none", "normalize_obs": False},
        "trainer": {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10, "shared_batch": True},
    },
    notes="ReBRAC tunes both penalties per dataset. Its actor loss is β·‖π(s) − a‖² − Q/mean|Q| (BC summed over "
          "action dims), which is ddpg-bc with actor.alpha = 1/β; its critic_bc_coef is critic.alpha_critic. "
          "Defaults here are hopper-medium's (β = 0.01 → α = 100; α_c = 0.01); set actor.alpha and "
          "critic.alpha_critic for another dataset from its config: " + _rebrac_table() + ". "
          "Networks as ReBRAC's: ReLU, LayerNorm after the activation in Q only (critic_ln, actor_ln off), "
          "hidden kernels U(±1/√fan_in) with biases 0.1 and output layers U(±3e-3) (Q) / U(±1e-3) (actor) "
          "(init = rebrac). update_td3 updates the critic and then, every 2nd iteration, the actor on the same "
          "batch and the critic just updated (trainer.shared_batch); 1000 epochs × 1000 updates, evaluation "
          "every 5 epochs over 10 episodes. LayerNorm's ε is flax's 1e-6 there, PyTorch's 1e-5 here.",
))

# --- flow policies (FQL, IFQL) -----------------------------------------------------------------------------------

_FQL = "Park, Li & Levine 2025, Flow Q-Learning (FQL): agents/fql.py defaults and README commands (seohongpark/fql)"
#: FQL's networks (seohongpark/fql utils/networks.py MLP): 4×512, flax's nn.gelu (the tanh approximation),
#: Glorot-uniform kernels with zero biases, LayerNorm after the activation where it is on.
_FQL_NETS = {"hidden_dims": [512, 512, 512, 512], "activation": "gelu-tanh", "init": "fql"}
_FQL_LN = {"layer_norm": True, "layer_norm_position": "after-activation"}
_FQL_CRITIC = {"name": "td3", **_FQL_NETS, **_FQL_LN, "q_lr": 3e-4, "batch_size": 256,
               "discount": 0.99, "target_update_rate": 0.005}
_FQL_TRAINER = {"steps": 1_000_000, "eval_every": 100_000, "eval_episodes": 50, "update_order": "joint"}
_FQL_NOTES = ("As FQL's code: one Adam step on the sum of the critic's and the actor's losses, all from the "
              "parameters before the step, on one batch (trainer.update_order = joint); 4×512 MLPs with flax's "
              "tanh-approximated GELU, Glorot-uniform kernels and zero biases (init = fql), LayerNorm after the "
              "activation in Q and V (critic.layer_norm_position). Its critic loss averages over the twin Q "
              "(offrl sums, as TD3), which Adam's scale invariance makes immaterial; LayerNorm's ε is flax's "
              "1e-6 there, PyTorch's 1e-5 here.")
#: Datasets offrl can neither make nor download (Preset.dataset_family / data_note).
_OGBENCH_NAV_NOTE = ("offrl can neither make OGBench's navigation datasets (no recipe: they are rollouts of "
                     "expert locomotion policies that OGBench trains separately, data_gen_scripts/main_sac.py) "
                     "nor download them (OGBench serves its files from its own server, which Minari's remote "
                     "does not carry); a copy of your own must be in the Minari store.")


def _fql_preset(name: str, family: str, alpha: float, discount: float = 0.99, critic_q_agg: str = "mean",
                steps: int = 1_000_000, reward: str = "none", extra_notes: str = "",
                dataset_family: str = "") -> None:
    register_preset(Preset(
        name=name,
        description=f"FQL on {family}: α={alpha:g}, 4×512 GELU nets, LayerNorm in Q, γ={discount}, "
                    f"{steps // 1000}k steps, joint update",
        source=_FQL,
        values={
            "critic": {**_FQL_CRITIC, "discount": discount},
            "critic@td3": {"policy_noise": 0.0, "q_agg": critic_q_agg},
            "actor": {"name": "fql", "batch_size": 256, "lr": 3e-4},
            "actor@fql": {**_FQL_NETS, "alpha": alpha, "flow_steps": 10, "normalize_q_loss": False, "q_agg": "mean"},
            "data": {"reward": reward},
            "trainer": {**_FQL_TRAINER, "steps": steps},
        },
        notes=" ".join(n for n in (extra_notes, _FQL_NOTES) if n),
        dataset_family=dataset_family,
        data_note=_OGBENCH_NAV_NOTE if dataset_family else "",
    ))


_fql_preset("fql-ogbench", "OGBench (the code's defaults)", 10.0,
            extra_notes="α must be set per environment family: 10 antmaze/antsoccer, 30 humanoidmaze, 300 cube/scene, "
                        "1000 puzzle (actor.alpha, or the fql-ogbench-FAMILY presets).")
_fql_preset("fql-ogbench-antmaze", "OGBench antmaze", 10.0, critic_q_agg="min", dataset_family="antmaze",
            extra_notes="The README runs antmaze with q_agg=min (critic) and giant mazes with γ=0.995 "
                        "(--set critic.discount=0.995).")
_fql_preset("fql-ogbench-antsoccer", "OGBench antsoccer", 10.0, discount=0.995, dataset_family="antsoccer")
_fql_preset("fql-ogbench-humanoidmaze", "OGBench humanoidmaze", 30.0, discount=0.995, dataset_family="humanoidmaze")
_fql_preset("fql-ogbench-cube", "OGBench cube", 300.0)
_fql_preset("fql-ogbench-scene", "OGBench scene", 300.0)
_fql_preset("fql-ogbench-puzzle", "OGBench puzzle", 1000.0)
_fql_preset("fql-d4rl", "D4RL AntMaze", 10.0, steps=500_000, reward="antmaze",
            extra_notes="FQL's D4RL settings: 500k steps, rewards r − 1 on AntMaze, α=10 (umaze, medium) and α=3 "
                        "(large); on Adroit it uses critic.q_agg=min and α from 3,000 to 30,000 per task (README).")

#: FQL's IQL baseline (agents/iql.py with utils/networks.py Actor): AWR temperature α, the online min-Q in the
#: advantage, σ = 1 (const_std), an unsquashed mean whose head starts at variance scale 0.01 (init = fql).
_FQL_IQL_ACTOR = {**_FQL_NETS, "cosine_decay": False, "q_source": "online", "std": "fixed", "tanh_mean": False}
#: FQL's ReBRAC baseline (agents/rebrac.py): a tanh-squashed deterministic actor (its Actor's mode with
#: tanh_squash), BC summed over action dims, min of the online twins.
_FQL_REBRAC_ACTOR = {**_FQL_NETS, "bc_reduction": "sum", "q_agg": "min", "policy": "deterministic"}
#: IFQL (agents/ifql.py): N = 32 flow samples, argmax of the online min-Q.
_FQL_IFQL_ACTOR = {**_FQL_NETS, "flow_steps": 10, "num_samples": 32, "selection": "argmax", "q_agg": "min",
                   "q_source": "online"}

register_preset(Preset(
    name="ogbench-manipulation",
    description="Every extractor on OGBench manipulation tasks at FQL's budget: 4×512 GELU nets, LayerNorm in Q, "
                "batch 256, 1M steps, 50 evaluation episodes, FQL's joint update; each actor with the settings "
                "FQL's paper ran it with",
    source=_FQL + "; its baselines agents/iql.py, ifql.py, rebrac.py and their README commands (cube)",
    values={
        "critic": {**_FQL_CRITIC, "name": "expectile"},
        **_iql_critic_keys({"v_lr": 3e-4}, expectile={"tau": 0.9}),
        "critic@td3": {"policy_noise": 0.0, "q_agg": "mean", "alpha_critic": 0.0},
        "critic@td3+ddpg-bc": {"policy_noise": 0.2, "noise_clip": 0.5, "q_agg": "min", "alpha_critic": 0.0},
        "actor": {"batch_size": 256, "lr": 3e-4},
        "actor@fql": {**_FQL_NETS, "alpha": 300.0, "flow_steps": 10, "normalize_q_loss": False, "q_agg": "mean"},
        "actor@flow-resample": _FQL_IFQL_ACTOR,
        "actor@gaussian-awr": {**_FQL_IQL_ACTOR, "beta": 1.0},
        "actor@ddpg-bc": {**_FQL_REBRAC_ACTOR, "alpha": 1.0, "update_every": 1},
        "actor@td3+ddpg-bc": {"update_every": 2},
        "actor@diffusion-resample": {**{k: v for k, v in _IDQL_ACTOR.items() if k != "name"}, "num_samples": 32},
        "data": {"reward": "none"},
        "trainer": dict(_FQL_TRAINER),
    },
    notes="For comparing extractors on OGBench's manipulation tasks (benchmarks/ogbench.toml). The cells FQL's "
          "paper reports are expectile + gaussian-awr (IQL), td3 + ddpg-bc (ReBRAC), expectile + flow-resample "
          "(IFQL) and td3 + fql (FQL); pairing-scoped sections (critic@td3+ddpg-bc, actor@td3+ddpg-bc) make "
          "each of them its agent's code. Critic: FQL's (expectile τ = 0.9 for the IQL family, as its IQL and "
          "IFQL; td3: FQL's mean-of-twins backup without smoothing — except beside ddpg-bc, where it is "
          "agents/rebrac.py's: target smoothing σ = 0.2, c = 0.5 from the target actor, min of the twins). "
          "fql: α = 300 is FQL's value for cube and scene; puzzle tasks use α = 1000 "
          "(--set actor@fql.alpha=1000). gaussian-awr: FQL's IQL (agents/iql.py: AWR temperature α = 1, the "
          "online min-Q in the advantage, σ = 1, no tanh on the mean, constant LR). ddpg-bc with td3: FQL's "
          "ReBRAC (α_actor = 1 → actor.alpha = 1 with summed BC, min of the twins, actor and targets every 2nd "
          "step, α_critic = 0); with the IQL critic: DDPG+BC on IQL's value (agents/iql.py actor_loss=ddpgbc "
          "updates it every step; FQL's paper has no such cell). The IQL α = 1 and ReBRAC (1, 0) are the "
          "README's cube commands (visual-cube-single); the paper's appendix tunes them per task. flow-resample: "
          "IFQL (N = 32, argmax of the online min-Q). diffusion-resample: IDQL's network and T = 5 schedule "
          "with N = 32 as IFQL (FQL's paper has no IDQL row); it and edp also train in FQL's joint order here. "
          + _FQL_NOTES,
))

register_preset(Preset(
    name="ifql",
    description="IFQL (IDQL with FQL's BC flow): expectile τ=0.9, N=32 flow samples re-selected by the online "
                "min-Q, 4×512 GELU nets, LayerNorm in Q and V, 1M steps, joint update",
    source="Park, Li & Levine 2025, FQL paper's IFQL baseline: agents/ifql.py defaults (seohongpark/fql)",
    values={
        "critic": {**_FQL_CRITIC, "name": "expectile"},
        **_iql_critic_keys({"v_lr": 3e-4}, expectile={"tau": 0.9}),
        "actor": {"name": "flow-resample", "batch_size": 256, "lr": 3e-4},
        "actor@flow-resample": _FQL_IFQL_ACTOR,
        "data": {"reward": "none"},
        "trainer": dict(_FQL_TRAINER),
    },
    notes="IFQL picks the candidate with the highest online min-Q (agents/ifql.py sample_actions: "
          "critic(...).min(axis=0), argmax): actor.q_source = online. " + _FQL_NOTES,
))
