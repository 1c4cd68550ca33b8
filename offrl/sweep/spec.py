"""What a sweep is: a grid of cells plus the run options every cell shares.

A sweep spec comes from a TOML file (``offrl sweep benchmarks/bandit.toml``),
from command-line flags, or both (flags override the file). It is split in two
on purpose:

- the *identity* of the sweep (the grid and the shared run options) decides
  what each cell computes, so it is saved in ``SWEEP_DIR/sweep.json`` and a
  rerun that changes the shared options is refused rather than silently mixing
  two experiments in one directory;
- the *execution* options (backend, workers, CPUs per cell) only decide where
  and how fast cells run, so they may change between reruns.

TOML layout (every table and key optional)::

    [sweep]
    name = "bandit"
    out = "runs/bandit"             # the sweep directory
    critics = ["expectile", "quantile"]
    actors = ["gaussian-awr"]
    datasets = ["offrl/bandit/multimodal-v0"]
    seeds = 5                       # or a list: [0, 1, 2]

    [run]                           # options passed to every `offrl run`
    preset = "bandit"
    steps = 20000
    eval_every = 2000
    eval_episodes = 50
    save_every = 2000
    device = "cpu"
    config = "my_config.toml"       # relative to the spec file
    set = ["trainer.log_every=500"]

    [grid]                          # hyperparameter lists: one cell per combination
    "critic.tau" = [0.6, 0.7, 0.9]

    [bottleneck]                    # a data-scaling study (docs/bottleneck.md): adds the matrix
    value_fractions = [0.1, 1.0]    # data.value_fraction × data.policy_fraction to the grid and the
    policy_fractions = [0.1, 1.0]   # protocol's settings to [run] set (offrl.bottleneck.study)

    [backend]
    name = "local"                  # or "ray", "slurm"
    workers = 2                     # slurm: array tasks running at once
    cpus_per_cell = 1
    gpus_per_cell = 0
    ray_address = "auto"
    seeds_per_process = 5           # seeds of a cell trained together in one process (default 1 on CPU,
                                    # every seed on CUDA)
    slurm_partition = "gpu"         # slurm only (offrl.sweep.slurm_backend): sbatch's --partition,
    slurm_time = "4:00:00"          # --time (minutes, H:MM:SS or D-HH:MM:SS; a cell that outlives it is
    slurm_mem = "16G"               # checkpointed and requeued), --mem, --account, --qos,
    slurm_account = "my-lab"
    slurm_qos = "normal"
    slurm_sbatch = ["constraint=a100"]   # any other sbatch option, KEY=VALUE or KEY
    slurm_setup = ["module load cuda"]   # shell lines run in the job before the cell
    slurm_executor = "slurm"        # or "local": submitit's local executor (processes on this machine)
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from offrl.errors import ConfigError
from offrl.validation import MAX_SEED

#: Most seeds a sweep may name, and most cells its grid may expand to: more is a typo (``seeds = "0-100000000"``)
#: that would otherwise take minutes to expand and gigabytes to hold before anything runs.
MAX_SWEEP_SEEDS = 10_000
MAX_CELLS = 100_000

DEFAULT_CRITICS: tuple[str, ...] = ("expectile",)
DEFAULT_ACTORS: tuple[str, ...] = ("gaussian-awr",)
DEFAULT_DATASETS: tuple[str, ...] = ("offrl/bandit/multimodal-v0",)
BACKENDS: tuple[str, ...] = ("local", "ray", "slurm")
#: Where the SLURM backend's jobs run: a SLURM cluster (sbatch), or submitit's local executor (processes here).
SLURM_EXECUTORS: tuple[str, ...] = ("slurm", "local")
#: A SLURM job's time limit when none is given (``slurm_time``), in minutes.
DEFAULT_SLURM_TIME_MIN = 240
#: sbatch options the SLURM backend sets itself (the job array, its log files, the time-limit warning).
RESERVED_SBATCH: tuple[str, ...] = ("array", "output", "error", "signal", "open-mode")
_SLURM_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_SLURM_MEM_RE = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(@[A-Za-z0-9_-]+)?(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class RunOptions:
    """Options shared by every cell, forwarded to ``offrl run``; ``None`` leaves the run's default.

    Unset options are *not* passed, so a preset's own defaults (steps, eval
    cadence) stay in force unless the sweep overrides them.
    """

    steps: int | None = None
    eval_every: int | None = None
    eval_episodes: int | None = None
    save_every: int | None = None
    preset: str | None = None
    config: str | None = None
    device: str | None = None
    sets: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("steps", "eval_every", "eval_episodes", "save_every"):  # text is checked by offrl run's rules
            value = getattr(self, key)
            if value is not None and not (_is_int(value) or isinstance(value, str)):
                raise ConfigError(f"[run] {key} must be an integer, got {value!r}")
        for key in ("preset", "config", "device"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"[run] {key} must be a string, got {value!r}")
        for key in ("sets", "plugins"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"[run] {'set' if key == 'sets' else key} must be a list of strings, got {value!r}")

    def argv(self) -> list[str]:
        """The ``offrl run`` flags for these options (unset ones omitted)."""
        out: list[str] = []
        for name in ("steps", "eval_every", "eval_episodes", "save_every", "preset", "config", "device"):
            value = getattr(self, name)
            if value is not None:
                out += ["--" + name.replace("_", "-"), str(value)]
        for item in self.sets:
            out += ["--set", item]
        for module in self.plugins:
            out += ["--plugin", module]
        return out

    def sets_key(self, key: str) -> bool:
        """Whether the shared ``--set`` list already assigns ``key``."""
        return any(s.split("=", 1)[0].strip() == key for s in self.sets)


@dataclass(frozen=True)
class BackendOptions:
    """Where and how cells run; may change between reruns of the same sweep."""

    name: str = "local"
    workers: int | None = None  # local: pool size (default: one per core); ray: concurrent cells; slurm: array
    # tasks running at once (default: as many as the queue allows)
    cpus_per_cell: int | None = None  # local: default cores // workers; ray, slurm: default 1
    gpus_per_cell: float = 0.0  # ray: the GPU share each cell requests; slurm: whole GPUs per job
    ray_address: str | None = None  # ray only: join this cluster instead of starting one
    seeds_per_process: int | None = None  # seeds of one cell configuration trained together (default: 1 on CPU,
    # every seed on CUDA)
    slurm_partition: str | None = None  # slurm only, from here on: sbatch's --partition
    slurm_time: int | str | None = None  # --time: minutes, or sbatch's H:MM:SS / D-HH:MM:SS (stored as minutes)
    slurm_mem: str | None = None  # --mem: e.g. "16G"
    slurm_account: str | None = None  # --account
    slurm_qos: str | None = None  # --qos
    slurm_sbatch: tuple[str, ...] = ()  # any other sbatch option: "KEY=VALUE" or "KEY"
    slurm_setup: tuple[str, ...] = ()  # shell lines the job runs before the cell (module load, venv)
    slurm_executor: str = "slurm"  # "local": submitit's local executor (processes on this machine)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in BACKENDS:
            raise ConfigError(f"Unknown backend {self.name!r}. Valid choices: {', '.join(BACKENDS)}.")
        for key in ("workers", "cpus_per_cell", "seeds_per_process"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
        value = self.gpus_per_cell
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ConfigError(f"gpus_per_cell must be a number >= 0 (a GPU share, e.g. 0.25), got {value!r}")
        if self.ray_address is not None and not isinstance(self.ray_address, str):
            raise ConfigError(f"ray_address must be a string (e.g. 'auto'), got {self.ray_address!r}")
        self._check_slurm()

    def _check_slurm(self) -> None:
        """Validate (and normalise: lists to tuples, a time to minutes) the ``slurm_*`` options."""
        for key in ("slurm_partition", "slurm_account", "slurm_qos"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip() or value != value.strip()):
                raise ConfigError(f"{key} must be a name (a non-empty string without spaces around it), got {value!r}")
        for key in ("slurm_sbatch", "slurm_setup"):
            value = getattr(self, key)
            value = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else value
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{key} must be a list of strings, got {value!r}")
            object.__setattr__(self, key, value)
        self.sbatch_parameters()  # a malformed or reserved option is an error now, not at submission
        if self.slurm_time is not None:
            object.__setattr__(self, "slurm_time", parse_slurm_time(self.slurm_time))
        if self.slurm_mem is not None and (not isinstance(self.slurm_mem, str)
                                           or not _SLURM_MEM_RE.match(self.slurm_mem)):
            raise ConfigError(f"slurm_mem must be a size as sbatch --mem takes it (e.g. '16G', '500M', '4096'), got "
                              f"{self.slurm_mem!r}")
        if self.slurm_executor not in SLURM_EXECUTORS:
            raise ConfigError(f"Unknown slurm_executor {self.slurm_executor!r}. Valid choices: "
                              f"{', '.join(SLURM_EXECUTORS)}.")
        if self.name == "slurm" and self.gpus_per_cell != int(self.gpus_per_cell):
            raise ConfigError(f"gpus_per_cell must be a whole number with the slurm backend (SLURM allocates whole "
                              f"GPUs; --seeds-per-process shares one among seeds), got {self.gpus_per_cell!r}")

    @property
    def slurm_time_min(self) -> int:
        """The SLURM job's time limit in minutes."""
        return int(self.slurm_time) if self.slurm_time is not None else DEFAULT_SLURM_TIME_MIN

    def sbatch_parameters(self) -> dict[str, str | bool]:
        """``slurm_sbatch`` as submitit's ``additional_parameters``: ``{"constraint": "a100", "exclusive": True}``."""
        out: dict[str, str | bool] = {}
        for item in self.slurm_sbatch:
            key, sep, value = item.partition("=")
            key = key.strip().lstrip("-").strip()
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
                raise ConfigError(f"Invalid slurm_sbatch item {item!r}: expected KEY=VALUE or KEY, as sbatch options "
                                  "without their dashes (e.g. constraint=a100, exclusive).")
            key = key.replace("_", "-")
            if key in RESERVED_SBATCH:
                raise ConfigError(f"slurm_sbatch cannot set '{key}': the SLURM backend sets "
                                  f"{', '.join(RESERVED_SBATCH)} "
                                  "itself (the job array, its logs and the time-limit warning). Use --workers for the "
                                  "number of array tasks at once.")
            out[key] = value.strip() if sep else True
        return out


