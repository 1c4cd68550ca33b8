"""`offrl sweep`: grid, cell names, skip/resume/fail/lock logic, kill-and-rerun, local and Ray backends.

Most tests drive a *fake runner* (a tiny script with `offrl run`'s command
line and run-directory format: resume truncates the logs, SIGINT saves a
checkpoint and exits 130, an invalid critic.tau exits 2 with an error wrapped
the way older `offrl run`s wrapped it in logs, `fake.diverge_at` ends the run
as diverged) so the sweep logic is tested in seconds. The tests marked `slow`
run the real `offrl run` on a tiny grid.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from offrl.errors import ConfigError
from offrl.sweep.cells import Cell, expand_cells
from offrl.sweep.driver import build_job, record_spec, run_sweep
from offrl.sweep.layout import SweepLayout
from offrl.sweep.spec import (
    BackendOptions,
    RunOptions,
    SweepSpec,
    load_spec,
    parse_grid_flag,
    parse_seeds,
    split_list,
)

REPO = Path(__file__).resolve().parents[1]
BANDIT = "offrl/bandit/multimodal-v0"

FAKE_RUNNER = r'''
"""A stand-in for `offrl run` with the same flags and run-directory format."""
import argparse, json, os, sys, textwrap, time
from pathlib import Path

p = argparse.ArgumentParser()
for flag in ("--critic", "--actor", "--dataset", "--steps", "--seed", "--out", "--eval-every",
             "--eval-episodes", "--save-every", "--preset", "--config", "--device", "--resume"):
    p.add_argument(flag)
p.add_argument("--set", action="append", default=[])
p.add_argument("--quiet", action="store_true")
a = p.parse_args()
sleep = float(os.environ.get("FAKE_STEP_SLEEP", "0"))
stop_sleep = float(os.environ.get("FAKE_STOP_SLEEP", "0"))  # a slow checkpoint save after SIGINT

def note(kind, run):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(f"{kind} {run.name} {os.environ.get('OMP_NUM_THREADS')}\n")

def save(run, step):
    tmp = run / "checkpoint.pt.tmp"
    tmp.write_text(json.dumps({"step": step}))
    os.replace(tmp, run / "checkpoint.pt")

if a.resume:
    run = Path(a.resume)
    cfg = json.loads((run / "config.json").read_text())
    start = json.loads((run / "checkpoint.pt").read_text())["step"]
    for name in ("train.jsonl", "eval.jsonl"):  # like the core: keep rows up to the checkpoint
        path = run / name
        rows = [l for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        path.write_text("".join(l + "\n" for l in rows if json.loads(l)["step"] <= start))
    note("resume", run)
else:
    run = Path(a.out)
    if (run / "config.json").exists():
        sys.exit(f"error: '{run}' already holds a run")
    sets = dict(s.split("=", 1) for s in a.set)
    tau = float(sets.get("critic.tau", 0.7))
    if not 0 < tau < 1:
        message = (f"error: critic.tau must be in (0, 1), got {tau}. Pick a value like 0.7 and check the grid first "
                   f"with `offrl sweep --grid critic.tau=0.7 --dry-run --out {run.parent.parent}`.")
        print(textwrap.fill(message, 80), file=sys.stderr)  # as a log received it from rich at 80 columns
        print("", file=sys.stderr)
        print("a line printed after the error block", file=sys.stderr)
        sys.exit(2)
    run.mkdir(parents=True, exist_ok=True)
    cfg = {"critic": {"name": a.critic, "tau": tau}, "actor": {"name": a.actor}, "data": {"dataset": a.dataset},
           "trainer": {"steps": int(a.steps), "seed": int(a.seed), "eval_every": int(a.eval_every),
                       "save_every": int(a.save_every), "threads": int(sets.get("trainer.threads", 0)),
                       "diverge_at": int(sets.get("fake.diverge_at", 0))},
           "preset": a.preset, "offrl_version": "fake"}
    (run / "config.json").write_text(json.dumps(cfg))
    start = 0
    note("start", run)
if os.environ.get("FAKE_PIDS"):
    with open(os.environ["FAKE_PIDS"], "a") as f:
        f.write(f"{os.getpid()} {run.name}\n")
t = cfg["trainer"]
base = {"expectile": 40, "quantile": 50}.get(cfg["critic"]["name"], 30) + t["seed"]
base += {"gaussian-awr": 0, "edp": 10}.get(cfg["actor"]["name"], 5)
done = start
try:
    with open(run / "train.jsonl", "a") as tr, open(run / "eval.jsonl", "a") as ev:
        for step in range(start + 1, t["steps"] + 1):
            time.sleep(sleep)
            tr.write(json.dumps({"step": step, "time_s": 0.0, "critic/q_loss": 1.0 / step}) + "\n")
            tr.flush()
            if step % t["eval_every"] == 0 or step == t["steps"]:
                score = base * step / t["steps"]
                ev.write(json.dumps({"step": step, "time_s": 0.0, "return_mean": score / 100, "return_std": 0.0,
                                     "normalized_score_100": score, "normalized_score_100_std": 0.0,
                                     "episodes": 5}) + "\n")
                ev.flush()
            done = step
            if step % t["save_every"] == 0:
                save(run, step)
            if step == t.get("diverge_at"):
                (run / "summary.json").write_text(json.dumps({
                    "status": "diverged", "reason": "non-finite critic loss", "steps": step,
                    "critic": cfg["critic"]["name"], "actor": cfg["actor"]["name"], "dataset": cfg["data"]["dataset"],
                    "seed": t["seed"], "run_dir": str(run)}))
                print(f"error: the run diverged at step {step} (non-finite critic loss)", file=sys.stderr)
                sys.exit(3)
except KeyboardInterrupt:
    time.sleep(stop_sleep)
    save(run, done)
    print(f"interrupted at step {done}", file=sys.stderr)
    sys.exit(130)
(run / "summary.json").write_text(json.dumps({
    "status": "finished", "critic": cfg["critic"]["name"], "actor": cfg["actor"]["name"],
    "dataset": cfg["data"]["dataset"], "seed": t["seed"], "steps": t["steps"], "final_score_100": base,
    "best_score_100": base, "best_step": t["steps"], "final_return": base / 100, "best_return": base / 100,
    "wall_time_s": 0.0, "run_dir": str(run)}))
'''


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """The fake runner's command prefix; its invocations are logged to ``tmp_path/invocations.log``."""
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "invocations.log"))
    monkeypatch.setenv("FAKE_STEP_SLEEP", "0")
    return (sys.executable, str(script))


