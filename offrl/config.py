"""The resolved configuration of a run, and how it is built from layers.

Layers, lowest precedence first: component defaults < preset < config file
(TOML or JSON) < ``--set KEY=VALUE`` and explicit flags. A layer is a nested
dict ``{"critic": {"name": ..., key: value}, "actor": {...}, "data": {...},
"trainer": {...}, "eval": {...}}``. Unknown sections or keys fail with the valid choices and
the closest match; values are converted to the field's type.

Sections ``"actor@NAME"`` / ``"critic@NAME"`` apply only when NAME is the
resolved actor/critic, so one preset or config file can carry settings for
several components (e.g. the ``bandit`` preset sizes every actor's network).
``"actor@CRITIC+ACTOR"`` / ``"critic@CRITIC+ACTOR"`` apply only to that pairing
(e.g. ``critic@td3+ddpg-bc``: ReBRAC's critic settings, not those of td3 beside
another actor). Within a layer, pairing sections win over component sections,
which win over plain ones; a later layer's plain key overrides an earlier
layer's scoped one.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from offrl.errors import ConfigError, OfflineRLError, suggest, unknown
from offrl.validation import COUNT, DROPOUT, MAX_SEED, POSITIVE, Range, check_config
from offrl.online.config import OnlineConfig

DEFAULT_DATASET = "offrl/bandit/multimodal-v0"
DEFAULT_CRITIC = "expectile"
DEFAULT_ACTOR = "diffusion-resample"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DataConfig:
    """Which dataset, and how it is preprocessed."""

    dataset: str = field(default=DEFAULT_DATASET, metadata=_help("Minari dataset id"))
    reward: str = field(default="auto", metadata=_help("Reward preprocessing: auto | none | locomotion | antmaze"))
    normalize_obs: bool = field(default=False, metadata=_help("Normalise observations by dataset mean/std"))
    action_clip_eps: float = field(default=1e-5, metadata=_help("Clip dataset actions to ±(1 − eps) after rescaling"))
    value_fraction: float = field(
        default=1.0, metadata=_help("Share of the training episodes the critic learns from: a seeded draw of whole "
                                    "episodes (the bottleneck study's N_v; docs/bottleneck.md)"))
    policy_fraction: float = field(
        default=1.0, metadata=_help("Share of the training episodes the actor learns from: its own seeded draw of "
                                    "whole episodes (N_π)"))
    validation_fraction: float = field(
        default=0.0, metadata=_help("Share of the episodes held out from training (the held-out states of "
                                    "eval.diagnostics)"))
    split_seed: int = field(
        default=0, metadata=_help("Seed of the episode draws (validation split, critic and actor subsets); the same "
                                  "for every seed of a run"))

    RANGES: ClassVar[dict[str, Range]] = {
        "action_clip_eps": DROPOUT,
        "value_fraction": Range(0.0, 1.0, lo_open=True, label="in (0, 1] (a share of the training episodes)"),
        "policy_fraction": Range(0.0, 1.0, lo_open=True, label="in (0, 1] (a share of the training episodes)"),
        "validation_fraction": DROPOUT, "split_seed": Range(0, MAX_SEED),
    }

    def __post_init__(self) -> None:
        from offrl.data.preprocess import REWARD_MODES
        from offrl.data.store import validate_id

        check_config(self, "data")
        validate_id(self.dataset)  # '..', absolute paths: refused when the config is built (a sweep's planning)
        if self.reward not in REWARD_MODES:
            raise unknown("reward preprocessing (data.reward)", self.reward, REWARD_MODES)


#: Upper bounds that catch typos (1e11 episodes) before they become allocation tracebacks.
MAX_EVAL_EPISODES = 100_000
MAX_EVAL_ENVS = 1_000
#: Most seeds one process trains (``trainer.seeds``): each is a full agent on the seed axis; more is a typo
#: (``0-100000``) that would otherwise build agents until memory runs out.
MAX_SEEDS_PER_RUN = 1_024


@dataclass
class TrainerConfig:
    """The shared training loop. Every count is in trainer iterations."""

    steps: int = field(default=1_000_000, metadata=_help("Trainer iterations"))
    seed: int = field(default=0, metadata=_help("Seed of every RNG the run draws from"))
    seeds: str = field(
        default="",
        metadata=_help("Train several seeds in one process, e.g. '0-7' or '0,3,5' (one run directory each); "
                       "empty = trainer.seed alone"),
    )
    device: str = field(default="auto", metadata=_help("auto | cpu | cuda | cuda:N"))
    compile: str = field(
        default="auto",
        metadata=_help("Speed mode: off (eager) | on (torch.compile) | graph (CUDA graphs, CUDA only) | auto "
                       "(graph on CUDA; on CPU, compile runs of >= 20k steps)"),
    )
    shared_batch: bool = field(
        default=False,
        metadata=_help("Critic and actor share each iteration's batch, the actor updating right after the critic "
                       "stage the critic names (IQL's code: V → actor → Q); needs equal batch sizes, 1 update each"),
    )
    update_order: str = field(
        default="sequential",
        metadata=_help("sequential (the critic's update, then the actor's on the parameters just updated) | joint "
                       "(FQL's code: one step on the sum of every loss, all from the pre-step parameters, one "
                       "batch; docs/algorithms.md)"),
    )
    steps_per_call: int = field(default=16, metadata=_help("Iterations captured in one CUDA graph (compile=graph)"))
    matmul_precision: str = field(
        default="auto",
        metadata=_help("float32 matrix products: highest (full fp32) | high (TF32 on CUDA) | auto (high on CUDA, "
                       "highest on CPU)"),
    )
    autocast: str = field(
        default="off",
        metadata=_help("bf16: the actor's losses and acting under bf16 autocast (its networks' products in bf16; "
                       "critics stay fp32) | off"),
    )
    eval_async: str = field(
        default="auto",
        metadata=_help("Evaluate in worker processes on snapshots of the weights while training continues: on | "
                       "off | auto (on for CUDA runs and CPU runs of >= 20k steps; same scores either way)"),
    )
    eval_workers: int = field(
        default=1, metadata=_help("Evaluation worker processes when eval_async is on (the seeds are split "
                                  "between them)"))
    phases: str = field(
        default="joint",
        metadata=_help("joint (critic and actor updated together) | two-phase (the critic alone for the first "
                       "critic_steps iterations, then the actor alone on the frozen critic; not for critics that back "
                       "up through the actor, e.g. td3)"),
    )
    critic_steps: int = field(
        default=0, metadata=_help("trainer.phases=two-phase: iterations of the critic phase (0 = half of "
                                  "trainer.steps); the actor phase is the rest"))
    eval_every: int = field(default=10_000, metadata=_help("Evaluate every N iterations (and at the end)"))
    eval_episodes: int = field(default=10, metadata=_help("Episodes per evaluation"))
    eval_envs: int = field(default=10, metadata=_help("Vectorised environments per seed used for evaluation"))
    save_every: int = field(default=50_000, metadata=_help("Checkpoint every N iterations (and at the end)"))
    log_every: int = field(default=1_000, metadata=_help("Average and log training metrics every N iterations"))
    threads: int = field(default=0, metadata=_help("CPU intra-op threads; 0 = 1 thread (fastest for these nets)"))
    tensorboard: bool = field(
        default=False, metadata=_help("Also write TensorBoard logs to RUN_DIR/tensorboard (needs offrl[tensorboard])"))
    wandb: bool = field(default=False, metadata=_help("Also log to Weights & Biases, one W&B run per seed "
                                                      "(needs offrl[wandb])"))
    wandb_project: str = field(default="offrl", metadata=_help("W&B project"))
    wandb_group: str = field(default="", metadata=_help("W&B group (default: the sweep's name, or the multi-seed "
                                                        "run's directory)"))
    wandb_name: str = field(default="", metadata=_help("W&B run name (default: the run directory's name)"))
    wandb_mode: str = field(default="", metadata=_help("online | offline | disabled (default: W&B's own, "
                                                       "WANDB_MODE)"))

    RANGES: ClassVar[dict[str, Range]] = {
        "steps": COUNT, "seed": Range(0, MAX_SEED), "steps_per_call": COUNT, "eval_every": COUNT,
        "eval_episodes": COUNT, "eval_envs": COUNT, "save_every": COUNT, "log_every": COUNT,
        "threads": Range(0),  # and at most this machine's CPUs (below)
        "eval_workers": COUNT, "critic_steps": Range(0),
    }

    def __post_init__(self) -> None:
        check_config(self, "trainer")
        cpus = os.cpu_count() or 1
        if not 0 <= self.threads <= cpus:
            raise ConfigError(f"trainer.threads must be between 0 (= 1 thread) and this machine's {cpus} CPUs, "
                              f"got {self.threads}")
        if self.eval_episodes > MAX_EVAL_EPISODES or self.eval_envs > MAX_EVAL_ENVS:
            raise ConfigError(f"trainer.eval_episodes must be at most {MAX_EVAL_EPISODES:,} and trainer.eval_envs at "
                              f"most {MAX_EVAL_ENVS:,}, got {self.eval_episodes:,} and {self.eval_envs:,}")
        from offrl.learner.learner import SPEED_MODES, UPDATE_ORDERS

        if self.update_order not in UPDATE_ORDERS:
            raise unknown("update order (trainer.update_order)", self.update_order, UPDATE_ORDERS)

        if self.wandb_mode not in ("", "online", "offline", "disabled"):
            raise unknown("W&B mode (trainer.wandb_mode)", self.wandb_mode, ("online", "offline", "disabled"))

        import re

        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):  # availability is checked when the run starts
            raise ConfigError(f"Unknown device (trainer.device) '{self.device}'. Valid choices: auto, cpu, cuda, cuda:N.")
        if self.compile not in SPEED_MODES:
            raise unknown("speed mode (trainer.compile)", self.compile, SPEED_MODES)
        from offrl.learner.learner import AUTOCAST_MODES
        from offrl.trainer.evaluations import EVAL_ASYNC_MODES
        from offrl.trainer.runtime import MATMUL_PRECISIONS

        for key, valid in (("matmul_precision", MATMUL_PRECISIONS), ("autocast", AUTOCAST_MODES),
                           ("eval_async", EVAL_ASYNC_MODES)):
            if getattr(self, key) not in valid:
                raise unknown(f"trainer.{key}", getattr(self, key), valid)
        self.seed_list()  # validates trainer.seeds
        if self.phases not in PHASES:
            raise unknown("training phases (trainer.phases)", self.phases, PHASES)
        if self.critic_steps < 0:
            raise ConfigError(f"trainer.critic_steps must be >= 0, got {self.critic_steps}")
        if self.phases == "joint" and self.critic_steps:
            raise ConfigError(f"trainer.critic_steps={self.critic_steps} is the critic phase of "
                              "trainer.phases=two-phase; this run trains jointly (trainer.phases=joint).")
        if self.phases == "two-phase" and not 0 < self.critic_phase_steps() < self.steps:
            raise ConfigError(f"trainer.phases=two-phase needs 0 < trainer.critic_steps < trainer.steps (both phases "
                              f"non-empty), got critic_steps={self.critic_steps} with steps={self.steps}.")

    def critic_phase_steps(self) -> int:
        """Two-phase training: the iterations of the critic phase (``critic_steps``, or half the run); 0 if joint."""
        if self.phases != "two-phase":
            return 0
        return self.critic_steps or self.steps // 2

    def seed_list(self) -> list[int]:
        """The seeds this run trains: ``trainer.seeds`` parsed, or ``[trainer.seed]``."""
        return parse_seed_list(self.seeds) if self.seeds.strip() else [self.seed]


#: Values of ``trainer.phases``.
PHASES = ("joint", "two-phase")
#: Values of ``eval.reference``.
REFERENCES = ("auto", "dataset")


@dataclass
class EvalConfig:
    """What an evaluation measures besides the score: diagnostics and test-time policy improvement
    (docs/bottleneck.md). Each runs at every evaluation, beside the plain one, and is logged in eval.jsonl."""

    diagnostics: bool = field(
        default=False,
        metadata=_help("Log the policy's action MSE against a reference on training, held-out and visited states, and "
                       "the critic's value error on visited states against Monte-Carlo returns (diag/*)"))
    diagnostic_states: int = field(default=1000, metadata=_help("States per set for the action MSE (at most)"))
    reference: str = field(
        default="auto",
        metadata=_help("The reference action: auto (the policy of offrl's data recipe where there is one — the "
                       "bandit's best modes, PointMaze's controller, the locomotion expert — else the dataset action) "
                       "| dataset (always the dataset action; none on visited states)"))
    opex_steps: int = field(
        default=0, metadata=_help("OPEX: gradient-ascent steps on Q from the actor's action at test time, clipped to "
                                  "the action bounds (opex/*; 0 = off)"))
    opex_lr: float = field(default=0.05, metadata=_help("OPEX step size: a ← clip(a + opex_lr · ∇ₐQ(s, a), −1, 1)"))
    ttt_steps: int = field(
        default=0, metadata=_help("TTT: actor updates on the evaluation's visited transitions with the critic frozen, "
                                  "then the adapted policy is evaluated again (ttt/*; 0 = off)"))
    ttt_lr: float = field(default=0.0, metadata=_help("TTT learning rate (constant; 0 = the actor's own lr)"))
    ttt_batch: int = field(default=0, metadata=_help("TTT batch size (0 = the actor's batch size)"))
    env: str = field(
        default="", metadata=_help("Evaluate in this registered gymnasium environment (id, or module:Id) instead of "
                                   "the dataset's recorded one; its spaces must match the data (`offrl run "
                                   "--eval-env`; '' = the dataset's)"))
    ope: bool = field(
        default=False, metadata=_help("At the end of training, estimate the final policy's value from the data alone "
                                      "(FQE, as `offrl ope`; RUN_DIR/ope_final.json, docs/ope.md)"))
    ope_steps: int = field(default=5_000, metadata=_help("eval.ope: FQE gradient steps"))
    ope_split: str = field(default="all", metadata=_help("eval.ope: episodes FQE fits on: all | train | heldout "
                                                         "(data.validation_fraction's)"))

    RANGES: ClassVar[dict[str, Range]] = {
        "diagnostic_states": COUNT, "opex_steps": Range(0), "opex_lr": POSITIVE,
        "ttt_steps": Range(0), "ttt_lr": Range(0.0, label=">= 0 (0 = the actor's lr)"),
        "ttt_batch": Range(0, label=">= 0 (0 = the actor's batch size)"), "ope_steps": COUNT,
    }

    def __post_init__(self) -> None:
        check_config(self, "eval")
        if self.reference not in REFERENCES:
            raise unknown("reference action (eval.reference)", self.reference, REFERENCES)
        if self.ope_split not in ("all", "train", "heldout"):
            raise unknown("OPE split (eval.ope_split)", self.ope_split, ("all", "train", "heldout"))

    @property
    def probes(self) -> bool:
        """Whether an evaluation does more than score the policy."""
        return self.diagnostics or self.opex_steps > 0 or self.ttt_steps > 0


def parse_seed_list(text: str) -> list[int]:
    """Seeds from ``"0-7"`` (inclusive range), ``"0,3,5"`` or a mix (``"0-2,9"``); no duplicates.

    Every seed is in [0, MAX_SEED] and there are at most MAX_SEEDS_PER_RUN, checked before a range is expanded
    (``0-10**18`` is refused at once, not after building a list of that size)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            first, last = (int(lo), int(hi)) if dash else (int(part), int(part))
        except ValueError:
            first = last = -1
        if first < 0 or last < first:
            raise ConfigError(f"trainer.seeds: '{part}' is not a seed or an inclusive range like 0-7 "
                              f"(seeds are integers in [0, {MAX_SEED}]; e.g. --seeds 0-7 or --seeds 0,3,5).")
        if last > MAX_SEED:
            raise ConfigError(f"trainer.seeds: {last} is not a valid seed (seeds are integers in [0, {MAX_SEED}]).")
        if len(seeds) + last - first + 1 > MAX_SEEDS_PER_RUN:
            raise ConfigError(f"trainer.seeds='{text}' names more than {MAX_SEEDS_PER_RUN:,} seeds, the most one "
                              "process trains; split them over several runs (offrl sweep --seeds-per-process E).")
        seeds += range(first, last + 1)
    if not seeds:
        raise ConfigError(f"trainer.seeds='{text}' names no seed (e.g. --seeds 0-7 or --seeds 0,3,5).")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"trainer.seeds='{text}' repeats a seed: {sorted(seeds)}.")
    return seeds


