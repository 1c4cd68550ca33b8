"""What a sweep will cost (``offrl sweep --dry-run``): its unfinished cells' run time from measured rates.

A process (one cell, or E seeds of a cell configuration with ``--seeds-per-process E``) takes

    start-up + setup + Σ over its seeds (iterations left ÷ rate + evaluations × rounds × seconds per round)

where a round is ``trainer.eval_envs`` evaluation episodes run together. An online phase adds
``online.steps × online.updates_per_step`` iterations and its evaluations (the environment steps themselves are
not costed: the estimate says so). Seeds in one process are costed one
after another: right on a CPU, pessimistic on a GPU. The rates come, best first, from

1. the sweep directory's own finished runs (``summary.json``: steps, ``wall_time_s``, ``setup_s``, ``eval_s``,
   evaluations; ``config.json``: the evaluation episodes), the median over runs of the same pairing on the same
   dataset, else of the same pairing on any dataset (evaluation then scaled by episode length);
2. offrl's built-in table (:mod:`offrl.sweep.rates_table`, measured by ``benchmarks/sweep_rates.py`` on one CPU
   thread, eager), by preset and pairing; a preset it lacks uses offrl's default networks' rate.

From the processes' times: CPU-hours (× the backend's threads per cell), GPU-hours (× GPUs per cell) and the
wall time of running them ``workers`` at a time (longest first onto the first free worker).
"""
from __future__ import annotations

import heapq
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from offrl.cli.terminal import plural
from offrl.rundir import CONFIG, SUMMARY, TRAIN_LOG, last_row, read_json, run_state
from offrl.sweep.cells import Cell
from offrl.sweep.layout import SweepLayout
from offrl.sweep.spec import SweepSpec

#: Where each kind of rate comes from, as the estimate says it.
SOURCES = {
    "sweep": "finished runs in this sweep directory",
    "sweep-pairing": "finished runs of the same pairing (other datasets) in this sweep directory",
    "table": "offrl's built-in table",
    "table-default": "offrl's built-in table, default networks (the preset is not in it)",
}


@dataclass(frozen=True)
class Rate:
    """How fast one seed of a pairing trains and evaluates, and where that was measured."""

    it_per_s: float  # training iterations per second (of one seed)
    setup_s: float  # the run's setup, once per process
    eval_round_s: float | None  # seconds per evaluation round, on the rate's own dataset (None: per round-step)
    eval_round_step_s: float  # seconds per step of an evaluation round (× episode length)
    source: str  # a key of SOURCES


@dataclass(frozen=True)
class CellCost:
    """One unfinished cell: the work left and its estimated seconds (``None`` without a rate)."""

    key: str
    seconds: float | None  # training and evaluation of this seed, without the process's start-up and setup
    setup_s: float
    source: str | None
    eval_counted: bool


