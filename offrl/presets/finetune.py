"""Offline-to-online presets: the FQL repository's fine-tuning runs (main.py ``--online_steps``), by agent.

FQL's ``main.py`` trains ``offline_steps`` then ``online_steps`` with the same agent: the replay starts as the
offline dataset and grows with what is collected, sampled uniformly (``balanced_sampling=0``: offrl's
``online.offline_fraction = 1``), one update per environment step, acting with ``agent.sample_actions(...,
temperature=1)`` — a sample of the stochastic policies (IQL's Gaussian, FQL's one-step flow) and ReBRAC's
deterministic action plus N(0, 0.2²) noise clipped at 0.5. Each preset is its offline preset (the same agent
code's settings) plus those online keys; α and the discount are per environment as in the README's commands.
"""
from __future__ import annotations

import copy
from typing import Any

from offrl.presets.registry import PRESETS, Preset, register_preset

_SOURCE = ("Park, Li & Levine 2025, FQL repository (seohongpark/fql): main.py (offline_steps, online_steps, "
           "balanced_sampling=0, one update per step), agents/{agent}.py defaults, README fine-tuning commands")
#: FQL main.py's online phase: 1M environment steps after 1M offline steps, the union sampled uniformly.
_ONLINE = {"steps": 1_000_000, "offline_fraction": 1.0, "updates_per_step": 1, "start_steps": 0,
           "eval_every": 100_000, "log_every": 5_000}
_ONLINE_NOTE = ("Online phase as FQL's main.py: 1M environment steps after the 1M offline steps, the replay = "
                "dataset + collected transitions sampled uniformly (online.offline_fraction = 1; "
                "balanced_sampling=1 would be 0.5), one update per step, evaluation every 100k steps. On CPU, "
                "shorten both phases (--steps, --online-steps).")


def _from(offline: str, pick: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of the registered preset ``offline`` (deep-copied), with sections replaced by ``pick``."""
    values = copy.deepcopy(PRESETS.get(offline).values)
    values.update(copy.deepcopy(pick or {}))
    return values


def _finetune(name: str, agent: str, description: str, values: dict[str, Any], notes: str) -> None:
    register_preset(Preset(name=name, description=description, source=_SOURCE.format(agent=agent),
                           values={**values, "online": {**_ONLINE, **values.get("online", {})}},
                           notes=f"{notes} {_ONLINE_NOTE}"))


_finetune(
    "fql-finetune", "fql",
    "FQL offline → online (1M + 1M steps): fql-ogbench's agent, the replay sampled uniformly, UTD 1",
    _from("fql-ogbench"),
    "The agent is fql-ogbench's (α = 10, the code's default; the README's fine-tuning commands set α per "
    "environment as offline: 300 cube/scene, 1000 puzzle, 10 antmaze, e.g. --set actor.alpha=300). It collects "
    "with its one-step policy's sample (fresh noise), as sample_actions.",
)

_manip = PRESETS.get("ogbench-manipulation").values
_finetune(
    "iql-finetune", "iql",
    "IQL offline → online (1M + 1M steps): FQL's IQL agent (expectile τ=0.9, AWR α=10, 4×512 nets), UTD 1",
    _from("ogbench-manipulation", {
        "critic": {**_manip["critic"], "name": "expectile"},
        "actor": {**_manip["actor"], "name": "gaussian-awr"},
        "actor@gaussian-awr": {**_manip["actor@gaussian-awr"], "beta": 10.0},
    }),
    "agents/iql.py's defaults (AWR temperature α = 10, σ = 1, expectile 0.9; the README's example runs "
    "humanoidmaze with --agent.alpha=10, its cube command offline with α = 1: actor.beta). It collects with "
    "a sample of its Gaussian.",
)

_finetune(
    "rebrac-finetune", "rebrac",
    "ReBRAC offline → online (1M + 1M steps): FQL's ReBRAC agent (α_actor=0.01, α_critic=0.01, 4×512 nets), "
    "exploration N(0, 0.2²), UTD 1",
    _from("ogbench-manipulation", {
        "critic": {**_manip["critic"], "name": "td3"},
        "critic@td3": {**_manip["critic@td3+ddpg-bc"], "alpha_critic": 0.01},
        "actor": {**_manip["actor"], "name": "ddpg-bc"},
        "actor@ddpg-bc": {**_manip["actor@ddpg-bc"], "alpha": 100.0, "update_every": 2},
        "online": {"explore_noise": 0.2},
    }),
    "agents/rebrac.py with the README's fine-tuning example (alpha_actor = alpha_critic = 0.01 → actor.alpha = "
    "1/0.01 = 100 with summed BC, critic.alpha_critic = 0.01; both are tuned per task), target smoothing σ = 0.2, "
    "c = 0.5, actor and targets every 2nd step. It collects with its deterministic action plus N(0, 0.2²) "
    "(online.explore_noise; FQL's code also clips that noise at 0.5, offrl does not).",
)