@dataclass
class RunConfig:
    """Everything that defines a run (saved as config.json in the run directory)."""

    critic: str
    critic_cfg: Any
    actor: str
    actor_cfg: Any
    data: DataConfig
    trainer: TrainerConfig
    preset: str | None = None
    plugins: tuple[str, ...] = ()  # modules imported to register components (see offrl.plugins)
    eval: EvalConfig = field(default_factory=EvalConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)  # the online phase (offrl.online; docs/online.md)

    def to_dict(self) -> dict[str, Any]:
        from offrl import __version__

        return {
            "critic": {"name": self.critic, **_plain(dataclasses.asdict(self.critic_cfg))},
            "actor": {"name": self.actor, **_plain(dataclasses.asdict(self.actor_cfg))},
            "data": _plain(dataclasses.asdict(self.data)),
            "trainer": _plain(dataclasses.asdict(self.trainer)),
            "eval": _plain(dataclasses.asdict(self.eval)),
            "online": _plain(dataclasses.asdict(self.online)),
            "preset": self.preset,
            "plugins": list(self.plugins),
            "offrl_version": __version__,
        }

    def comparable(self) -> dict[str, Any]:
        """The parts that must match for a run to be resumed (not the version, not how it runs)."""
        return comparable_dict(self.to_dict())

    def for_seed(self, seed: int) -> "RunConfig":
        """The solo configuration of one seed of this run (what its run directory records)."""
        return dataclasses.replace(self, trainer=dataclasses.replace(self.trainer, seed=seed, seeds=""))


