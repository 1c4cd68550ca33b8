"""`offrl sweep --backend slurm`: the SLURM backend, run on submitit's local executor (the jobs are processes here).

The fake runner of test_sweep drives the protocol (a job killed outright, a job reaching its time limit, a
rerun); the real `offrl run` on the bandit preset checks that the cells' results and report equal the local
backend's for the same cells. Every wait has a deadline, and every process a test starts is killed at its end.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from offrl.errors import ConfigError
from offrl.sweep.driver import SweepOutcome, run_sweep
from offrl.sweep.spec import BackendOptions, RunOptions, SweepSpec, load_spec, parse_slurm_time
from tests.test_sweep import BANDIT, FAKE_RUNNER, eval_steps, summaries, sweep_parser

needs_submitit = pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                                    reason="submitit is not installed (pip install 'offrl[slurm]')")
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's processes in /proc")

#: Seconds any one sweep of these tests may take before the test fails (and kills what it started).
DEADLINE_S = 90


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """test_sweep's fake `offrl run`; its pids go to ``tmp_path/pids``, its invocations to ``invocations.log``."""
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "invocations.log"))
    monkeypatch.setenv("FAKE_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("FAKE_STEP_SLEEP", "0")
    return (sys.executable, str(script))


def slurm_spec(steps: int = 20, workers: int = 2, **backend: Any) -> SweepSpec:
    """2 critics × 1 actor × 1 seed on the bandit, on submitit's local executor unless ``backend`` says else."""
    backend = {"slurm_executor": "local", **backend}
    return SweepSpec(name="tiny-slurm", critics=("expectile", "quantile"), actors=("gaussian-awr",),
                     datasets=(BANDIT,), seeds=(0,),
                     run=RunOptions(steps=steps, eval_every=5, eval_episodes=5, save_every=5),
                     backend=BackendOptions(name="slurm", workers=workers, **backend))


class Background:
    """``run_sweep`` in a thread, so a test can act on its jobs while it runs."""

    def __init__(self, spec: SweepSpec, out: Path, runner: tuple[str, ...]) -> None:
        self.outcome: SweepOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(spec, out, runner), daemon=True)
        self.thread.start()

    def _run(self, spec: SweepSpec, out: Path, runner: tuple[str, ...]) -> None:
        try:
            self.outcome = run_sweep(spec, out, runner=runner, live=False)
        except BaseException as e:  # noqa: BLE001 - reported by result()
            self.error = e

    def result(self) -> SweepOutcome:
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive(), "the sweep did not end in time"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def runner_pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "pids"
    return [int(line.split()[0]) for line in path.read_text().splitlines()] if path.exists() else []


def attempts(out: Path, key: str) -> list[str]:
    """'start' / 'resume' for each attempt at a cell, from its log."""
    text = (out / "logs" / f"{key}.log").read_text()
    return [line.split()[3].rstrip(":") for line in text.splitlines() if line.startswith("=== ")]


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- options


def test_missing_submitit_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.errors import MissingExtraError
    from offrl.sweep.slurm_backend import import_submitit

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'offrl\[slurm\]'"):
        import_submitit()


def test_slurm_options_from_flags_and_file(tmp_path: Path) -> None:
    from offrl.cli.sweep import resolve_spec

    assert [parse_slurm_time(t) for t in (90, "90", "5:30", "1:30:00", "1-12", "2-00:00:00")] == \
        [90, 90, 6, 90, 36 * 60, 48 * 60]  # sbatch's formats; 5 min 30 s rounds up
    spec_file = tmp_path / "s.toml"
    spec_file.write_text('[backend]\nname = "slurm"\nslurm_partition = "gpu"\nslurm_time = "2:00:00"\n'
                         'slurm_sbatch = ["constraint=a100"]\nslurm_setup = "module load cuda"\n')
    assert load_spec(spec_file).backend.slurm_time == 120
    args = sweep_parser().parse_args(["sweep", str(spec_file), "--slurm-mem", "16G", "--slurm-sbatch=--exclusive",
                                      "--slurm-account", "lab", "--slurm-qos", "high", "--gpus-per-cell", "1",
                                      "--workers", "8", "--slurm-executor", "local"])
    b = resolve_spec(args).backend
    assert (b.name, b.slurm_partition, b.slurm_time_min, b.slurm_mem, b.slurm_account, b.slurm_qos) == \
        ("slurm", "gpu", 120, "16G", "lab", "high")
    assert b.slurm_setup == ("module load cuda",) and b.slurm_executor == "local" and b.workers == 8
    assert b.sbatch_parameters() == {"constraint": "a100", "exclusive": True}  # the file's and the flag's
    assert BackendOptions(**json.loads(json.dumps(SweepSpec(backend=b).to_json()["backend"]))) == b  # sweep.json