def invocations(tmp_path: Path) -> list[tuple[str, str, str]]:
    path = tmp_path / "invocations.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


def tiny_spec(**run: object) -> SweepSpec:
    """2 critics × 2 actors × 2 seeds on the bandit, 2 local workers."""
    options = dict(steps=20, eval_every=5, eval_episodes=5, save_every=5)
    options.update(run)
    return SweepSpec(
        name="tiny",
        critics=("expectile", "quantile"),
        actors=("gaussian-awr", "edp"),
        datasets=(BANDIT,),
        seeds=(0, 1),
        run=RunOptions(**options),  # type: ignore[arg-type]
        backend=BackendOptions(workers=2),
    )


def sweep_parser() -> argparse.ArgumentParser:
    from offrl.cli import sweep as cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser


def summaries(sweep_dir: Path) -> dict[str, float]:
    """Finished cell -> mtime of its summary.json."""
    return {p.parent.name: p.stat().st_mtime for p in (sweep_dir / "runs").glob("*/summary.json")}


def eval_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "eval.jsonl").read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- grid and names


def test_grid_cells_and_deterministic_keys() -> None:
    spec = SweepSpec(
        critics=("expectile", "quantile"), actors=("gaussian-awr", "edp"), datasets=(BANDIT,), seeds=(0, 1, 2),
        grid=(("critic.tau", ("0.6", "0.9")), ("critic.hidden_dims", ("[32,32]",))),
    )
    cells = expand_cells(spec)
    assert len(cells) == 2 * 2 * 3 * 2
    assert [c.seed for c in cells[:8]] == [0] * 8  # seeds vary slowest
    plain = Cell("expectile", "gaussian-awr", BANDIT, 0)
    assert plain.key == "expectile__gaussian-awr__offrl-bandit-multimodal-v0__seed0"
    a = Cell("expectile", "edp", BANDIT, 1, (("critic.tau", "0.9"), ("actor.beta", "3")))
    b = Cell("expectile", "edp", BANDIT, 1, (("actor.beta", "3"), ("critic.tau", "0.9")))
    assert a.key == b.key and a.key.startswith("expectile__edp__offrl-bandit-multimodal-v0__seed1__")
    assert len(a.key.rsplit("__", 1)[1]) == 8
    assert expand_cells(spec) == cells  # the same spec always gives the same cells
    assert Cell.from_json(a.to_json()) == a
    with pytest.raises(ConfigError, match="same directory"):
        expand_cells(SweepSpec(datasets=("a/b-v0", "a-b-v0")))


def test_parsing_helpers() -> None:
    assert parse_seeds(3) == (0, 1, 2)
    assert parse_seeds("0-2,7") == (0, 1, 2, 7)
    assert parse_seeds([4, 5]) == (4, 5)
    with pytest.raises(ConfigError, match="Invalid seeds 'x'"):
        parse_seeds("x")
    assert split_list("0.6,[32,32],'a,b'") == ["0.6", "[32,32]", "'a,b'"]
    assert parse_grid_flag("critic.hidden_dims=[32,32],[64,64]") == ("critic.hidden_dims", ("[32,32]", "[64,64]"))
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid_flag("critic.tau")
    with pytest.raises(ConfigError, match="dotted config key"):
        SweepSpec(grid=(("tau", ("0.5",)),))
    with pytest.raises(ConfigError, match="Unknown backend 'pbs'. Valid choices: local, ray, slurm"):
        BackendOptions(name="pbs")


