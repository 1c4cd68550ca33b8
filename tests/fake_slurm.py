"""A stand-in for SLURM's commands, enough for submitit's SLURM executor: sbatch, srun, sacct, scontrol, scancel.

Installed by tests as links named after each command (``install(bin_dir, state_dir)``); it dispatches on the name
it was called by. State lives in ``$FAKE_SLURM_DIR``: ``next_id``, ``submitted.log`` (one line per sbatch call:
the script's path), and per array task ``<id>_<k>.state`` (PENDING, RUNNING, REQUEUED, COMPLETED, FAILED,
CANCELLED), ``.pid`` (the task's process group) and ``.requeue`` (asked by ``scontrol requeue``). ``sbatch`` starts
every task at once, each in a session of its own (so it outlives the process that submitted it, as a job outlives
its driver); a task runs the batch script with the SLURM_* variables a job sees, and runs it again after a
requeue. ``scancel`` sends SIGTERM to every process of the task, as SLURM does.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

COMMANDS = ("sbatch", "srun", "sacct", "scontrol", "scancel")


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Links to this script named after SLURM's commands; returns the environment that puts them first."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "fake-slurm"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$(basename \"$0\")\" \"$@\"\n")
    launcher.chmod(0o755)
    for name in COMMANDS:
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(launcher)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state_dir)}


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def _set(task: str, state: str) -> None:
    (_state() / f"{task}.state").write_text(state)


def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    text = script.read_text()
    counter = _state() / "next_id"
    job_id = int(counter.read_text()) if counter.exists() else 1000
    counter.write_text(str(job_id + 1))
    with (_state() / "submitted.log").open("a") as f:
        f.write(f"{job_id} {script}\n")
    match = re.search(r"^#SBATCH --array=0-(\d+)", text, re.M)
    tasks = range(int(match.group(1)) + 1) if match else [None]
    for k in tasks:
        task = f"{job_id}_{k}" if k is not None else str(job_id)
        _set(task, "PENDING")
        subprocess.Popen([sys.executable, __file__, "_task", str(job_id), "" if k is None else str(k), str(script)],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=dict(os.environ))
    print(f"Submitted batch job {job_id}")
    return 0


def task(job_id: str, k: str, script: str) -> int:
    name = f"{job_id}_{k}" if k else job_id
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # scancel's SIGTERM is for the job, not for us
    env = dict(os.environ, SLURM_JOB_ID=f"{job_id}{k}", SLURM_NTASKS="1", SLURM_PROCID="0",
               SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="localhost")
    if k:
        env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=k)
    (_state() / f"{name}.pid").write_text(str(os.getpid()))
    while True:
        _set(name, "RUNNING")
        code = subprocess.call(["bash", script], env=env)
        requeue = _state() / f"{name}.requeue"
        if (_state() / f"{name}.cancelled").exists():
            _set(name, "CANCELLED")
            return 0
        if requeue.exists():
            requeue.unlink()
            _set(name, "REQUEUED")
            continue
        _set(name, "COMPLETED" if code == 0 else "FAILED")
        return 0


def srun(args: list[str]) -> int:
    """Run the command after srun's options, its output to --output (with srun's %A %a %j %t filled in)."""
    out = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("--output", "--error"):
            out = args[i + 1] if args[i] == "--output" else out
            i += 2
        else:
            i += 1
    subs = {"%A": os.environ.get("SLURM_ARRAY_JOB_ID", ""), "%a": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
            "%j": os.environ.get("SLURM_JOB_ID", ""), "%t": "0"}
    if out:
        for key, value in subs.items():
            out = out.replace(key, value)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab") as f:
            return subprocess.call(args[i:], stdout=f, stderr=subprocess.STDOUT)
    return subprocess.call(args[i:])


def sacct(args: list[str]) -> int:
    wanted = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for path in sorted(_state().glob("*.state")):
        name = path.name[: -len(".state")]
        if name.split("_")[0] in wanted or name in wanted:
            print(f"{name}|{path.read_text()}|localhost")
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] == ["requeue"]:
        (_state() / f"{args[1]}.requeue").write_text("")
        return 0
    return 1


def scancel(args: list[str]) -> int:
    for name in (a for a in args if not a.startswith("-")):
        targets = [p.name[: -len(".state")] for p in _state().glob(f"{name}*.state")
                   if p.name[: -len(".state")] == name or p.name.startswith(f"{name}_")]
        for target in targets:
            (_state() / f"{target}.cancelled").write_text("")
            pid_file = _state() / f"{target}.pid"
            if pid_file.exists():
                try:
                    os.killpg(int(pid_file.read_text()), signal.SIGTERM)  # every process of the job
                except ProcessLookupError:
                    pass
            if (_state() / f"{target}.state").read_text() == "PENDING":
                _set(target, "CANCELLED")
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "_task":
        return task(*args)
    return {"sbatch": sbatch, "srun": srun, "sacct": sacct, "scontrol": scontrol, "scancel": scancel}[command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
