"""The SLURM backend: each cell job is one task of a SLURM job array, submitted with submitit.

The crash-safe cell protocol is the one every backend runs
(:func:`offrl.sweep.execute.execute_job`: the cell's lock, skip/resume/start,
the guard, the outcome); only *where* it runs changes. A job runs
:class:`CellTask`, which

- runs the cell in a thread, so its main thread is free for submitit's signal
  handlers; its guard runs with ``--shared-signals`` (SLURM signals every
  process of a job step at once, see :mod:`offrl.sweep.guard`) and ignores
  submitit's time-limit warning (USR2), which is the job's own business;
- on that warning (``--signal=USR2@120``, before ``slurm_time`` runs out, or a
  preemption that sends it) asks the guard to stop the runner the way Ctrl-C
  does (it saves a checkpoint and exits 130) and hands submitit a fresh copy
  of itself, which requeues the job: the requeued job resumes the cell from
  that checkpoint, up to :data:`MAX_TIMEOUTS` times;
- on a plain SIGTERM (``scancel``, a preemption) lets the runner, which got
  it too, save and exit; a rerun of the sweep (or SLURM's own requeue of a
  preempted job) resumes the cell.

The driver submits one array (``--array=0-N%K``, K = ``--workers``), polls the
jobs (their result files, and ``sacct`` at submitit's pace), and records the
array's job ids in ``SWEEP_DIR/slurm/jobs.json``: a rerun after the driver
itself died (a closed login session) waits for those of its jobs that are
still queued or running instead of submitting them twice. Ctrl-C cancels the
sweep's jobs (``scancel``: every running cell saves a checkpoint). submitit's
pickles and each job's own output live in ``SWEEP_DIR/slurm/<job id>/``; the
cells' output stays in ``SWEEP_DIR/logs/``.

``slurm_executor = "local"`` runs the same jobs with submitit's local
executor, as processes on this machine (at most ``--workers`` at once): a
sweep can be tried, and the backend is tested, without a cluster.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from offrl.cli.terminal import plural
from offrl.errors import ConfigError, MissingExtraError, OfflineRLError
from offrl.rundir import read_json, write_json
from offrl.sweep.backend import Listener, cpu_count
from offrl.sweep.execute import GUARD_MARGIN_S, INTERRUPT_GRACE_S, CellJob, CellResult, execute_job
from offrl.sweep.spec import BackendOptions

#: The sweep's folder for submitit (``SWEEP_DIR/slurm``): each job's pickles and output, and ``jobs.json``.
SLURM_DIR = "slurm"
JOBS_FILE = "jobs.json"
#: Times a job may reach its time limit, each time checkpointing and requeueing, before it gives up (the cell
#: then stays resumable by a rerun of the sweep).
MAX_TIMEOUTS = 20
#: Seconds between submitit's USR2 and the time limit (sbatch ``--signal=USR2@N``): time for the runner to save.
SIGNAL_DELAY_S = 120
#: Seconds between two looks at the jobs (a look reads result files; ``sacct`` is called at submitit's own pace).
POLL_S = {"slurm": 5.0, "local": 0.5}
#: After Ctrl-C, seconds to let local jobs (which got the terminal's SIGINT too) end on their own before cancelling.
SELF_STOP_WAIT_S = 5.0
#: ``sacct`` states of a job that has not ended yet (a rerun re-attaches to such a job).
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
                 "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT")
#: States of a job that the scheduler stopped before it gave its result: its cells are interrupted (any other job
#: without a result, e.g. NODE_FAIL, OUT_OF_MEMORY or a killed local job, failed); a rerun resumes both.
STOPPED_STATES = ("CANCELLED", "PREEMPTED", "TIMEOUT", "DEADLINE")
#: Environment variables a cell must take from its node, not from the driver's login shell.
NODE_ENV = ("CUDA_VISIBLE_DEVICES",)


def import_submitit() -> Any:
    """``import submitit``, or a clear error naming the extra that provides it."""
    try:
        import submitit
    except ImportError:
        raise MissingExtraError(
            "The SLURM backend needs submitit, which is not installed. Install the extra: "
            "pip install 'offrl[slurm]'  (or use --backend local)."
        ) from None
    return submitit


# ---------------------------------------------------------------- the job side


class CellTask:
    """What one SLURM job runs: a cell job under the sweep's protocol, checkpointed and requeued at its time limit.

    submitit calls :meth:`checkpoint` from its USR2 handler (in the main thread, while :meth:`__call__` waits for
    the cell's thread); what it returns is pickled and run by the requeued job.
    """

    def __init__(self, job: CellJob) -> None:
        self.job = job
        # the cell's thread sets _done when it ends: waited for with Event.wait, as a KeyboardInterrupt inside
        # Thread.join can leave the thread reported dead while it still runs (CPython before 3.13)
        self._done = threading.Event()
        self._stop = threading.Event()
        self._interrupted = False
        self._guards: list[subprocess.Popen] = []
        self._guards_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"job": self.job}  # threads, events and processes belong to one attempt

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["job"])  # type: ignore[misc]

    def __call__(self) -> list[CellResult]:
        job = in_job_step(self.job, warning_signal())
        results: list[CellResult] = []

        def work() -> None:
            try:
                results.extend(execute_job(job, self._on_start, self._stop))
            except Exception as e:  # a bug or an OS error of the worker itself: the cells' results say so
                results.extend(CellResult(k, "failed", message=f"worker error: {e!r}") for k in _keys(job))
            finally:
                self._done.set()

        if threading.current_thread() is threading.main_thread():
            # SIGINT (submitit's local executor cancelling the job, or the terminal's Ctrl-C, perhaps both) is a
            # request to stop, noted by a flag: an exception could land anywhere in the stopping itself
            signal.signal(signal.SIGINT, self._on_interrupt)
        threading.Thread(target=work, name="offrl-cell", daemon=True).start()
        while not self._done.wait(0.2):
            if self._interrupted:
                self._stop_cell()
        got = {r.key for r in results}
        return results + [CellResult(k, "interrupted", message="job stopped") for k in _keys(job) if k not in got]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """The time limit is near (or the job is preempted): stop the runner with a checkpoint, then requeue."""
        from submitit.helpers import DelayedSubmission

        self._stop_cell()
        return DelayedSubmission(CellTask(self.job))

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        self._interrupted = True

    def _on_start(self, key: str, proc: subprocess.Popen) -> None:
        with self._guards_lock:
            self._guards.append(proc)
        if self._stop.is_set():  # started just as the job was told to stop
            _signal(proc, signal.SIGHUP)

    def _stop_cell(self) -> None:
        """Ask each runner's guard to stop it (SIGHUP under --shared-signals) and wait for the cell's thread."""
        self._stop.set()
        with self._guards_lock:
            guards = list(self._guards)
        for proc in guards:
            _signal(proc, signal.SIGHUP)
        deadline = time.monotonic() + INTERRUPT_GRACE_S + GUARD_MARGIN_S
        while not self._done.is_set() and time.monotonic() < deadline:
            self._done.wait(0.2)


def in_job_step(job: CellJob, warning: str) -> CellJob:
    """``job`` as a SLURM job step runs it: the node's GPUs (not the login shell's ``CUDA_VISIBLE_DEVICES``)
    and the guard's rules for signals that reach every process of the step."""
    guard_args = ("--shared-signals", "--ignore-signal", warning)
    env = tuple((k, v) for k, v in job.env if k not in NODE_ENV)
    members = tuple(replace(m, env=tuple((k, v) for k, v in m.env if k not in NODE_ENV), guard_args=guard_args)
                    for m in job.members)
    return replace(job, env=env, members=members, guard_args=guard_args)