def test_toml_spec_and_flag_overrides(tmp_path: Path) -> None:
    spec_file = tmp_path / "suite.toml"
    spec_file.write_text(
        '[sweep]\ncritics = ["expectile", "quantile"]\nactors = "edp"\nseeds = 2\n'
        '[run]\nsteps = 100\nset = ["trainer.log_every=10"]\nconfig = "base.toml"\n'
        '[grid]\n"critic.tau" = [0.6, 0.9]\n"critic.hidden_dims" = [[32, 32]]\n"critic.value_layer_norm" = [true]\n'
        '[backend]\nworkers = 3\n'
    )
    spec = load_spec(spec_file)
    assert spec.name == "suite" and spec.actors == ("edp",) and spec.seeds == (0, 1)
    assert spec.grid == (("critic.tau", ("0.6", "0.9")), ("critic.hidden_dims", ("[32,32]",)),
                         ("critic.value_layer_norm", ("true",)))
    assert spec.run.config == str(tmp_path / "base.toml")  # relative to the spec file
    assert spec.backend.workers == 3

    from offrl.cli.sweep import resolve_spec

    args = sweep_parser().parse_args(
        ["sweep", str(spec_file), "--seeds", "5-6", "--steps", "7", "--grid", "critic.tau=0.7",
         "--set", "actor.beta=1", "--workers", "1"]
    )
    spec = resolve_spec(args)
    assert spec.seeds == (5, 6) and spec.run.steps == 7 and spec.backend.workers == 1
    assert dict(spec.grid)["critic.tau"] == ("0.7",)
    assert spec.run.sets == ("trainer.log_every=10", "actor.beta=1")
    assert spec.out == "runs/suite"
    assert SweepSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec

    (tmp_path / "bad.toml").write_text("[sweep]\ncritic = ['expectile']\n")
    with pytest.raises(ConfigError, match="unknown key 'critic' in \\[sweep\\]. Valid keys: actors, critics"):
        load_spec(tmp_path / "bad.toml")


@pytest.mark.parametrize("suite", ["bandit", "pointmaze", "locomotion", "ogbench", "ogbench-puzzle"])
def test_benchmark_specs_load(suite: str) -> None:
    spec = load_spec(REPO / "benchmarks" / f"{suite}.toml")
    cells = expand_cells(spec)
    assert len(cells) == len(spec.critics) * len(spec.actors) * len(spec.datasets) * len(spec.seeds)
    if suite == "bandit":
        assert spec.critics == ("expectile", "quantile", "exponential", "sarsa", "td3")
        assert spec.actors == ("gaussian-awr", "diffusion-resample", "edp", "ddpg-bc", "fql", "flow-resample")
        assert spec.seeds == (0, 1, 2, 3, 4) and spec.run.preset == "bandit"


def test_cell_commands() -> None:
    spec = tiny_spec(device="cpu")
    spec = SweepSpec(**{**spec.__dict__, "run": RunOptions(steps=20, sets=("critic.tau=0.8",), device="cpu")})
    layout = SweepLayout(Path("/sweep"))
    cell = Cell("expectile", "edp", BANDIT, 3, (("critic.tau", "0.9"),))
    job = build_job(cell, layout, spec, threads=4, runner=("offrl-run",))
    argv = list(job.fresh_argv)
    assert argv[:11] == ["offrl-run", "--critic", "expectile", "--actor", "edp", "--dataset", BANDIT,
                         "--seed", "3", "--out", f"/sweep/runs/{cell.key}"]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["critic.tau=0.8", "critic.tau=0.9", "trainer.threads=4"]  # the grid value comes last, wins
    assert argv[argv.index("--steps") + 1] == "20" and "--eval-every" not in argv  # unset options are not passed
    assert list(job.resume_argv) == ["offrl-run", "--resume", f"/sweep/runs/{cell.key}", "--quiet"]
    assert dict(job.env)["OMP_NUM_THREADS"] == "4"


def test_changed_run_options_are_refused(tmp_path: Path) -> None:
    layout = SweepLayout(tmp_path)
    spec = tiny_spec()
    record_spec(layout, spec, expand_cells(spec))
    more_seeds = SweepSpec(**{**spec.__dict__, "seeds": (0, 1, 2)})
    record_spec(layout, more_seeds, expand_cells(more_seeds))  # growing the grid is fine
    assert len(json.loads(layout.spec_file.read_text())["cells"]) == 12
    with pytest.raises(ConfigError, match="steps: 20 -> 50"):
        record_spec(layout, tiny_spec(steps=50), expand_cells(spec))


