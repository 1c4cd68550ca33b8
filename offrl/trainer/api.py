"""Entry points of training: start a new run, continue runs, and the Python API (``train``, ``resume``).

A new run (one seed, or several on a seed axis) or the continuation of
existing run directories each becomes one :class:`~offrl.trainer.trainer.Trainer`;
runs that already ended are read, never written (:class:`EndedRuns`).

Continuing a run trusts nothing in its folder: the run directories a group
lists stay inside the group (:func:`offrl.rundir.read_group`), no run file may
be a symbolic link, the plugins ``config.json`` names are never imported
(only those the caller loads: ``plugins=``, ``--plugin``, ``OFFRL_PLUGINS``,
entry points), and checkpoints are read as data and checked against the run
(:mod:`offrl.trainer.checkpoint`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from offrl import rundir
from offrl.config import RunConfig
from offrl.errors import ConfigError, RunDirError
from offrl.trainer.runs import GroupResult, RunResult, SeedRun
from offrl.trainer.trainer import Trainer


def start(cfg: RunConfig, out: str | Path, show_progress: bool = False) -> Trainer:
    """A trainer for a new run in ``out``: the run directory (one seed), or for several seeds
    (``trainer.seeds``) the group directory holding ``seed<S>/`` per seed — or, when ``out`` contains
    ``{seed}``, one directory per seed named by that template (no group directory; ``offrl sweep``
    uses this to put grouped seeds in their cells' directories)."""
    seeds = cfg.trainer.seed_list()
    if not cfg.trainer.seeds.strip():
        return Trainer(cfg, [SeedRun(seeds[0], Path(out), cfg)], show_progress=show_progress)
    if "{seed}" in str(out):
        runs = [SeedRun(s, Path(str(out).replace("{seed}", str(s))), cfg.for_seed(s)) for s in seeds]
        return Trainer(cfg, runs, show_progress=show_progress)
    out = Path(out)
    if (out / rundir.CONFIG).exists() or (out / rundir.GROUP).exists():
        raise RunDirError(f"'{out}' already holds a run. Continue it with `offrl run --resume {out}` "
                          "or choose another --out.")
    runs = [SeedRun(s, rundir.seed_dir(out, s), cfg.for_seed(s)) for s in seeds]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"Cannot write to run directory '{out}': {e.strerror or e}.") from None
    return Trainer(cfg, runs, show_progress=show_progress, group_dir=out)


def resume_dirs(path: str | Path) -> tuple[list[Path], Path | None]:
    """The run directories to continue for ``path`` (a run directory, or a group directory)."""
    path = Path(path)
    group = rundir.read_group(path)
    if group is not None:
        return group, path
    return [path], None