@dataclass(frozen=True)
class SweepSpec:
    """A resolved sweep: the grid (critics × actors × datasets × seeds × grid values) and shared options."""

    name: str = "sweep"
    critics: tuple[str, ...] = DEFAULT_CRITICS
    actors: tuple[str, ...] = DEFAULT_ACTORS
    datasets: tuple[str, ...] = DEFAULT_DATASETS
    seeds: tuple[int, ...] = (0,)
    grid: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, values as passed to --set), key order kept
    run: RunOptions = field(default_factory=RunOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)
    out: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"The sweep's name must be a non-empty string, got {self.name!r}")
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            raise ConfigError(f"The sweep's out must be a folder (a string), got {self.out!r}")
        for label in ("critics", "actors", "datasets"):
            values = getattr(self, label)
            if not isinstance(values, tuple) or not all(isinstance(v, str) and v.strip() for v in values):
                raise ConfigError(f"The sweep's {label} must be a list of names (strings), got {values!r}")
        for label in ("critics", "actors", "datasets", "seeds"):
            values = getattr(self, label)
            if not values:
                raise ConfigError(f"A sweep needs at least one of {label}; got an empty list.")
            if len(set(values)) != len(values):
                raise ConfigError(f"Duplicate {label} in the sweep: {list(values)}")
        for s in self.seeds:
            if not _is_int(s) or not 0 <= s <= MAX_SEED:
                raise ConfigError(f"Seeds must be integers in [0, {MAX_SEED}], got {s!r}")
        if len(self.seeds) > MAX_SWEEP_SEEDS:
            raise ConfigError(f"The sweep names {len(self.seeds):,} seeds; at most {MAX_SWEEP_SEEDS:,} are allowed.")
        from offrl.data.store import validate_id

        for dataset in self.datasets:  # '..' or an absolute path: refused when the sweep is planned
            validate_id(dataset)
        keys = [k for k, _ in self.grid]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"Duplicate grid keys: {keys}")
        for key, values in self.grid:
            if not _KEY_RE.match(key):
                raise ConfigError(
                    f"Grid key '{key}' must be a dotted config key such as 'critic.tau', 'trainer.lr' or "
                    "'actor@fql.alpha' (one component)."
                )
            if not values:
                raise ConfigError(f"Grid key '{key}' has no values.")
            if len(set(values)) != len(values):
                raise ConfigError(f"Duplicate values for grid key '{key}': {list(values)}")
        cells = len(self.critics) * len(self.actors) * len(self.datasets) * len(self.seeds)
        for _, values in self.grid:
            cells *= len(values)
        if cells > MAX_CELLS:
            raise ConfigError(f"The sweep's grid has {cells:,} cells; at most {MAX_CELLS:,} are allowed (split it into "
                              "several sweeps).")

    @property
    def grid_dict(self) -> dict[str, tuple[str, ...]]:
        return dict(self.grid)

    def identity(self) -> dict[str, Any]:
        """The part of the spec that decides what cells compute (the shared run options).

        The grid itself is not part of it: adding seeds or grid values to an
        existing sweep directory is allowed, changing ``steps`` is not.
        """
        return {"run": _jsonable(asdict(self.run))}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "critics": list(self.critics),
            "actors": list(self.actors),
            "datasets": list(self.datasets),
            "seeds": list(self.seeds),
            "grid": {k: list(v) for k, v in self.grid},
            "run": _jsonable(asdict(self.run)),
            "backend": asdict(self.backend),
            "out": self.out,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SweepSpec":
        run = dict(data.get("run", {}))
        run["sets"] = tuple(run.get("sets", ()))
        run["plugins"] = tuple(run.get("plugins", ()))
        return cls(
            name=data.get("name", "sweep"),
            critics=tuple(data["critics"]),
            actors=tuple(data["actors"]),
            datasets=tuple(data["datasets"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            grid=tuple((k, tuple(v)) for k, v in data.get("grid", {}).items()),
            run=RunOptions(**run),
            backend=BackendOptions(**data.get("backend", {})),
            out=data.get("out"),
        )

    def with_overrides(self, **overrides: Any) -> "SweepSpec":
        """A copy with every override that is not ``None`` applied (run/backend keys go to their part)."""
        run_names = {f.name for f in fields(RunOptions)}
        backend_names = {"backend" if f.name == "name" else f.name for f in fields(BackendOptions)}
        top, run, backend = {}, {}, {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key in run_names:
                run[key] = value
            elif key in backend_names:
                backend["name" if key == "backend" else key] = value
            else:
                top[key] = value
        return replace(
            self, run=replace(self.run, **run), backend=replace(self.backend, **backend), **top
        )


def parse_slurm_time(value: Any) -> int:
    """A SLURM time limit in whole minutes: ``90``, ``"90"``, ``"1:30:00"``, ``"2-00:00:00"``, ``"1-12"``.

    The formats are sbatch's (``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
    ``days-hours:minutes``, ``days-hours:minutes:seconds``); seconds are rounded up to a minute.
    """
    if _is_int(value):
        minutes = value
    else:
        match = _SLURM_TIME_RE.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise ConfigError(f"Invalid slurm_time {value!r}: give minutes (e.g. 90) or one of sbatch's formats, "
                              "H:MM:SS or D-HH:MM:SS (e.g. '4:00:00', '2-00:00:00').")
        days, a, b, c = match.groups()
        parts = [int(x) for x in (a, b, c) if x is not None]
        if days is not None:  # days-hours[:minutes[:seconds]]
            hours, mins, secs = (parts + [0, 0])[:3]
            seconds = ((int(days) * 24 + hours) * 60 + mins) * 60 + secs
        elif len(parts) == 1:  # minutes
            seconds = parts[0] * 60
        elif len(parts) == 2:  # minutes:seconds
            seconds = parts[0] * 60 + parts[1]
        else:  # hours:minutes:seconds
            seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
        minutes = -(-seconds // 60)
    if minutes < 1:
        raise ConfigError(f"slurm_time must be at least one minute, got {value!r}.")
    return minutes


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# ---------------------------------------------------------------- parsing helpers


def split_list(text: str) -> list[str]:
    """Split ``a,b,[1,2],c`` on top-level commas (commas inside brackets or quotes stay)."""
    items: list[str] = []
    depth, quote, current = 0, "", []
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return [i for i in items if i]


def parse_names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeatable comma-separated flag values -> tuple (``None`` when the flag was not given)."""
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return tuple(out)


def parse_seeds(value: Any) -> tuple[int, ...]:
    """Seeds from ``5`` (= 0..4), ``"0,2,4"``, ``"0-4"`` (inclusive) or a list of ints."""
    if isinstance(value, bool):
        raise ConfigError(f"Invalid seeds {value!r}: give a count, a list, 'a,b,c' or 'a-b'.")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SWEEP_SEEDS:
            raise ConfigError(f"A seed count must be in [1, {MAX_SWEEP_SEEDS:,}], got {value:,}.")
        return tuple(range(value))
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_SWEEP_SEEDS:
            raise ConfigError(f"{len(value):,} seeds given; a sweep names at most {MAX_SWEEP_SEEDS:,}.")
        bad = [v for v in value if not (_is_int(v) or (isinstance(v, str) and v.strip().isdigit()))]
        if bad:  # 0.5 would otherwise become seed 0, silently
            raise ConfigError(f"Invalid seeds {list(value)!r}: seeds are whole numbers, got {bad[0]!r}.")
        return tuple(int(v) for v in value)
    if not isinstance(value, str):
        raise ConfigError(f"Invalid seeds {value!r}: give a count, a list, 'a,b,c' or 'a-b'.")
    text = value.strip()
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if re.fullmatch(r"\d+-\d+", part):
                lo, hi = (int(x) for x in part.split("-"))
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > MAX_SWEEP_SEEDS:  # checked before the range is expanded
                    raise ConfigError(f"Seeds '{text}' name more than {MAX_SWEEP_SEEDS:,} seeds, the most a sweep "
                                      "may name.")
                seeds += range(lo, hi + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(
            f"Invalid seeds '{text}': give integers like '0,1,2' or an inclusive range like '0-4'."
        ) from None
    if not seeds:
        raise ConfigError(f"Invalid seeds '{text}': no seed given.")
    return tuple(seeds)


def parse_grid_flag(item: str) -> tuple[str, tuple[str, ...]]:
    """``critic.tau=0.6,0.7,0.9`` -> ("critic.tau", ("0.6", "0.7", "0.9")); brackets keep commas."""
    if "=" not in item:
        raise ConfigError(f"Invalid --grid '{item}': expected KEY=V1,V2,... (e.g. critic.tau=0.6,0.7,0.9).")
    key, values = item.split("=", 1)
    return key.strip(), tuple(split_list(values))


def format_value(value: Any) -> str:
    """A TOML value as ``offrl run --set`` expects it (JSON for lists and booleans)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, list, tuple, dict)) or value is None:
        return json.dumps(value, separators=(",", ":"))
    return repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- TOML files

_TOML_TABLES = {"sweep", "run", "grid", "backend", "bottleneck"}
_SWEEP_KEYS = {"name", "out", "critics", "actors", "datasets", "seeds"}
_RUN_KEYS = {"steps", "eval_every", "eval_episodes", "save_every", "preset", "config", "device", "set", "plugins"}
_BACKEND_KEYS = {f.name for f in fields(BackendOptions)}


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec file (TOML); unknown tables or keys are errors naming the valid ones."""
    path = Path(path)
    data = read_toml(path)
    _check_keys(path, "top level", data, _TOML_TABLES)
    sweep = data.get("sweep", {})
    run = dict(data.get("run", {}))
    grid = data.get("grid", {})
    backend = dict(data.get("backend", {}))
    _check_keys(path, "[sweep]", sweep, _SWEEP_KEYS)
    _check_keys(path, "[run]", run, _RUN_KEYS)
    _check_keys(path, "[backend]", backend, _BACKEND_KEYS)

    if "set" in run:
        sets = run.pop("set")
        sets = [sets] if isinstance(sets, str) else sets
        if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
            raise ConfigError(
                f"Sweep spec '{path}': [run] set must be a list of \"KEY=VALUE\" strings "
                f"(e.g. set = [\"critic.tau=0.9\"]), got {sets!r}."
            )
        run["sets"] = tuple(sets)
    if "plugins" in run:
        run["plugins"] = (run["plugins"],) if isinstance(run["plugins"], str) else run["plugins"]
        run["plugins"] = tuple(run["plugins"]) if isinstance(run["plugins"], list) else run["plugins"]
    if run.get("config") is not None and isinstance(run["config"], str):
        config = Path(run["config"])
        run["config"] = str(config if config.is_absolute() else (path.parent / config))
    if "bottleneck" in data:  # the data-scaling matrix and the protocol's settings (offrl.bottleneck.study)
        from offrl.bottleneck.study import expand

        grid, sets = expand(data["bottleneck"], path, grid, list(run.get("sets", ())))
        run["sets"] = tuple(sets)
    grid_items: list[tuple[str, tuple[str, ...]]] = []
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        grid_items.append((key, tuple(format_value(v) for v in values)))

    def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = sweep.get(key, default)
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"[sweep] {key} must be a name or a list of names, got {value!r}.")
        return tuple(value)

    try:
        return SweepSpec(
            name=sweep.get("name", path.stem),
            critics=names("critics", DEFAULT_CRITICS),
            actors=names("actors", DEFAULT_ACTORS),
            datasets=names("datasets", DEFAULT_DATASETS),
            seeds=parse_seeds(sweep.get("seeds", [0])),
            grid=tuple(grid_items),
            run=RunOptions(**run),
            backend=BackendOptions(**backend),
            out=sweep.get("out"),
        )
    except (TypeError, ValueError) as e:  # wrong value types in the file
        raise ConfigError(f"Sweep spec '{path}': {e}") from None
    except ConfigError as e:
        raise ConfigError(f"Sweep spec '{path}': {e}") from None


def read_toml(path: Path) -> dict[str, Any]:
    """The spec file's tables; a clear error if it is missing, a directory, binary, not UTF-8 or not TOML."""
    if path.is_dir():
        raise ConfigError(f"Sweep spec '{path}' is a directory; give a .toml spec file (e.g. benchmarks/bandit.toml).")
    if not path.is_file():
        raise ConfigError(f"Sweep spec '{path}' does not exist (expected a .toml file, e.g. benchmarks/bandit.toml).")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"Cannot read sweep spec '{path}': {e.strerror or e}.") from None
    if b"\0" in raw:
        raise ConfigError(f"Sweep spec '{path}' is a binary file, not a TOML text file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"Sweep spec '{path}' is not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); TOML files are UTF-8."
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Sweep spec '{path}' is not valid TOML: {e}") from None


def _check_keys(path: Path, where: str, table: Any, valid: set[str]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"Sweep spec '{path}': {where} must be a table.")
    for key in table:
        if key not in valid:
            raise ConfigError(
                f"Sweep spec '{path}': unknown key '{key}' in {where}. Valid keys: {', '.join(sorted(valid))}."
            )