@pytest.mark.parametrize(
    "spec_text, named",
    [
        ('[run]\nsteps = "ten"\n', "trainer.steps='ten' is not a valid integer"),
        ("[run]\nsteps = 0\n", "trainer.steps must be positive, got 0"),
        ('[grid]\n"critic.tauu" = [0.6, 0.9]\n', "Unknown hyperparameter of critic 'expectile' (critic.KEY) 'tauu'"),
        ('[run]\nset = ["critic.tau"]\n', "--set expects KEY=VALUE (e.g. critic.tau=0.9), got 'critic.tau'"),
        ('[run]\npreset = "bandits"\n', "Unknown preset 'bandits'. Did you mean 'bandit'?"),
        ("[run]\nset = [3]\n", 'set must be a list of "KEY=VALUE" strings'),
    ],
)
def test_bad_run_options_fail_once_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_text: str, named: str
) -> None:
    """Options every cell's `offrl run` would reject are one error up front, for --dry-run and for a real sweep."""
    from offrl.cli.main import main

    spec = tmp_path / "bad.toml"
    out = tmp_path / "sweep"
    spec.write_text(f'[sweep]\nout = "{out}"\nactors = ["gaussian-awr", "edp"]\nseeds = 3\n' + spec_text)
    for extra in (["--dry-run"], ["--no-live"]):
        assert main(["sweep", str(spec), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and named in err and "Traceback" not in err
        assert not out.exists()  # nothing started, nothing written


def test_grid_key_unknown_to_one_actor_names_the_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.cli.main import main

    argv = ["sweep", "--actors", "gaussian-awr,ddpg-bc", "--grid", "actor.beta=1,3", "--out", str(tmp_path / "s"),
            "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cell expectile+ddpg-bc on offrl/bandit/multimodal-v0 [actor.beta=1]" in err
    assert "Unknown hyperparameter of actor 'ddpg-bc' (actor.KEY) 'beta'" in err


@pytest.mark.parametrize("suite", ["bandit", "pointmaze"])
def test_benchmark_specs_pass_validation(suite: str) -> None:
    from offrl.sweep.driver import validate_spec

    validate_spec(load_spec(REPO / "benchmarks" / f"{suite}.toml"))


def test_locomotion_benchmark_spec_passes_validation() -> None:
    from offrl.sweep.driver import validate_spec

    validate_spec(load_spec(REPO / "benchmarks" / "locomotion.toml"))


def test_ogbench_suites_validate_and_tune_each_actor() -> None:
    """Every cell resolves; the puzzle suite's scoped --set moves FQL's α only (ddpg-bc's α stays 1)."""
    from offrl.config import parse_set, resolve
    from offrl.presets import PRESETS
    from offrl.sweep.driver import validate_spec

    for suite in ("ogbench", "ogbench-puzzle"):
        validate_spec(load_spec(REPO / "benchmarks" / f"{suite}.toml"))
    spec = load_spec(REPO / "benchmarks" / "ogbench-puzzle.toml")
    alphas = {}
    for actor in ("fql", "ddpg-bc"):
        layers = [PRESETS.get(spec.run.preset).layer(), {"actor": {"name": actor}, "critic": {"name": "td3"}}]
        alphas[actor] = resolve([*layers, parse_set(list(spec.run.sets))]).actor_cfg.alpha
    assert alphas == {"fql": 1000.0, "ddpg-bc": 1.0}


@pytest.mark.parametrize(
    "content, named",
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "is a binary file"),
        ('[sweep]\nname = "caf\u00e9"\n'.encode("latin-1"), "is not UTF-8 text (byte 19 is 0xe9)"),
        (b"[sweep\nname = 1\n", "is not valid TOML"),
        (None, "is a directory"),
    ],
)
def test_unreadable_spec_files_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, named: str
) -> None:
    from offrl.cli.main import main

    spec = tmp_path / "spec.toml"
    if content is None:
        spec.mkdir()
    else:
        spec.write_bytes(content)
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"Sweep spec '{spec}' {named}" in err and "Traceback" not in err


# ---------------------------------------------------------------- running cells (fake runner)


def test_tiny_sweep_runs_then_rerun_skips_everything(tmp_path: Path, fake: tuple[str, ...]) -> None:
    out = tmp_path / "sweep"
    outcome = run_sweep(tiny_spec(), out, runner=fake, live=False)
    assert outcome.exit_code == 0
    assert sorted(outcome.states.values()) == ["finished"] * 8
    starts = invocations(tmp_path)
    assert len(starts) == 8 and {kind for kind, _, _ in starts} == {"start"}
    assert {threads for _, _, threads in starts} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}
    status = json.loads((out / "status.json").read_text())["cells"]
    assert {e["state"] for e in status.values()} == {"finished"}
    saved = json.loads((out / "sweep.json").read_text())
    assert len(saved["cells"]) == 8 and saved["spec"]["run"]["steps"] == 20

    again = run_sweep(tiny_spec(), out, runner=fake, live=False)
    assert again.exit_code == 0 and again.results == {}
    assert len(invocations(tmp_path)) == 8  # nothing ran twice