@dataclass
class Estimate:
    """The sweep's cost: per cell, per process, in total."""

    cells: dict[str, CellCost]
    process_s: list[float]  # each process still to run (cells without a rate left out)
    processes: int  # processes still to run, costed or not
    threads: int
    gpus: float
    workers: int | None  # None: every process at once (a SLURM queue with no limit)
    backend: str
    on_gpu: bool
    machine: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_hours(self) -> float:
        return sum(self.process_s) * self.threads / 3600

    @property
    def gpu_hours(self) -> float:
        return sum(self.process_s) * self.gpus / 3600

    @property
    def wall_s(self) -> float:
        return makespan(self.process_s, self.workers)

    def cell_text(self, key: str) -> str:
        """The cell's estimate for the plan table ('' for a cell that has ended)."""
        cost = self.cells.get(key)
        if cost is None:
            return ""
        return "?" if cost.seconds is None else duration(cost.seconds + cost.setup_s)

    def lines(self) -> list[str]:
        """What ``--dry-run`` prints under the grid."""
        todo = [c for c in self.cells.values()]
        costed = [c for c in todo if c.seconds is not None]
        if not todo:
            return ["estimated cost: nothing to run (every cell has ended)"]
        parts = [f"{plural(len(todo), 'cell')} to run in {plural(self.processes, 'process', 'processes')}",
                 f"{hours(self.cpu_hours)} CPU-hours"]
        if self.gpus:
            parts.append(f"{hours(self.gpu_hours)} GPU-hours")
        at = "if all run at once" if self.workers is None else f"on {plural(self.workers, 'worker')}"
        parts.append(f"wall time ≈ {duration(self.wall_s)} {at} ({self.backend})")
        out = ["estimated cost: " + ", ".join(parts)]
        by_source: dict[str, int] = {}
        for c in costed:
            by_source[c.source or ""] = by_source.get(c.source or "", 0) + 1
        rates = "; ".join(f"{plural(n, 'cell')} from {SOURCES[s]}" for s, n in by_source.items())
        if any(s.startswith("table") for s in by_source) and self.machine:
            m = self.machine
            rates += (f" (measured by benchmarks/sweep_rates.py on {m.get('cpu', '?')}, {m.get('threads', 1)} thread, "
                      f"torch {m.get('torch', '?')}, {m.get('date', '?')})")
        if rates:
            out.append(f"  rates: {rates}")
        missing = [c.key for c in todo if c.seconds is None]
        if missing:
            out.append(f"  no rate for {plural(len(missing), 'cell')} (not counted): " + ", ".join(missing[:3])
                       + (", …" if len(missing) > 3 else ""))
        no_eval = [c.key for c in costed if not c.eval_counted]
        if no_eval:
            out.append(f"  evaluation not counted for {plural(len(no_eval), 'cell')}: its dataset is not in the local "
                       "store, so its episode length is unknown")
        if self.on_gpu and any(s.startswith("table") for s in by_source):
            out.append("  the built-in rates are one CPU thread's: a GPU is usually much faster; after a few cells "
                       "have finished, --dry-run estimates from them")
        out += [f"  {note}" for note in self.notes]
        return out


