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
    name = "local"                  # or "ray"
    workers = 2
    cpus_per_cell = 1
    gpus_per_cell = 0
    ray_address = "auto"
    seeds_per_process = 5           # seeds of a cell trained together in one process (default 1 on CPU,
                                    # every seed on CUDA)
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from offrl.errors import ConfigError

DEFAULT_CRITICS: tuple[str, ...] = ("expectile",)
DEFAULT_ACTORS: tuple[str, ...] = ("gaussian-awr",)
DEFAULT_DATASETS: tuple[str, ...] = ("offrl/bandit/multimodal-v0",)
BACKENDS: tuple[str, ...] = ("local", "ray")

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
    workers: int | None = None  # local: pool size (default: one per core); ray: concurrent cells
    cpus_per_cell: int | None = None  # local: default cores // workers; ray: default 1
    gpus_per_cell: float = 0.0  # ray only: the GPU share each cell requests
    ray_address: str | None = None  # ray only: join this cluster instead of starting one
    seeds_per_process: int | None = None  # seeds of one cell configuration trained together (default: 1 on CPU,
    # every seed on CUDA)

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ConfigError(f"Unknown backend '{self.name}'. Valid choices: {', '.join(BACKENDS)}.")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_cell is not None and self.cpus_per_cell < 1:
            raise ConfigError(f"cpus_per_cell must be >= 1, got {self.cpus_per_cell}")
        if self.seeds_per_process is not None and self.seeds_per_process < 1:
            raise ConfigError(f"seeds_per_process must be >= 1, got {self.seeds_per_process}")
        if self.gpus_per_cell < 0:
            raise ConfigError(f"gpus_per_cell must be >= 0, got {self.gpus_per_cell}")


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
        for label in ("critics", "actors", "datasets", "seeds"):
            values = getattr(self, label)
            if not values:
                raise ConfigError(f"A sweep needs at least one of {label}; got an empty list.")
            if len(set(values)) != len(values):
                raise ConfigError(f"Duplicate {label} in the sweep: {list(values)}")
        for s in self.seeds:
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                raise ConfigError(f"Seeds must be non-negative integers, got {s!r}")
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
        if value < 1:
            raise ConfigError(f"A seed count must be >= 1, got {value}.")
        return tuple(range(value))
    if isinstance(value, (list, tuple)):
        try:
            return tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"Invalid seeds {list(value)!r}: seeds are integers.") from None
    text = str(value).strip()
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
_BACKEND_KEYS = {"name", "workers", "cpus_per_cell", "gpus_per_cell", "ray_address", "seeds_per_process"}


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
    if run.get("config") is not None:
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
        return (value,) if isinstance(value, str) else tuple(value)

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
    except TypeError as e:  # wrong value types in the file
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