def test_failing_cell_is_reported_and_the_others_finish(
    tmp_path: Path, fake: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    from offrl.cli import sweep as cli

    out = tmp_path / "sweep"
    args = sweep_parser().parse_args(
        ["sweep", "--critics", "expectile", "--actors", "gaussian-awr,edp", "--seeds", "0",
         "--grid", "critic.tau=0.7,1.5", "--steps", "10", "--eval-every", "5", "--eval-episodes", "2",
         "--save-every", "5", "--workers", "2", "--out", str(out), "--no-live", "--runner", " ".join(fake)]
    )
    assert cli.run(args) == 1
    text = capsys.readouterr().out
    assert "2/4 cells finished, 2 failed" in text
    # the runner's whole error block, unwrapped onto one line, with the command it names intact
    expected = (f"critic.tau must be in (0, 1), got 1.5. Pick a value like 0.7 and check the grid first "
                f"with `offrl sweep --grid critic.tau=0.7 --dry-run --out {out}`.")
    status = json.loads((out / "status.json").read_text())["cells"]
    failed = [k for k, e in status.items() if e["state"] == "failed"]
    assert len(failed) == 2
    for key in failed:
        assert f"failed {key} (exit 2): {expected}\n" in text
        assert status[key]["message"] == expected
        error = (out / "runs" / key / "error.txt").read_text()
        assert "exited with code 2" in error and "critic.tau=1.5" in error and f"error: {expected}" in error
    assert sorted(e["state"] for e in status.values()) == ["failed", "failed", "finished", "finished"]

    # a rerun retries only the failed cells (and they fail again, the same way)
    n = len(invocations(tmp_path))
    assert cli.run(args) == 1
    assert len(invocations(tmp_path)) == n  # the finished cells did not start again
    for key in failed:
        assert (out / "logs" / f"{key}.log").read_text().count("=== ") == 2  # two attempts, both logged


def test_a_locked_cell_is_left_alone(tmp_path: Path, fake: tuple[str, ...]) -> None:
    out = tmp_path / "sweep"
    spec = tiny_spec()
    busy = expand_cells(spec)[0].key
    with FileLock(str(SweepLayout(out).lock_file(busy))):  # "another sweep" is running this cell
        outcome = run_sweep(spec, out, runner=fake, live=False)
    assert outcome.states[busy] == "busy" and outcome.exit_code == 1
    assert len(outcome.keys("finished")) == 7
    assert run_sweep(spec, out, runner=fake, live=False).exit_code == 0
    assert [k for kind, k, _ in invocations(tmp_path)].count(busy) == 1


def test_diverged_cell_ends_and_is_not_retried(
    tmp_path: Path, fake: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    from offrl.cli import sweep as cli

    out = tmp_path / "sweep"
    args = sweep_parser().parse_args(
        ["sweep", "--critics", "expectile", "--actors", "gaussian-awr", "--seeds", "0", "--grid",
         "fake.diverge_at=0,7", "--steps", "10", "--eval-every", "5", "--eval-episodes", "2", "--save-every", "5",
         "--workers", "2", "--out", str(out), "--no-live", "--runner", " ".join(fake)]
    )
    assert cli.run(args) == 0  # every cell ended: a divergence is a result, not a failure to retry
    text = capsys.readouterr().out
    status = json.loads((out / "status.json").read_text())["cells"]
    [key] = [k for k, e in status.items() if e["state"] == "diverged"]
    assert "1/2 cells finished, 1 diverged" in text
    assert f"diverged {key}: diverged at step 7: non-finite critic loss" in text
    assert not (out / "runs" / key / "error.txt").exists()

    n = len(invocations(tmp_path))
    assert cli.run(args) == 0
    assert len(invocations(tmp_path)) == n  # the diverged cell was not started again
    text = capsys.readouterr().out
    assert "1 already finished, 1 diverged earlier, 0 to run" in text
    args.dry_run = True
    assert cli.run(args) == 0
    assert "diverged" in capsys.readouterr().out


def test_a_run_directory_held_by_its_run_is_left_alone(tmp_path: Path, fake: tuple[str, ...]) -> None:
    """A run directory whose run.lock is held (an `offrl run --resume` started by hand) is busy, never resumed beside."""
    from offrl import rundir

    out = tmp_path / "sweep"
    spec = tiny_spec()
    held = expand_cells(spec)[1].key
    run_dir = SweepLayout(out).run_dir(held)
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from offrl import rundir; fd = rundir.lock_run_dir(sys.argv[1]); "
         "print(fd is not None, flush=True); time.sleep(120)", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        assert rundir.run_dir_busy(run_dir)
        outcome = run_sweep(spec, out, runner=fake, live=False)
        assert outcome.states[held] == "busy" and "in use by another process" in outcome.results[held].message
        assert held not in {k for _, k, _ in invocations(tmp_path)}
    finally:
        holder.kill()
        holder.wait()
    assert not rundir.run_dir_busy(run_dir)
    assert run_sweep(spec, out, runner=fake, live=False).exit_code == 0


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.cli import sweep as cli

    out = tmp_path / "sweep"
    args = sweep_parser().parse_args(
        ["sweep", "--critics", "expectile", "--actors", "gaussian-awr", "--seeds", "0-2", "--out", str(out),
         "--dry-run", "--grid", "critic.tau=0.6,0.9"]
    )
    assert cli.run(args) == 0
    text = capsys.readouterr().out
    assert "6 cells" in text and "critic.tau=0.9" in text
    assert not out.exists()


def _start_sweep(
    out: Path, runner: str, extra: list[str], env: dict[str, str], actors: str = "gaussian-awr,edp"
) -> subprocess.Popen:
    """`offrl sweep` of a 2 × 2 × 2 grid in its own process group (so the test can kill the whole group)."""
    argv = [sys.executable, "-m", "offrl", "sweep", "--out", str(out), "--no-live", "--workers", "2",
            "--critics", "expectile,quantile", "--actors", actors, "--seeds", "0,1", *extra]
    if runner:
        argv += ["--runner", runner]
    return subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True, preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _default_sigint() -> None:
    """Give the sweep a terminal's SIGINT disposition. A test run started in the background by a
    non-interactive shell (CI, nohup) inherits SIGINT as *ignored*, and Python then installs no
    KeyboardInterrupt handler, so Ctrl-C could not be simulated."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"sweep ended early ({proc.returncode}):\n{proc.stdout.read() if proc.stdout else ''}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("timed out waiting for the sweep")
        time.sleep(0.05)


def _partial(out: Path) -> list[Path]:
    return [p.parent for p in (out / "runs").glob("*/checkpoint.pt") if not (p.parent / "summary.json").exists()]


def test_killed_sweep_resumes_without_rerunning_finished_cells(tmp_path: Path, fake: tuple[str, ...]) -> None:
    out = tmp_path / "sweep"
    env = {**os.environ, "FAKE_STEP_SLEEP": "0.05"}  # 20 steps ≈ 1 s per cell
    flags = ["--steps", "20", "--eval-every", "5", "--eval-episodes", "2", "--save-every", "5"]
    proc = _start_sweep(out, " ".join(fake), flags, env)
    _wait_for(lambda: len(summaries(out)) >= 2 and _partial(out), 60, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and every runner, no clean-up at all
    proc.wait()
    finished_before = summaries(out)
    partial = _partial(out)
    assert 2 <= len(finished_before) < 8 and partial

    proc = _start_sweep(out, " ".join(fake), flags, {**env, "FAKE_STEP_SLEEP": "0"})
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    after = summaries(out)
    assert len(after) == 8
    assert all(after[k] == t for k, t in finished_before.items())  # finished cells untouched
    # the rerun's counter goes on from the cells that had ended ("[k/8]" counts the whole sweep)
    counters = [int(line[1:].split("/")[0]) for line in log.splitlines() if line.startswith("[")]
    assert counters == list(range(len(finished_before) + 1, 9)), log
    calls = invocations(tmp_path)
    for key in finished_before:
        assert [kind for kind, k, _ in calls if k == key] == ["start"]
    resumed = {k for kind, k, _ in calls if kind == "resume"}
    assert {p.name for p in partial} <= resumed
    for run_dir in (out / "runs").iterdir():
        assert eval_steps(run_dir) == [5, 10, 15, 20]  # each evaluation exactly once


def test_sigint_stops_the_sweep_and_a_rerun_resumes(tmp_path: Path, fake: tuple[str, ...]) -> None:
    out = tmp_path / "sweep"
    env = {**os.environ, "FAKE_STEP_SLEEP": "0.5"}
    flags = ["--steps", "40", "--eval-every", "10", "--eval-episodes", "2", "--save-every", "10"]
    proc = _start_sweep(out, " ".join(fake), flags, env)
    _wait_for(lambda: len(list((out / "runs").glob("*/checkpoint.pt"))) >= 2, 60, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
    log, _ = proc.communicate(timeout=120)  # generous: CI machines are loaded
    assert proc.returncode == 130, log
    assert "interrupted" in log
    status = json.loads((out / "status.json").read_text())["cells"]
    assert "interrupted" in {e["state"] for e in status.values()}
    proc = _start_sweep(out, " ".join(fake), flags, {**env, "FAKE_STEP_SLEEP": "0"})
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, log
    assert any(kind == "resume" for kind, _, _ in invocations(tmp_path))
    for run_dir in (out / "runs").iterdir():
        assert eval_steps(run_dir) == [10, 20, 30, 40]


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _runner_pids(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    return {key: int(pid) for pid, key in (line.split() for line in path.read_text().splitlines())}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def _lock_free(path: Path) -> bool:
    try:
        with FileLock(str(path), timeout=0):
            return True
    except TimeoutError:
        return False


def test_runners_die_with_a_driver_killed_alone(
    tmp_path: Path, fake: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the sweep process only: its runners checkpoint and stop; a rerun never runs a cell beside one."""
    out, pids = tmp_path / "sweep", tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    flags = ["--steps", "60", "--eval-every", "5", "--eval-episodes", "2", "--save-every", "5"]
    # each runner needs 5 s to save its checkpoint once stopped, so a rerun at once finds them still running
    env = {**os.environ, "FAKE_STEP_SLEEP": "0.1", "FAKE_STOP_SLEEP": "5"}
    proc = _start_sweep(out, " ".join(fake), flags, env)
    try:
        _wait_for(lambda: len(_runner_pids(pids)) >= 2 and len(_partial(out)) >= 2, 60, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its process group (guards, runners) is not signalled
        proc.wait()
        orphans = {k: pid for k, pid in _runner_pids(pids).items() if _alive(pid)}
        assert orphans  # still saving their checkpoints

        args = sweep_parser().parse_args(["sweep", "--out", str(out), "--workers", "2", "--critics",
                                          "expectile,quantile", "--actors", "gaussian-awr,edp", "--seeds", "0,1",
                                          *flags])
        from offrl.cli.sweep import resolve_spec

        spec = resolve_spec(args)
        rerun = run_sweep(spec, out, runner=fake, live=False)  # at once, while the old runners are stopping
        for key in orphans:
            assert rerun.states[key] == "busy", rerun.states
        assert all(_attempts(out, key) == ["start"] for key in orphans)  # not started beside the old runner

        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in _runner_pids(pids).values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in _runner_pids(pids).values())  # nobody outlived the driver
        for key in orphans:
            log = (out / "logs" / f"{key}.log").read_text()
            assert "interrupted at step" in log  # stopped the way Ctrl-C stops a run: checkpoint saved

        # the runners' guards hold the cell locks until they see their runner gone: on a loaded machine
        # that can take a moment after the runner's own exit
        while not all(_lock_free(out / "locks" / f"{key}.lock") for key in orphans) and time.monotonic() < deadline:
            time.sleep(0.1)
        final = run_sweep(spec, out, runner=fake, live=False)
        assert final.exit_code == 0
        for key in orphans:
            assert _attempts(out, key) == ["start", "resume"]
        for run_dir in (out / "runs").iterdir():
            assert eval_steps(run_dir) == list(range(5, 61, 5))  # every evaluation exactly once
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_live_table_shows_primary_scores_and_errors(tmp_path: Path) -> None:
    """The score column follows the primary-score rule; a failed cell's note is the runner's whole message."""
    from rich.console import Console

    from offrl.sweep.execute import CellResult
    from offrl.sweep.live import SweepView, score_text

    assert score_text({"success_rate_100": 85.0, "normalized_score_100": 40.0}).plain == "85.0%"
    assert score_text({"normalized_score_100": 40.0, "return_mean": 3.0}).plain == "40.0"
    assert score_text({"normalized_score_100": None, "return_mean": 1234.5}).plain == "R 1.23e+03"
    assert score_text(None).plain == "" and score_text({"step": 5}).plain == ""

    spec = tiny_spec()
    cells = expand_cells(spec)[:2]
    layout = SweepLayout(tmp_path)
    run_dir = layout.run_dir(cells[0].key)
    run_dir.mkdir(parents=True)
    (run_dir / "eval.jsonl").write_text(json.dumps({"step": 10, "success_rate_100": 62.5,
                                                    "normalized_score_100": 12.0}) + "\n")
    view = SweepView("tiny", cells, layout, {})
    message = "Unknown hyperparameter of critic 'expectile' (critic.KEY) 'tauu'. Did you mean 'tau'? " * 2
    view.cell_done(CellResult(cells[1].key, "failed", 2, 0.0, 1.0, message=message.strip()))
    console = Console(width=10_000, file=io.StringIO())
    console.print(view.table())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "62.5%" in text and message.strip() in text and "1 failed" in text


# ---------------------------------------------------------------- Ray


def test_ray_backend_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.sweep.ray_backend import MissingExtraError, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"offrl\[ray\]"):
        import_ray()


# ---------------------------------------------------------------- the real `offrl run`


def _core_ready() -> bool:
    try:
        import offrl.cli.run  # noqa: F401
        import offrl.trainer.api  # noqa: F401
    except ImportError:
        return False
    return True


needs_core = pytest.mark.skipif(not _core_ready(), reason="offrl run (the core trainer) is not importable")

#: A few hundred bandit iterations with the bandit preset's small networks: seconds per run, and a
#: checkpoint every 10 iterations so a kill lands between checkpoints of a running cell.
REAL_FLAGS = ["--preset", "bandit", "--steps", "200", "--eval-every", "100", "--eval-episodes", "5",
              "--save-every", "10", "--set", "trainer.log_every=50"]
REAL_CRITICS, REAL_ACTORS = "expectile,quantile", "gaussian-awr,ddpg-bc"


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a 300-episode bandit: each run loads it in a fraction of the default's ~6 s."""
    if not _core_ready():
        pytest.skip("offrl run (the core trainer) is not importable")
    from offrl.data.writer import ensure_dataset

    root = tmp_path_factory.mktemp("minari-small")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    try:
        ensure_dataset(BANDIT, episodes=300)
    finally:
        mp.undo()
    return root


@pytest.fixture(scope="module")
def real_sweep(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny grid with the real runner, SIGKILLed mid-way and rerun to completion (checked below)."""
    out = tmp_path_factory.mktemp("real") / "sweep"
    env = {**os.environ, "MINARI_DATASETS_PATH": str(small_store), "HF_HUB_OFFLINE": "1"}
    proc = _start_sweep(out, "", REAL_FLAGS, env, actors=REAL_ACTORS)
    _wait_for(lambda: len(summaries(out)) >= 2 and bool(_partial(out)), 300, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = summaries(out)
    partial = {p.name for p in _partial(out)}
    (out / "killed.json").write_text(json.dumps({"finished": before, "partial": sorted(partial)}))
    proc = _start_sweep(out, "", REAL_FLAGS, env, actors=REAL_ACTORS)
    log, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, log
    return out


def _attempts(out: Path, key: str) -> list[str]:
    """'start' / 'resume' for each attempt the sweep logged for a cell."""
    text = (out / "logs" / f"{key}.log").read_text()
    return [line.split()[3].rstrip(":") for line in text.splitlines() if line.startswith("=== ")]


@pytest.mark.slow
@needs_core
def test_real_sweep_killed_and_rerun_finishes_without_rerunning(real_sweep: Path) -> None:
    out = real_sweep
    killed = json.loads((out / "killed.json").read_text())
    after = summaries(out)
    assert len(after) == 8 and 2 <= len(killed["finished"]) < 8 and killed["partial"]
    for key, mtime in killed["finished"].items():
        assert after[key] == mtime  # a finished cell's summary was not rewritten
        assert _attempts(out, key) == ["start"]  # ... and the cell never started again
    for key in killed["partial"]:
        assert _attempts(out, key) == ["start", "resume"]  # resumed from its checkpoint
    for run_dir in (out / "runs").iterdir():
        assert eval_steps(run_dir) == [100, 200]  # each evaluation once, resumed or not
        config = json.loads((run_dir / "config.json").read_text())
        assert config["trainer"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
        assert config["preset"] == "bandit"


@pytest.mark.slow
@needs_core
def test_real_sweep_report(real_sweep: Path, tmp_path: Path) -> None:
    from offrl.report.build import build_report, write_report

    report = build_report([real_sweep], reps=1000, seed=0)
    assert len(report.evals) == 8 * 2  # one row per run × evaluation
    assert report.evals.groupby("run_dir")["step"].apply(list).map(lambda s: s == [100, 200]).all()
    assert set(report.aggregate["pairing"]) == {
        f"{c}+{a}" for c in REAL_CRITICS.split(",") for a in REAL_ACTORS.split(",")}
    written = write_report(report, tmp_path / "report")
    assert (tmp_path / "report" / "report.md").exists()
    if not written.plot_message:
        assert (tmp_path / "report" / "learning_curves.png").exists()


@pytest.mark.slow
@needs_core
def test_real_failing_cell_is_reported(tmp_path: Path, small_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure no up-front check can see (the dataset is not in the store): the runner's whole message, its
    command included, reaches the sweep's outcome and error.txt unbroken."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(small_store))
    spec = SweepSpec(critics=("expectile",), actors=("gaussian-awr",), datasets=("mujoco/hopper/medium-v0",),
                     seeds=(0,), run=RunOptions(preset="bandit", steps=20))
    outcome = run_sweep(spec, tmp_path / "sweep", live=False)
    assert outcome.exit_code == 1
    [key] = outcome.keys("failed")
    message = outcome.results[key].message
    assert message.startswith("Dataset 'mujoco/hopper/medium-v0' is not in the local Minari store")
    assert "`offrl data download mujoco/hopper/medium-v0`" in message and "\n" not in message
    assert f"error: {message}" in (tmp_path / "sweep" / "runs" / key / "error.txt").read_text()


@pytest.mark.slow
@needs_core
def test_seeds_per_process_groups_a_cells_seeds(tmp_path: Path, small_store: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two seeds of one cell configuration train in one process, each in its own cell directory; cells left
    resumable are continued together by a rerun; results equal a solo run of each seed."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(small_store))
    from offrl.sweep.driver import build_jobs

    run = RunOptions(preset="bandit", steps=120, eval_every=60, eval_episodes=5, save_every=30)
    spec = SweepSpec(critics=("expectile",), actors=("ddpg-bc",), seeds=(0, 1, 2), run=run,
                     backend=BackendOptions(seeds_per_process=2))
    cells = expand_cells(spec)
    layout = SweepLayout(tmp_path / "sweep")
    jobs = build_jobs(cells, {c.key: "pending" for c in cells}, layout, spec, 1)
    assert [len(j.members) for j in jobs] == [2, 0] and jobs[0].seeds == (0, 1)  # seeds 0+1 together, 2 alone
    assert jobs[0].out_template.endswith("__seed{seed}")
    outcome = run_sweep(spec, tmp_path / "sweep", live=False)
    assert outcome.exit_code == 0, outcome.results
    assert sorted(outcome.states.values()) == ["finished"] * 3
    grouped = [c.key for c in cells if c.seed in (0, 1)]
    assert "2 seeds" in (layout.log_file(grouped[0])).read_text()
    assert "trained together" in layout.log_file(grouped[1]).read_text()
    for c in cells:
        config = json.loads((layout.run_dir(c.key) / "config.json").read_text())
        assert config["trainer"]["seed"] == c.seed and eval_steps(layout.run_dir(c.key)) == [60, 120]
    for key in grouped:  # as if killed after the last checkpoint: resumable, not ended
        (layout.run_dir(key) / "summary.json").unlink()
    again = run_sweep(spec, tmp_path / "sweep", live=False)
    assert again.exit_code == 0 and sorted(again.states.values()) == ["finished"] * 3
    assert "resume (2 seeds" in layout.log_file(grouped[0]).read_text()
    assert all(eval_steps(layout.run_dir(k)) == [60, 120] for k in grouped)
    solo = SweepSpec(critics=("expectile",), actors=("ddpg-bc",), seeds=(1,), run=run)
    assert run_sweep(solo, tmp_path / "solo", live=False).exit_code == 0
    a = _eval_scores(layout.run_dir(grouped[1]))
    b = _eval_scores(SweepLayout(tmp_path / "solo").run_dir(grouped[1]))
    assert a == pytest.approx(b, rel=1e-4)


def _eval_scores(run_dir: Path) -> list[float]:
    return [json.loads(line)["normalized_score_100"] for line in (run_dir / "eval.jsonl").read_text().splitlines()]


def test_a_diverged_run_is_never_started_again(tmp_path: Path) -> None:
    """A cell whose run says it diverged has ended: no runner is started, the summary's reason is reported."""
    from offrl.sweep.execute import CellJob, execute_cell

    run_dir = tmp_path / "runs" / "cell"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "summary.json").write_text(json.dumps({"status": "diverged", "steps": 40, "reason": "NaN in V"}))
    job = CellJob("cell", str(run_dir), str(tmp_path / "logs" / "cell.log"), str(tmp_path / "locks" / "cell.lock"),
                  ("false",), ("false",))
    result = execute_cell(job)
    assert (result.state, result.message) == ("diverged", "diverged at step 40: NaN in V")
    assert not (tmp_path / "logs" / "cell.log").exists()  # nothing was started


def test_ray_backend_gives_the_same_cells(tmp_path: Path, fake: tuple[str, ...]) -> None:
    """The tiny sweep on a private local Ray instance: the same cells, the same evaluations as locally."""
    pytest.importorskip("ray")
    local = run_sweep(tiny_spec(), tmp_path / "local", runner=fake, live=False)
    spec = SweepSpec(**{**tiny_spec().__dict__, "backend": BackendOptions(name="ray", workers=2)})
    remote = run_sweep(spec, tmp_path / "ray", runner=fake, live=False)
    assert local.exit_code == remote.exit_code == 0
    assert set(summaries(tmp_path / "local")) == set(summaries(tmp_path / "ray")) == {c.key for c in local.cells}
    for key in summaries(tmp_path / "ray"):
        assert eval_steps(tmp_path / "ray" / "runs" / key) == eval_steps(tmp_path / "local" / "runs" / key)


@pytest.mark.slow
@needs_core
def test_real_runner_on_ray_gives_the_same_cells(
    real_sweep: Path, small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(small_store))
    from offrl.cli.sweep import resolve_spec

    args = sweep_parser().parse_args(["sweep", "--critics", REAL_CRITICS, "--actors", REAL_ACTORS, "--seeds", "0,1",
                                      "--backend", "ray", "--workers", "2", *REAL_FLAGS])
    outcome = run_sweep(resolve_spec(args), tmp_path / "ray", live=False)
    assert outcome.exit_code == 0, outcome.results
    assert set(summaries(tmp_path / "ray")) == set(summaries(real_sweep)) == {c.key for c in outcome.cells}
    for key in summaries(real_sweep):
        assert eval_steps(tmp_path / "ray" / "runs" / key) == [100, 200]