def estimate(spec: SweepSpec, cells: Sequence[Cell], layout: SweepLayout, configs: dict[tuple, Any],
             backend: Any) -> Estimate:
    """The cost of the cells of ``spec`` that have not ended, run by ``backend`` (see the module docstring).

    ``configs`` maps each cell configuration (critic, actor, dataset, overrides) to its resolved config, as
    :func:`offrl.sweep.driver.validate_spec` returns them.
    """
    from offrl.sweep import rates_table
    from offrl.sweep.driver import ENDED, build_jobs, seeds_per_process

    measured = sweep_rates(layout)
    initial = {c.key: run_state(layout.run_dir(c.key)) for c in cells}
    todo = [c for c in cells if initial[c.key] not in ENDED]
    episode_steps: dict[str, int | None] = {}
    costs: dict[str, CellCost] = {}
    online_cells: set[str] = set()
    on_gpu = False
    for cell in todo:
        cfg = configs[(cell.critic, cell.actor, cell.dataset, cell.overrides)]
        t = cfg.trainer
        on_gpu = on_gpu or _on_gpu(t.device, spec.backend.gpus_per_cell)
        rate = lookup(measured, rates_table.RATES, cfg.preset or "", cell.critic, cell.actor, cell.dataset)
        if rate is None:
            costs[cell.key] = CellCost(cell.key, None, 0.0, None, False)
            continue
        done = _steps_done(layout.run_dir(cell.key)) if initial[cell.key] == "partial" else 0
        left = max(0, t.steps - done)
        evaluations = max(0, math.ceil(t.steps / t.eval_every) - done // t.eval_every)
        o = cfg.online
        if o.steps > 0:  # the online phase: updates_per_step iterations per environment step (stepping not costed)
            env_left = max(0, o.steps - max(0, done - t.steps))
            left += env_left * o.updates_per_step
            online_every = o.eval_every or t.eval_every
            evaluations += math.ceil(o.steps / online_every) - (o.steps - env_left) // online_every
            online_cells.add(cell.key)
        rounds = math.ceil(t.eval_episodes / max(1, t.eval_envs))
        if rate.eval_round_s is not None:
            round_s: float | None = rate.eval_round_s
        else:
            if cell.dataset not in episode_steps:
                episode_steps[cell.dataset] = dataset_episode_steps(cell.dataset)
            steps = episode_steps[cell.dataset]
            round_s = None if steps is None else rate.eval_round_step_s * steps
        seconds = left / rate.it_per_s + evaluations * rounds * (round_s or 0.0)
        costs[cell.key] = CellCost(cell.key, seconds, rate.setup_s, rate.source, round_s is not None)
    jobs = build_jobs(todo, initial, layout, spec, backend.threads_per_cell)
    process_s = []
    for job in jobs:
        members = [costs[k] for k in ([m.key for m in job.members] or [job.key])]
        known = [m for m in members if m.seconds is not None]
        if known:
            process_s.append(rates_table.STARTUP_S + max(m.setup_s for m in known) + sum(m.seconds for m in known))
    gpus = float(spec.backend.gpus_per_cell) if spec.backend.name != "local" else 0.0  # the GPUs a cell requests
    notes = []
    limit_s = spec.backend.slurm_time_min * 60
    over = [t for t in process_s if t > limit_s]
    if spec.backend.name == "slurm" and over:
        from offrl.sweep.slurm_backend import MAX_TIMEOUTS

        worst = math.ceil(max(over) / limit_s) - 1
        too_many = f", more than the {MAX_TIMEOUTS} allowed: raise --slurm-time" if worst > MAX_TIMEOUTS else ""
        notes.append(f"{plural(len(over), 'process', 'processes')} will outlast the {duration(limit_s)} time limit: "
                     f"each is checkpointed and requeued (up to {worst} times{too_many})")
    if online_cells:
        notes.append(f"{plural(len(online_cells), 'cell')} with an online phase: its updates are costed at the "
                     "training rate, the environment steps between them are not (a lower bound)")
    if seeds_per_process(spec) > 1:
        notes.append(f"up to {plural(seeds_per_process(spec), 'seed')} per process, costed one after another")
    est = Estimate(costs, process_s, len(jobs), backend.threads_per_cell, gpus, getattr(backend, "workers", None),
                   backend.describe(), on_gpu, dict(getattr(rates_table, "MACHINE", {})), notes)
    return est


def lookup(measured: dict[tuple, Rate], table: dict[tuple[str, str, str], tuple[float, float, float]],
           family: str, critic: str, actor: str, dataset: str) -> Rate | None:
    """The best rate for a cell: this sweep's runs of the pairing on the dataset, on any dataset, the table."""
    if (critic, actor, dataset) in measured:
        return measured[(critic, actor, dataset)]
    known = table.get((family, critic, actor)) or table.get(("", critic, actor))
    if (critic, actor) in measured:  # trained here, evaluated on another dataset: the table's evaluation step cost
        rate = measured[(critic, actor)]
        return Rate(rate.it_per_s, rate.setup_s, None, known[2] if known else rate.eval_round_step_s, rate.source)
    for key, source in (((family, critic, actor), "table"), (("", critic, actor), "table-default")):
        if key in table:
            it, setup, round_step = table[key]
            return Rate(it, setup, None, round_step, source if family else "table")
    return None


def sweep_rates(layout: SweepLayout) -> dict[tuple, Rate]:
    """Rates of the sweep directory's finished runs: by (critic, actor, dataset) and by (critic, actor)."""
    samples: dict[tuple, list[tuple[float, float, float, float]]] = {}
    runs = layout.root / "runs"
    for summary_file in sorted(runs.glob(f"*/{SUMMARY}")) if runs.is_dir() else []:
        s = read_json(summary_file) or {}
        config = read_json(summary_file.parent / CONFIG) or {}
        try:
            if s.get("status") != "finished":
                continue
            seeds = max(1, int(s.get("seeds_in_process") or 1))
            steps, wall, setup = float(s["steps"]), float(s["wall_time_s"]), float(s.get("setup_s") or 0.0)
            eval_s, evaluations = float(s.get("eval_s") or 0.0), int(s.get("evaluations") or 0)
            trainer = config.get("trainer") or {}
            rounds = math.ceil(int(trainer.get("eval_episodes", 1)) / max(1, int(trainer.get("eval_envs", 1))))
            train_s = wall - setup - eval_s
            if steps <= 0 or train_s <= 0:
                continue
            key = (str(s["critic"]), str(s["actor"]), str(s["dataset"]))
        except (KeyError, TypeError, ValueError):
            continue  # a summary from another version, or damaged: no rate from it
        round_s = eval_s / (evaluations * rounds * seeds) if evaluations else 0.0
        samples.setdefault(key, []).append((steps * seeds / train_s, setup, round_s, 0.0))
    out: dict[tuple, Rate] = {}
    by_pairing: dict[tuple, list[tuple[float, float, float, float]]] = {}
    for key, values in samples.items():
        out[key] = _median_rate(values, "sweep", per_round=True)
        by_pairing.setdefault(key[:2], []).extend(values)
    for pairing, values in by_pairing.items():
        # on another dataset an episode lasts another number of steps: evaluation is left to the table's round-steps
        out[pairing] = _median_rate(values, "sweep-pairing", per_round=False)
    return out


def _median_rate(values: list[tuple[float, float, float, float]], source: str, per_round: bool) -> Rate:
    from offrl.sweep import rates_table

    it = statistics.median(v[0] for v in values)
    setup = statistics.median(v[1] for v in values)
    round_s = statistics.median(v[2] for v in values) if per_round else None
    # the table's evaluation cost of an average pairing (for a pairing it lacks, on a dataset not run here yet)
    round_step = statistics.median(r[2] for r in rates_table.RATES.values()) if rates_table.RATES else 0.0
    return Rate(it, setup, round_s, round_step, source)


def dataset_episode_steps(dataset_id: str) -> int | None:
    """A local dataset's evaluation episode length (its declared horizon, else its eval env's time limit)."""
    from offrl.data.metadata import EVAL_EPISODE_STEPS, read_metadata
    from offrl.errors import OfflineRLError

    try:
        meta = read_metadata(dataset_id)
    except OfflineRLError:
        return None
    steps = meta.get(EVAL_EPISODE_STEPS)
    for name in ("eval_env_spec", "env_spec"):  # Minari stores gymnasium's EnvSpec as a JSON string
        if isinstance(steps, int) and steps > 0:
            break
        raw = meta.get(name)
        try:
            spec = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            spec = None
        steps = spec.get("max_episode_steps") if isinstance(spec, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


def makespan(times: Sequence[float], workers: int | None) -> float:
    """Wall time of running ``times`` on ``workers`` slots, longest first onto the first free slot."""
    if not times:
        return 0.0
    if workers is None or workers >= len(times):
        return max(times)
    slots = [0.0] * workers
    for t in sorted(times, reverse=True):
        heapq.heapreplace(slots, slots[0] + t)
    return max(slots)


def hours(h: float) -> str:
    """Three significant digits, without an exponent: ``0.00371``, ``12.5``, ``9,130``."""
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h``, ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _steps_done(run_dir: Path) -> int:
    row = last_row(run_dir / TRAIN_LOG)
    step = (row or {}).get("step")
    return step if isinstance(step, int) and step > 0 else 0


def _on_gpu(device: str, gpus_per_cell: float) -> bool:
    """Whether the cells train on a GPU: ``cuda``, or ``auto`` where the backend gives each cell a GPU."""
    return str(device).startswith("cuda") or (str(device) == "auto" and gpus_per_cell > 0)