@pytest.mark.parametrize("options, message", [
    (dict(slurm_time="soon"), "Invalid slurm_time 'soon'"),
    (dict(slurm_time=0), "at least one minute"),
    (dict(slurm_mem="16 GB"), "slurm_mem must be a size"),
    (dict(slurm_sbatch=("array=0-9",)), "cannot set 'array'"),
    (dict(slurm_sbatch=("=x",)), "Invalid slurm_sbatch item '=x'"),
    (dict(slurm_executor="cloud"), "Unknown slurm_executor 'cloud'. Valid choices: slurm, local"),
    (dict(name="slurm", gpus_per_cell=0.5), "whole number"),
    (dict(slurm_partition=" gpu"), "slurm_partition must be a name"),
])
def test_bad_slurm_options_are_clear_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        BackendOptions(**options)


@needs_submitit
def test_sbatch_parameters_reach_submitit(tmp_path: Path) -> None:
    """The options as submitit's SLURM executor writes them into the job array's sbatch file."""
    import submitit

    from offrl.sweep.slurm_backend import SIGNAL_DELAY_S, SlurmBackend

    options = BackendOptions(name="slurm", slurm_partition="gpu", slurm_time="1-00:00:00", slurm_mem="16G",
                             slurm_account="lab", slurm_qos="high", slurm_sbatch=("constraint=a100", "exclusive"),
                             slurm_setup=("module load cuda",), cpus_per_cell=4, gpus_per_cell=1, workers=8)
    backend = SlurmBackend(options, tmp_path)
    (tmp_path / "bin").mkdir()
    srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor insists on finding srun
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{old_path}"
    try:
        ex = backend.executor(submitit, "tiny")
    finally:
        os.environ["PATH"] = old_path
    ex.parameters["map_count"] = 3  # as for an array of three cells
    text = ex._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--time=1440", "--mem=16G", "--account=lab", "--qos=high", "--cpus-per-task=4",
                 "--gpus-per-node=1", "--constraint=a100", "--exclusive", "--array=0-2%3", "--job-name=offrl-tiny",
                 f"--signal=USR2@{SIGNAL_DELAY_S}"):
        assert f"#SBATCH {line}\n" in text, line
    assert "module load cuda\n" in text and str(tmp_path / "slurm") in text
    assert "slurm: job array on partition gpu, account lab, qos high, up to 8 at once; each cell 4 CPUs, 1 GPU, " \
           "16G, time limit 24:00:00" == backend.describe()


# ---------------------------------------------------------------- the protocol on the local executor


@needs_submitit
def test_cells_run_as_jobs_and_a_rerun_skips_them(tmp_path: Path, fake: tuple[str, ...]) -> None:
    local = run_sweep(SweepSpec(**{**slurm_spec().__dict__, "backend": BackendOptions(workers=2)}), tmp_path / "local",
                      runner=fake, live=False)
    outcome = run_sweep(slurm_spec(), tmp_path / "slurm", runner=fake, live=False)
    assert local.exit_code == outcome.exit_code == 0
    assert set(summaries(tmp_path / "slurm")) == set(summaries(tmp_path / "local")) == {c.key for c in outcome.cells}
    for key in summaries(tmp_path / "slurm"):
        assert eval_steps(tmp_path / "slurm" / "runs" / key) == eval_steps(tmp_path / "local" / "runs" / key) == \
            [5, 10, 15, 20]
        config = json.loads((tmp_path / "slurm" / "runs" / key / "config.json").read_text())
        assert config["trainer"]["threads"] == 1  # cpus_per_cell's default on SLURM
    assert len(list((tmp_path / "slurm" / "slurm").glob("local-*/*/*_result.pkl"))) == 2  # one job per cell
    status = json.loads((tmp_path / "slurm" / "status.json").read_text())["cells"]
    assert {v["state"] for v in status.values()} == {"finished"}
    before = summaries(tmp_path / "slurm")
    again = run_sweep(slurm_spec(), tmp_path / "slurm", runner=fake, live=False)
    assert again.exit_code == 0 and again.results == {}  # nothing submitted: every cell had ended
    assert summaries(tmp_path / "slurm") == before