#: Trainer keys that decide how a run executes, not what it computes: they may change on resume.
RUNTIME_KEYS = ("device", "threads", "tensorboard", "compile", "steps_per_call", "seeds", "wandb", "wandb_project",
                "wandb_group", "wandb_name", "wandb_mode", "matmul_precision", "eval_async", "eval_workers")


def comparable_dict(d: dict[str, Any]) -> dict[str, Any]:
    """:meth:`RunConfig.comparable` of a config dict as :meth:`RunConfig.to_dict` writes it."""
    # plugins: where components come from, not what they compute; online: the online phase never writes a checkpoint
    # (an interrupted one restarts from the offline checkpoint, docs/online.md), so checkpoints are those of the
    # offline steps whatever the online keys say — ``offrl finetune`` continues one with other online keys
    d = {k: v for k, v in d.items() if k not in ("offrl_version", "plugins", "online")}
    trainer = d.get("trainer")
    if isinstance(trainer, dict):
        d["trainer"] = {k: v for k, v in trainer.items() if k not in RUNTIME_KEYS}
    return d


def fingerprint(cfg: "RunConfig | dict[str, Any]") -> str:
    """SHA-256 of what a run computes (:meth:`RunConfig.comparable`): recorded in checkpoints and policy files, so
    a file copied from another run (another seed, other sizes, an edited config.json) is recognised on load."""
    import hashlib

    from offrl.rundir import floats_as_text

    d = comparable_dict(cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg))
    text = json.dumps(floats_as_text(d), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def config_diff(recorded: dict[str, Any], current: dict[str, Any], limit: int = 4) -> list[str]:
    """``section.key: RECORDED vs CURRENT`` for the keys a recorded config (a checkpoint's, a policy file's) holds
    with another value now (at most ``limit``; empty: the same run).

    Keys the recorded config lacks are not compared: they are hyperparameters a later offrl added, at their
    defaults, so a run written before an upgrade still continues.
    """
    from offrl.rundir import floats_as_text

    a, b = floats_as_text(comparable_dict(recorded)), floats_as_text(comparable_dict(current))
    out = []
    for section in sorted(a):
        x, y = a.get(section), b.get(section)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{section}.{k}: {x[k]!r} vs {y.get(k)!r}" for k in sorted(x) if x[k] != y.get(k)]
        elif x != y:
            out.append(f"{section}: {x!r} vs {y!r}")
    return out[:limit] + ([f"… {len(out) - limit} more"] if len(out) > limit else [])


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


SECTIONS = ("critic", "actor", "data", "trainer", "eval", "online")


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["critic.tau=0.9", "actor@fql.alpha=300"]`` -> ``{"critic": {"tau": "0.9"}, "actor@fql": {"alpha": "300"}}``.

    Values stay strings. ``actor@NAME.KEY`` / ``critic@NAME.KEY`` apply only when NAME is the chosen
    component, as preset sections do, so one sweep can tune each actor of its grid separately.
    """
    layer: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. critic.tau=0.9), got '{item}'")
        key, value = item.split("=", 1)
        section, _, name = key.strip().partition(".")
        base, at, scope = section.partition("@")
        if base not in SECTIONS or not name or (at and (base not in ("critic", "actor") or not scope)):
            raise ConfigError(
                f"--set key '{key}' must be SECTION.NAME with SECTION one of {', '.join(SECTIONS)}"
                f", or critic@NAME.KEY / actor@NAME.KEY for one component, critic@CRITIC+ACTOR.KEY / "
                f"actor@CRITIC+ACTOR.KEY for one pairing"
                f" (e.g. critic.tau=0.9, actor@fql.alpha=300, actor@td3+ddpg-bc.update_every=2)."
                f"{suggest(base, SECTIONS)}"
            )
        layer.setdefault(section, {})[name] = value.strip()
    return layer


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON config file into a layer."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"Config file '{p}' is a directory; give a TOML or JSON file.")
    if not p.is_file():
        raise ConfigError(f"Config file '{p}' does not exist.")
    kind = "TOML" if p.suffix == ".toml" else "JSON"
    try:
        text = p.read_bytes().decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of the text
    except UnicodeDecodeError as e:
        raise ConfigError(f"Config file '{p}' is not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}); "
                          f"a config file is {kind} text.") from None
    except OSError as e:
        raise ConfigError(f"Config file '{p}' cannot be read: {e.strerror or e}.") from None
    try:
        layer = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"Config file '{p}' is not valid {kind}: {e}") from None
    if not isinstance(layer, dict):
        raise ConfigError(f"Config file '{p}' must hold a table of sections ([critic], [actor], [data], [trainer], "
                          f"[eval]), not a {type(layer).__name__}.")
    layer.pop("offrl_version", None)
    for key in layer:
        if key not in (*SECTIONS, "preset", "plugins"):
            raise unknown(f"section in config file {p}", key, (*SECTIONS, "preset", "plugins"))
    return layer


def resolve(layers: list[dict[str, Any]]) -> RunConfig:
    """Merge layers (lowest precedence first) into a validated :class:`RunConfig`."""
    from offrl.actors import ACTORS
    from offrl.critics import CRITICS

    merged: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    scoped: list[tuple[int, str, str, dict[str, Any]]] = []  # (layer, section, NAME or CRITIC+ACTOR, values)
    preset = None
    plugins: list[str] = list(plugins_from_env())
    for index, layer in enumerate(layers):
        for section, values in layer.items():
            if section == "preset":
                preset = values
                continue
            if section == "plugins":
                if isinstance(values, str) or not isinstance(values, (list, tuple)):
                    raise ConfigError(f"'plugins' must be a list of module names, got {values!r}")
                plugins += [v for v in values if v not in plugins]
                continue
            base, _, scope = section.partition("@")
            if base not in SECTIONS or (scope and base not in ("critic", "actor")):
                raise unknown("config section", section, (*SECTIONS, "critic@NAME", "actor@NAME",
                                                          "critic@CRITIC+ACTOR", "actor@CRITIC+ACTOR"))
            if not isinstance(values, dict):
                raise ConfigError(f"config section '{section}' must be a table of KEY = VALUE, got {values!r}")
            if scope:
                scoped.append((index, base, scope, values))
            else:
                merged[base].update(values)
                # a later plain setting overrides earlier scoped ones for the same key
                scoped = [(i, b, n, {k: v for k, v in vals.items() if not (b == base and k in values)})
                          for i, b, n, vals in scoped]

    from offrl.plugins import load_plugins

    plugins = load_plugins(plugins)  # before the names are looked up: plugins register components
    for _, base, name, values in scoped:  # a misspelt scope or key would otherwise apply to nothing, silently
        if not name.strip():
            raise ConfigError(f"'{base}@' names no {base}: use {base}@NAME (e.g. actor@fql.alpha=300).")
        critic, plus, actor = name.partition("+")
        if plus:  # a pairing section: both names must exist; its keys belong to its own base's component
            CRITICS.get(critic)
            ACTORS.get(actor)
            _check_scoped(base, name, CRITICS.get(critic) if base == "critic" else ACTORS.get(actor), values)
        else:
            _check_scoped(base, name, (CRITICS if base == "critic" else ACTORS).get(name), values)
    critic_name = merged["critic"].pop("name", DEFAULT_CRITIC)
    actor_name = merged["actor"].pop("name", DEFAULT_ACTOR)
    for section, name in (("critic", critic_name), ("actor", actor_name)):
        if not isinstance(name, str):
            raise ConfigError(f"{section}.name must be the name of a {section} (see `offrl list {section}`), "
                              f"got {name!r}")
    chosen = {"critic": critic_name, "actor": actor_name}
    merged = _apply_scoped(merged, scoped, chosen)
    critic_cls = CRITICS.get(critic_name)
    actor_cls = ACTORS.get(actor_name)
    cfg = _check_preset_data(RunConfig(
        critic=critic_name,
        critic_cfg=build_dataclass(critic_cls.Config, merged["critic"], f"critic '{critic_name}'", "critic"),
        actor=actor_name,
        actor_cfg=build_dataclass(actor_cls.Config, merged["actor"], f"actor '{actor_name}'", "actor"),
        data=build_dataclass(DataConfig, merged["data"], "data", "data"),
        trainer=build_dataclass(TrainerConfig, merged["trainer"], "trainer", "trainer"),
        preset=preset,
        plugins=tuple(dict.fromkeys(plugins)),
        eval=build_dataclass(EvalConfig, merged["eval"], "eval", "eval"),
        online=build_dataclass(OnlineConfig, merged["online"], "online", "online"),
    ))
    from offrl.trainer.phases import check_phases

    check_phases(cfg)
    return cfg


def _check_scoped(base: str, name: str, cls: Any, values: dict[str, Any]) -> None:
    """Keys and values of a ``base@name`` section are checked even when ``name`` is not the chosen component."""
    names = [f.name for f in dataclasses.fields(cls.Config)]
    hints = typing.get_type_hints(cls.Config)
    for key, raw in values.items():
        if key == "name":
            raise ConfigError(f"'{base}@{name}' cannot set name: it applies when {base} '{name}' is chosen.")
        if key not in names:
            raise unknown(f"hyperparameter of {base} '{name}' ({base}@{name}.KEY)", key, names)
        coerce(raw, hints[key], f"{base}@{name}.{key}")


def resolve_saved(saved: dict[str, Any], source: str, how: str) -> RunConfig:
    """The :class:`RunConfig` of a config read back from a file (``config.json``, a policy file).

    The plugins it names are recorded, never imported (:func:`offrl.plugins.require` says which one is missing
    and ``how`` to load it); only plugins the user loaded (``--plugin``, ``OFFRL_PLUGINS``, entry points) count.
    """
    from offrl.plugins import require

    layer = {k: v for k, v in saved.items() if k not in ("offrl_version", "plugins")}
    recorded = saved.get("plugins") or []
    recorded = [m for m in recorded if isinstance(m, str)] if isinstance(recorded, list) else []
    require(layer, recorded, source, how)
    try:
        cfg = resolve([layer])
    except OfflineRLError as e:  # an edited or damaged file: say which one
        raise ConfigError(f"'{source}' holds a configuration this offrl cannot use: {e}") from None
    return dataclasses.replace(cfg, plugins=tuple(dict.fromkeys([*recorded, *cfg.plugins])))


def plugins_from_env() -> list[str]:
    from offrl.plugins import env_plugins

    return env_plugins()


def _apply_scoped(merged: dict[str, dict[str, Any]], scoped: list[tuple[int, str, str, dict[str, Any]]],
                  chosen: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Apply ``section@NAME`` and ``section@CRITIC+ACTOR`` values for the chosen components: layer by layer,
    pairings after components (plain keys set in later layers were already removed)."""
    pairing = f"{chosen['critic']}+{chosen['actor']}"
    for _, base, name, values in sorted(scoped, key=lambda s: (s[0], "+" in s[2])):  # stable: file order within
        if name == (pairing if "+" in name else chosen[base]):
            merged[base].update(values)
    return merged


def _check_preset_data(cfg: RunConfig) -> RunConfig:
    """A preset made for one family of datasets (``Preset.dataset_family``) refuses a run on another: the
    default dataset (the bandit) would otherwise train silently with, say, AntMaze's settings."""
    if not cfg.preset:
        return cfg
    from offrl.presets import PRESETS

    if cfg.preset not in PRESETS:
        return cfg
    preset = PRESETS.get(cfg.preset)
    family = preset.dataset_family
    if family and family not in cfg.data.dataset:
        raise ConfigError(
            f"Preset '{preset.name}' is for {family} datasets, and data.dataset is '{cfg.data.dataset}'. "
            f"{preset.data_note} Pass its id with --dataset (offrl data list shows the local datasets)."
        )
    return cfg


def build_dataclass(cls: type, values: dict[str, Any], what: str, prefix: str) -> Any:
    """Instantiate ``cls`` from ``values``, converting strings; unknown keys are errors."""
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, raw in values.items():
        if key not in names:
            raise unknown(f"hyperparameter of {what} ({prefix}.KEY)", key, names)
        kwargs[key] = coerce(raw, hints[key], f"{prefix}.{key}")
    try:
        return cls(**kwargs)
    except OfflineRLError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Invalid value for {what}: {e}") from None


def coerce(raw: Any, typ: Any, key: str) -> Any:
    """Convert ``raw`` (often a string from the command line) to ``typ``, or fail naming ``key``."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            if type(None) in args:
                return None
        non_none = [a for a in args if a is not type(None)]
        return coerce(raw, non_none[0], key)
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, str):
                v = float(raw.replace("_", "")) if any(c in raw for c in ".eE") else int(raw.replace("_", ""))
            else:
                v = raw
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError
            if float(v) != int(v):
                raise ValueError
            return int(v)
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if typ is str:
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):  # a list or table from a config file
                raise ValueError
            return str(raw)
        if origin is tuple:
            items = raw
            if isinstance(raw, str):
                s = raw.strip()
                items = ast.literal_eval(s) if s.startswith(("[", "(")) else [x for x in s.split(",") if x.strip()]
            if not isinstance(items, (list, tuple)):
                items = [items]
            elem = args[0] if args else str
            return tuple(coerce(x, elem, key) for x in items)
    except (ValueError, SyntaxError, TypeError, OverflowError, MemoryError, RecursionError):
        pass
    else:
        return raw
    raise ConfigError(f"{key}={raw!r} is not a valid {_type_name(typ)}.")


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) is tuple:
        return "list of " + _type_name(typing.get_args(typ)[0]) + "s (e.g. [256,256])"
    return {bool: "boolean (true/false)", int: "integer", float: "number", str: "string"}.get(typ, str(typ))
