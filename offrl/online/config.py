"""The ``online.*`` keys: how long the online phase runs, what it samples and how it explores (docs/online.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from offrl.validation import COUNT, NON_NEGATIVE, UNIT, Range, check_config


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class OnlineConfig:
    """The online phase after the offline steps (``offrl run --online-steps N``, ``offrl finetune``)."""

    steps: int = field(default=0, metadata=_help("Environment steps per seed after the offline steps (0 = no online "
                                                  "phase)"))
    offline_fraction: float = field(
        default=1.0,
        metadata=_help("Share of each batch drawn from the offline data: 1 = the union of offline and collected "
                       "data sampled uniformly (FQL), 0.5 = half and half (RLPD's symmetric sampling), 0 = collected "
                       "data only"))
    updates_per_step: int = field(default=1, metadata=_help("Learner iterations per environment step (UTD ratio)"))
    start_steps: int = field(default=0, metadata=_help("Environment steps with uniform random actions before the "
                                                        "policy acts and the updates start"))
    capacity: int = field(default=0, metadata=_help("Rows of the replay per seed, offline data included (0 = the "
                                                     "dataset's size + online.steps); must hold the dataset"))
    explore_noise: float = field(default=0.1, metadata=_help("σ of the Gaussian noise added to the actions of "
                                                              "deterministic actors while collecting"))
    eval_every: int = field(default=0, metadata=_help("Environment steps between evaluations (0 = "
                                                       "trainer.eval_every)"))
    log_every: int = field(default=0, metadata=_help("Environment steps between training-log rows (0 = "
                                                      "trainer.log_every)"))

    RANGES: ClassVar[dict[str, Range]] = {
        "steps": Range(0), "offline_fraction": UNIT, "updates_per_step": COUNT, "start_steps": Range(0),
        "capacity": Range(0, label=">= 0 (0 = dataset size + online.steps)"), "explore_noise": NON_NEGATIVE,
        "eval_every": Range(0, label=">= 0 (0 = trainer.eval_every)"),
        "log_every": Range(0, label=">= 0 (0 = trainer.log_every)"),
    }

    def __post_init__(self) -> None:
        check_config(self, "online")