def continue_runs(paths: list[str | Path], show_progress: bool = False,
                  runtime: dict[str, Any] | None = None, plugins: Iterable[str] = ()) -> "Trainer | EndedRuns":
    """A trainer continuing the runs in ``paths`` (run or group directories) together.

    ``runtime`` may change how the run executes (device, threads, compile, …: the
    trainer keys of :data:`offrl.config.RUNTIME_KEYS`), never what it computes.
    ``plugins`` are imported first (a run trained with your own components; the plugins its
    ``config.json`` names are never imported for you).
    """
    from offrl.plugins import load_plugins

    load_plugins(plugins)
    dirs: list[Path] = []
    group_dir = None
    for p in paths:
        found, group = resume_dirs(p)
        dirs += found
        group_dir = group if len(paths) == 1 else None
    for d in dirs:
        rundir.check_no_links(d)
    cfgs = [load_run_config(d) for d in dirs]
    if runtime:
        cfgs = [_with_runtime(c, runtime) for c in cfgs]
    base = cfgs[0].comparable()
    base["trainer"].pop("seed")
    for d, c in zip(dirs[1:], cfgs[1:]):
        other = c.comparable()
        other["trainer"].pop("seed")
        if other != base:
            raise RunDirError(f"'{d}' and '{dirs[0]}' are not the same experiment with different seeds; "
                              "only seeds of one configuration can continue together.")
    if all(rundir.has_ended(d) for d in dirs):  # nothing to train: read, never write (the directory may be read-only)
        return EndedRuns(cfgs[0], [SeedRun(c.trainer.seed, d, c) for d, c in zip(dirs, cfgs)], group_dir)
    seeds = [c.trainer.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise RunDirError(f"The runs to continue repeat a seed ({seeds}).")
    ended = [SeedRun(c.trainer.seed, d, c) for d, c in zip(dirs, cfgs) if rundir.has_ended(d)]
    if ended:  # e.g. a seed that diverged in a group: it stays as it ended, the others continue
        keep = [i for i, d in enumerate(dirs) if not rundir.has_ended(d)]
        dirs, cfgs, seeds = [dirs[i] for i in keep], [cfgs[i] for i in keep], [seeds[i] for i in keep]
    group_cfg = cfgs[0]
    if len(dirs) > 1:
        import dataclasses

        group_cfg = dataclasses.replace(cfgs[0], trainer=dataclasses.replace(
            cfgs[0].trainer, seeds=",".join(str(s) for s in seeds)))
    runs = [SeedRun(c.trainer.seed, d, c) for d, c in zip(dirs, cfgs)]
    trainer = Trainer(group_cfg, runs, resume=True, show_progress=show_progress, group_dir=group_dir)
    trainer.ended = EndedRuns(cfgs[0], ended, None) if ended else None
    return trainer


class EndedRuns:
    """What ``--resume`` of runs that already ended returns: their results, without touching their files."""

    def __init__(self, cfg: RunConfig, runs: list[SeedRun], group_dir: Path | None) -> None:
        self.cfg, self.runs, self.group_dir = cfg, runs, group_dir
        self.step = cfg.trainer.steps

    def run(self) -> list[RunResult]:
        out = []
        for r in self.runs:
            summary = rundir.read_summary(r.run_dir) or {}
            out.append(RunResult(r.run_dir, int(summary.get("steps", 0)), summary.get("status") == "finished", summary))
        return out


def _with_runtime(cfg: RunConfig, runtime: dict[str, Any]) -> RunConfig:
    import dataclasses

    from offrl.config import RUNTIME_KEYS, build_dataclass

    bad = sorted(set(runtime) - set(RUNTIME_KEYS))
    if bad:
        raise ConfigError(f"trainer.{bad[0]} cannot change when a run is resumed (only {', '.join(RUNTIME_KEYS)}).")
    values = {**dataclasses.asdict(cfg.trainer), **runtime}
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return dataclasses.replace(cfg, trainer=build_dataclass(type(cfg.trainer), values, "trainer", "trainer"))


def train(cfg: RunConfig, run_dir: str | Path, show_progress: bool = False) -> RunResult | GroupResult:
    """Python API: train ``cfg`` in ``run_dir`` (a new directory).

    Returns a :class:`RunResult`, or a :class:`GroupResult` when ``trainer.seeds`` names several seeds.
    """
    trainer = start(cfg, run_dir, show_progress=show_progress)
    results = trainer.run()
    if cfg.eval.ope:  # eval.ope: the FQE estimate of each final policy (offrl.ope)
        from offrl.ope import after_training

        after_training(results, cfg)
    return GroupResult(Path(run_dir), results) if trainer.group_dir is not None else results[0]


def resume(run_dir: str | Path, show_progress: bool = False, plugins: Iterable[str] = ()) -> RunResult | GroupResult:
    """Python API: continue the run (or the multi-seed run) in ``run_dir`` from its latest checkpoint
    (``plugins``: modules to import first, for a run of your own components)."""
    trainer = continue_runs([run_dir], show_progress=show_progress, plugins=plugins)
    results = trainer.run()
    return GroupResult(Path(run_dir), results) if trainer.group_dir is not None else results[0]


def saved_config_layer(run_dir: str | Path) -> dict[str, Any]:
    """The config layer saved in ``run_dir`` without the plugins it records (never imported from a file: see
    :func:`load_run_config`); a clear error if it holds no run."""
    saved = rundir.read_config(Path(run_dir))
    saved.pop("plugins", None)
    return saved


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The :class:`RunConfig` saved in ``run_dir``; the plugins it names are recorded, not imported (one message
    naming a plugin whose components are not registered, and ``--plugin`` to load it)."""
    from offrl.config import resolve_saved

    return resolve_saved(rundir.read_config(Path(run_dir)), str(Path(run_dir) / rundir.CONFIG),
                         f"`offrl run --resume {run_dir} --plugin MODULE` (Python: "
                         "`offrl.resume(RUN_DIR, plugins=['MODULE'])`)")