def warning_signal() -> str:
    """The signal submitit sends before the time limit (``USR2`` unless ``SUBMITIT_PREEMPT_SIGNAL`` says else)."""
    from submitit import JobEnvironment

    return str(JobEnvironment.USR_SIG)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- the driver side


class SlurmBackend:
    """Submit cells as a SLURM job array (or as local processes through submitit's local executor)."""

    def __init__(self, options: BackendOptions, sweep_dir: Path) -> None:
        self.options = options
        self.folder = Path(sweep_dir).resolve() / SLURM_DIR
        self.threads_per_cell = options.cpus_per_cell or 1
        self.gpus = int(options.gpus_per_cell)
        self.local = options.slurm_executor == "local"
        default_workers = max(1, cpu_count() // self.threads_per_cell) if self.local else None
        self.workers: int | None = options.workers or default_workers  # None: as many as the queue allows

    def describe(self) -> str:
        o = self.options
        each = plural(self.threads_per_cell, "CPU") + (f", {plural(self.gpus, 'GPU')}" if self.gpus else "")
        each += f", {o.slurm_mem}" if o.slurm_mem else ""
        limit = f"{o.slurm_time_min // 60}:{o.slurm_time_min % 60:02d}:00"
        at_once = f"up to {self.workers} at once" if self.workers else "as many at once as the queue allows"
        if self.local:
            return f"slurm (submitit's local executor): {at_once}; each cell {each}, time limit {limit}"
        where = ", ".join(f"{k} {v}" for k, v in (("partition", o.slurm_partition), ("account", o.slurm_account),
                                                    ("qos", o.slurm_qos)) if v)
        return f"slurm: job array{f' on {where}' if where else ''}, {at_once}; each cell {each}, time limit {limit}"

    # -------------------------------------------------------- submitting

    def executor(self, submitit: Any, name: str) -> Any:
        """submitit's executor with this sweep's parameters (a clear error where sbatch is missing)."""
        o = self.options
        folder = self.folder / "%j"
        if self.local:
            # a local job's id is its controller's pid, which a later invocation may get again: its own folder
            folder = self.folder / f"local-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" / "%j"
            ex = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_TIMEOUTS)
            params: dict[str, Any] = dict(timeout_min=o.slurm_time_min, gpus_per_node=self.gpus,
                                          signal_delay_s=SIGNAL_DELAY_S, stderr_to_stdout=True)
            if o.slurm_setup:
                params["setup"] = list(o.slurm_setup)
            ex.update_parameters(**params)
            return ex
        try:
            ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_TIMEOUTS)
        except RuntimeError:
            raise OfflineRLError(
                "The SLURM backend found no 'srun' on this machine: run the sweep on a SLURM login node, or "
                "add --slurm-executor local to try it here (submitit's local executor)."
            ) from None
        params = dict(job_name=f"offrl-{name}", time=o.slurm_time_min, cpus_per_task=self.threads_per_cell,
                      signal_delay_s=SIGNAL_DELAY_S, stderr_to_stdout=True)
        optional = dict(partition=o.slurm_partition, mem=o.slurm_mem, account=o.slurm_account, qos=o.slurm_qos,
                        gpus_per_node=self.gpus or None, array_parallelism=self.workers,
                        setup=list(o.slurm_setup) or None, additional_parameters=o.sbatch_parameters() or None)
        params.update({k: v for k, v in optional.items() if v is not None})
        try:
            ex.update_parameters(**params)
        except ValueError as e:
            raise ConfigError(f"submitit refused the SLURM options: {e}") from None
        return ex

    def run(self, jobs: Sequence[CellJob], listener: Listener) -> list[CellResult]:
        submitit = import_submitit()
        name = dict(jobs[0].env).get("OFFRL_SWEEP_NAME", "sweep") if jobs else "sweep"
        self.folder.mkdir(parents=True, exist_ok=True)
        ex = self.executor(submitit, name)
        for job in jobs:
            for k in _keys(job):
                listener.cell_queued(k)
        pending: dict[str, tuple[Any, CellJob]] = {}  # submitit job id -> (its job, the cell job it runs)
        results: dict[str, CellResult] = {}
        todo: deque[CellJob] = deque(jobs)
        try:
            if not self.local:
                attached = self._reattach(submitit, todo)
                todo = deque(j for j in todo if not any(j is cj for _, cj in attached.values()))
                pending.update(attached)
                pending.update(self._submit_array(ex, list(todo)))
                todo.clear()
                self._record(pending)
            self._wait(ex, pending, todo, results, listener)
        except KeyboardInterrupt:
            if self.local:  # the terminal's Ctrl-C reached the local jobs too: let them stop on their own first
                self._let_stop(pending, results, listener)
            self._cancel([job for job, _ in pending.values()])
            for _, cj in pending.values():
                for k in _keys(cj):
                    results[k] = CellResult(k, "interrupted", message="sweep stopped: its job was cancelled")
                    listener.cell_done(results[k])
            for cj in todo:
                for k in _keys(cj):
                    results[k] = CellResult(k, "interrupted", message="sweep stopped before the cell started")
                    listener.cell_done(results[k])
        return [results[k] for job in jobs for k in _keys(job)]

    def _submit_array(self, ex: Any, jobs: list[CellJob]) -> dict[str, tuple[Any, CellJob]]:
        if not jobs:
            return {}
        try:
            with ex.batch():
                submitted = [ex.submit(CellTask(job)) for job in jobs]
        except Exception as e:  # sbatch refused (a wrong partition, account, time limit, ...)
            raise OfflineRLError(f"sbatch refused the sweep's job array: {_first_lines(str(e))}") from None
        return {s.job_id: (s, job) for s, job in zip(submitted, jobs)}

    def _wait(self, ex: Any, pending: dict[str, tuple[Any, CellJob]], todo: deque[CellJob],
              results: dict[str, CellResult], listener: Listener) -> None:
        started: set[str] = set()
        poll = POLL_S["local" if self.local else "slurm"]
        while pending or todo:
            while todo and (self.workers is None or len(pending) < self.workers):  # the local executor's pool
                cj = todo.popleft()
                job = ex.submit(CellTask(cj))
                pending[job.job_id] = (job, cj)
            for job_id, (job, cj) in list(pending.items()):
                if job_id not in started and job.paths.stdout.exists():  # submitit's log opens when the job starts
                    started.add(job_id)
                    for k in _keys(cj):
                        listener.cell_started(k)
                if self._ended(job):
                    del pending[job_id]
                    if job_id not in started:
                        for k in _keys(cj):
                            listener.cell_started(k)
                    for result in self._collect(job, cj):
                        results[result.key] = result
                        listener.cell_done(result)
            if pending or todo:
                time.sleep(poll)

    def _let_stop(self, pending: dict[str, tuple[Any, CellJob]], results: dict[str, CellResult],
                  listener: Listener) -> None:
        """Collect the local jobs that end within :data:`SELF_STOP_WAIT_S` (a second Ctrl-C stops waiting)."""
        deadline = time.monotonic() + SELF_STOP_WAIT_S
        try:
            while pending and time.monotonic() < deadline:
                for job_id, (job, cj) in list(pending.items()):
                    if self._ended(job):
                        del pending[job_id]
                        for result in self._collect(job, cj):
                            results[result.key] = result
                            listener.cell_done(result)
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass

    def _ended(self, job: Any) -> bool:
        if job.done():
            return True
        state = _state(job)
        return state == "PREEMPTED" and not self.local  # submitit waits on it; a rerun re-attaches if requeued

    def _collect(self, job: Any, cj: CellJob) -> list[CellResult]:
        """The cells' results from a finished job; a job that ended without one is interrupted or failed."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        keys = _keys(cj)
        log = job.paths.stdout
        if self.local and not job.paths.result_pickle.exists():  # a local file appears at once
            return self._no_result(job, keys, log, "")
        try:
            out = job.result()
        except FailedJobError as e:
            return [CellResult(k, "failed", message=f"job {job.job_id} raised {_last_line(str(e))}; its log: {log}")
                    for k in keys]
        except UncompletedJobError as e:
            if "timed-out too many times" in str(e):
                return [CellResult(k, "interrupted", message=f"job {job.job_id} reached its time limit "
                                   f"{MAX_TIMEOUTS + 1} times; rerun to resume (or raise --slurm-time)")
                        for k in keys]
            return self._no_result(job, keys, log, str(e))
        if not isinstance(out, list) or {getattr(r, "key", None) for r in out} != set(keys):
            return [CellResult(k, "failed", message=f"job {job.job_id} returned {out!r}, not its cells' results")
                    for k in keys]
        return out

    def _no_result(self, job: Any, keys: list[str], log: Path, detail: str) -> list[CellResult]:
        state = _state(job)
        how = "interrupted" if state in STOPPED_STATES else "failed"
        message = (f"job {job.job_id} ended without a result (state {state}); rerun to resume the cell; "
                   f"the job's log: {log}")
        return [CellResult(k, how, message=message) for k in keys]

    def _cancel(self, jobs: list[Any]) -> None:
        if not jobs:
            return
        if self.local:
            for job in jobs:
                job.cancel(check=False)  # SIGINT to its controller, which stops the job's processes
            return
        subprocess.call(["scancel", *(job.job_id for job in jobs)])  # SIGTERM: every runner saves a checkpoint

    # -------------------------------------------------------- re-attaching after the driver died

    @property
    def jobs_file(self) -> Path:
        return self.folder / JOBS_FILE

    def _record(self, pending: dict[str, tuple[Any, CellJob]]) -> None:
        """Write the job ids and the cells each runs, for a rerun to re-attach to (see :meth:`_reattach`)."""
        entries = {job_id: {"keys": _keys(cj), "submitted": time.time()} for job_id, (_, cj) in pending.items()}
        write_json(self.jobs_file, {"jobs": entries})

    def _reattach(self, submitit: Any, todo: Sequence[CellJob]) -> dict[str, tuple[Any, CellJob]]:
        """Jobs of an earlier invocation that still run exactly a cell job of ``todo``: waited for, not resubmitted."""
        recorded = (read_json(self.jobs_file) or {}).get("jobs")
        if not isinstance(recorded, dict) or not recorded:
            return {}
        by_keys = {tuple(v["keys"]): job_id for job_id, v in recorded.items()
                   if isinstance(v, dict) and isinstance(v.get("keys"), list)}
        candidates = [(by_keys[tuple(_keys(cj))], cj) for cj in todo if tuple(_keys(cj)) in by_keys]
        if not candidates:
            return {}
        jobs = [(submitit.SlurmJob(folder=self.folder / "%j", job_id=job_id), cj) for job_id, cj in candidates]
        jobs[0][0].watcher.update()  # one sacct call for every candidate
        attached: dict[str, tuple[Any, CellJob]] = {}
        for job, cj in jobs:
            if _state(job, cached=True) in ACTIVE_STATES:
                job.paths.result_pickle.unlink(missing_ok=True)  # a requeued job's earlier result is stale
                attached[job.job_id] = (job, cj)
        return attached


def _state(job: Any, cached: bool = False) -> str:
    """The job's scheduler state's first word (``CANCELLED by 123`` -> ``CANCELLED``), upper case."""
    try:
        state = job.watcher.get_state(job.job_id, mode="cache") if cached else job.state
    except Exception:  # sacct unavailable for a moment: not a verdict on the job
        return "UNKNOWN"
    return (str(state).split() or ["UNKNOWN"])[0].upper()


def _keys(job: CellJob) -> list[str]:
    return [m.key for m in job.members] or [job.key]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    body = [line for line in lines if not line.startswith(("You can check", "or at paths", "- /"))]
    return (body or lines or [""])[-1]


def _first_lines(text: str, n: int = 3) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:n])