@needs_submitit
@needs_proc
def test_a_killed_job_leaves_its_cell_resumable(tmp_path: Path, fake: tuple[str, ...],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of the whole job (as a node failure would): the runner saves nothing; the rerun resumes the cell
    from its last periodic checkpoint and the other cell is not run again."""
    monkeypatch.setenv("FAKE_STEP_SLEEP", "0.05")
    spec = slurm_spec(steps=40, workers=1)
    out = tmp_path / "sweep"
    first, second = (c.key for c in spec_cells(spec))
    sweep = Background(spec, out, fake)
    victims: list[int] = []
    try:
        wait_for(lambda: len(runner_pids(tmp_path)) == 2 and (out / "runs" / second / "checkpoint.pt").exists(),
                 "the second cell's first checkpoint")
        runner = runner_pids(tmp_path)[1]
        guard = parent_of(runner)
        task = parent_of(guard)
        victims = [parent_of(task), task, guard, runner]  # the job's controller, its task, the guard, the runner
        kill_quietly(victims)
        outcome = sweep.result()
    finally:
        kill_quietly(victims)
    assert outcome.states[first] == "finished" and outcome.states[second] == "failed" and outcome.exit_code == 1
    assert outcome.results[second].message.startswith("job ") and "ended without a result" in \
        outcome.results[second].message
    assert not (out / "runs" / second / "summary.json").exists()
    wait_for(lambda: not any(alive(p) for p in victims), "the killed job's processes to go")
    again = run_sweep(spec, out, runner=fake, live=False)
    assert again.exit_code == 0 and again.results[second].resumed and set(again.results) == {second}
    assert attempts(out, first) == ["start"] and attempts(out, second) == ["start", "resume"]
    assert eval_steps(out / "runs" / second) == [5 * i for i in range(1, 9)]  # each evaluation once


@needs_submitit
@needs_proc
def test_time_limit_checkpoints_and_requeues_the_job(tmp_path: Path, fake: tuple[str, ...],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's warning before the time limit (USR2 to the job's process): the runner saves a checkpoint, the job
    is requeued and resumes the cell, all within one invocation of the sweep."""
    monkeypatch.setenv("FAKE_STEP_SLEEP", "0.05")
    spec = slurm_spec(steps=40, workers=1)
    spec = SweepSpec(**{**spec.__dict__, "critics": ("expectile",)})
    out = tmp_path / "sweep"
    [key] = (c.key for c in spec_cells(spec))
    sweep = Background(spec, out, fake)
    task = 0
    try:
        wait_for(lambda: bool(runner_pids(tmp_path)) and (out / "runs" / key / "checkpoint.pt").exists(),
                 "the cell's first checkpoint")
        runner = runner_pids(tmp_path)[0]
        task = parent_of(parent_of(runner))
        os.kill(task, signal.SIGUSR2)
        outcome = sweep.result()
    finally:
        if sweep.thread.is_alive() and task:
            kill_quietly([parent_of(task), task])
    assert outcome.exit_code == 0 and outcome.states[key] == "finished" and outcome.results[key].resumed
    assert attempts(out, key) == ["start", "resume"]
    assert "interrupted at step" in (out / "logs" / f"{key}.log").read_text()  # the runner saved on the way out
    assert eval_steps(out / "runs" / key) == [5 * i for i in range(1, 9)]
    [log] = (out / "slurm").glob("local-*/*/*_log.out")
    assert "Requeued job" in log.read_text()


def spec_cells(spec: SweepSpec) -> list[Any]:
    from offrl.sweep.cells import expand_cells

    return expand_cells(spec)


# ---------------------------------------------------------------- the real `offrl run`


@needs_submitit
def test_real_runner_on_the_local_executor_equals_the_local_backend(tmp_path: Path) -> None:
    """`offrl sweep --backend slurm --slurm-executor local` on the bandit preset: the same cells, evaluations,
    scores and report as `--backend local`."""
    from offrl.cli.main import main
    from offrl.report.build import build_report

    flags = ["--critics", "expectile", "--actors", "gaussian-awr,ddpg-bc", "--seeds", "0", "--preset", "bandit",
             "--steps", "40", "--eval-every", "20", "--eval-episodes", "5", "--save-every", "20", "--device", "cpu",
             "--cpus-per-cell", "1", "--no-live"]
    assert main(["sweep", *flags, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    assert main(["sweep", *flags, "--out", str(tmp_path / "slurm"), "--backend", "slurm", "--slurm-executor", "local",
                 "--workers", "2"]) == 0
    assert set(summaries(tmp_path / "slurm")) == set(summaries(tmp_path / "local"))
    assert len(summaries(tmp_path / "local")) == 2
    for key in summaries(tmp_path / "local"):
        rows = [[json.loads(line) for line in (tmp_path / b / "runs" / key / "eval.jsonl").read_text().splitlines()]
                for b in ("local", "slurm")]
        assert [(r["step"], r["normalized_score_100"]) for r in rows[0]] == \
            [(r["step"], r["normalized_score_100"]) for r in rows[1]]
    reports = [build_report([tmp_path / b], reps=200, seed=0) for b in ("local", "slurm")]
    columns = ["pairing", "dataset", "seeds", "final_mean", "best_mean"]
    assert reports[0].per_dataset[columns].equals(reports[1].per_dataset[columns])


# ---------------------------------------------------------------- a SLURM cluster, faked (tests/fake_slurm.py)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """sbatch, srun, sacct, scontrol and scancel on PATH, faked; every job they started is killed afterwards."""
    from offrl.sweep import slurm_backend
    from tests import fake_slurm

    state = tmp_path / "fake-slurm"
    for name, value in fake_slurm.install(tmp_path / "bin", state).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(slurm_backend.POLL_S, "slurm", 0.2)
    yield state
    for pid_file in state.glob("*.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def submissions(state: Path) -> list[str]:
    """The sbatch scripts submitted, in order."""
    log = state / "submitted.log"
    return [Path(line.split()[1]).read_text() for line in log.read_text().splitlines()] if log.exists() else []


@needs_submitit
def test_the_cells_are_one_job_array_on_the_cluster(tmp_path: Path, fake: tuple[str, ...], cluster: Path) -> None:
    spec = slurm_spec(slurm_executor="slurm", slurm_partition="debug")
    outcome = run_sweep(spec, tmp_path / "sweep", runner=fake, live=False)
    assert outcome.exit_code == 0 and set(summaries(tmp_path / "sweep")) == {c.key for c in outcome.cells}
    [script] = submissions(cluster)
    assert "#SBATCH --array=0-1%2\n" in script and "#SBATCH --partition=debug\n" in script
    recorded = json.loads((tmp_path / "sweep" / "slurm" / "jobs.json").read_text())["jobs"]
    assert sorted(recorded) == ["1000_0", "1000_1"]
    assert sorted(k for v in recorded.values() for k in v["keys"]) == sorted(c.key for c in outcome.cells)


@needs_submitit
@needs_proc
def test_a_rerun_after_the_driver_died_waits_for_its_jobs(tmp_path: Path, fake: tuple[str, ...], cluster: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver is SIGKILLed while its jobs run; they keep running, and the rerun re-attaches to them instead of
    submitting the cells again: one sbatch call, one attempt per cell."""
    import subprocess

    monkeypatch.setenv("FAKE_STEP_SLEEP", "0.1")
    out = tmp_path / "sweep"
    flags = ["--out", str(out), "--critics", "expectile,quantile", "--actors", "gaussian-awr", "--seeds", "0",
             "--steps", "40", "--eval-every", "5", "--eval-episodes", "5", "--save-every", "5", "--backend", "slurm",
             "--workers", "2", "--no-live", "--runner", " ".join(fake)]
    driver = subprocess.Popen([sys.executable, "-m", "offrl", "sweep", *flags], cwd=Path(__file__).parents[1],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(runner_pids(tmp_path)) == 2 and (out / "slurm" / "jobs.json").exists(),
                 "both jobs to run")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not summaries(out)  # the jobs were still running when their driver died
    spec = SweepSpec(**{**slurm_spec(steps=40, slurm_executor="slurm").__dict__, "name": "sweep"})
    outcome = run_sweep(spec, out, runner=fake, live=False)
    assert outcome.exit_code == 0 and set(outcome.states.values()) == {"finished"}
    assert len(submissions(cluster)) == 1  # re-attached, not submitted again
    for cell in outcome.cells:
        assert attempts(out, cell.key) == ["start"]
        assert eval_steps(out / "runs" / cell.key) == [5 * i for i in range(1, 9)]


@needs_submitit
@needs_proc
def test_the_time_limit_requeues_the_job_on_the_cluster(tmp_path: Path, fake: tuple[str, ...], cluster: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """USR2 before the time limit: checkpoint, `scontrol requeue`, and the requeued job resumes the cell."""
    monkeypatch.setenv("FAKE_STEP_SLEEP", "0.05")
    spec = SweepSpec(**{**slurm_spec(steps=40, slurm_executor="slurm").__dict__, "critics": ("expectile",)})
    out = tmp_path / "sweep"
    [key] = (c.key for c in spec_cells(spec))
    sweep = Background(spec, out, fake)
    wait_for(lambda: bool(runner_pids(tmp_path)) and (out / "runs" / key / "checkpoint.pt").exists(),
             "the cell's first checkpoint")
    os.kill(parent_of(parent_of(runner_pids(tmp_path)[0])), signal.SIGUSR2)  # to the job's own process
    outcome = sweep.result()
    assert outcome.exit_code == 0 and outcome.results[key].resumed and attempts(out, key) == ["start", "resume"]
    assert len(submissions(cluster)) == 1 and eval_steps(out / "runs" / key) == [5 * i for i in range(1, 9)]
