"""Fixes from issue 26's "also found" list: file modes, CLI flags, piped output, wording."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from offrl import rundir


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path: Path, mask: int) -> None:
    """mkstemp makes 0600 files whatever the umask; run files must get 0666 & ~umask like a plain open."""
    old = os.umask(mask)
    try:
        rundir.write_text_atomic(tmp_path / "a.json", "{}")
        rundir.write_json(tmp_path / "b.json", {"x": 1})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~mask
    for name in ("a.json", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name


def test_checkpoint_and_policy_temp_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fd, tmp = rundir.make_temp(tmp_path / "policy.pt")
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(tmp).stat().st_mode) == 0o644


def test_dataset_temp_files_and_dirs_respect_the_umask(tmp_path: Path) -> None:
    from offrl.datagen.tempdirs import private_temp_dir, private_temp_file

    old = os.umask(0o022)
    try:
        f = private_temp_file(tmp_path, "shard", ".npz")
        d = private_temp_dir(tmp_path, "write")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE(d.stat().st_mode) == 0o755


def test_list_accepts_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`offrl list --plugin MODULE` was refused; it imports MODULE so its components are listed."""
    from offrl.cli.main import main
    from test_policy import PLUGIN

    # its own component name: other tests of this process have registered test_policy's plugin already
    (tmp_path / "my_list_components.py").write_text(PLUGIN.replace("plugin-expectile", "listed-expectile"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "critic", "--plugin", "my_list_components"]) == 0
    assert "listed-expectile" in capsys.readouterr().out
    assert main(["list", "--plugin", "no_such_module_x"]) == 2
    assert "no_such_module_x" in capsys.readouterr().err


def _summary(run_dir: str) -> dict:
    return {"seed": 0, "critic": "expectile", "actor": "ddpg-bc", "dataset": "offrl/bandit/multimodal-v0",
            "status": "finished", "final_score_100": 93.3, "best_score_100": 93.3, "best_step": 3000,
            "steps": 3000, "wall_time_s": 31.3, "run_dir": run_dir}


@pytest.mark.parametrize("width", [70, 200])
def test_summary_never_folds_the_run_directory(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal too narrow for the table, the run directory was folded inside its cell (not copyable)."""
    import io

    from rich.console import Console

    import offrl.cli.terminal as terminal
    from offrl.cli.run import print_summary

    buf = io.StringIO()
    monkeypatch.setattr(terminal, "console",
                        lambda **_: Console(file=buf, force_terminal=True, width=width, soft_wrap=True,
                                            color_system=None))
    path = "/very/long/path/to/my/experiments/expectile_ddpg-bc_bandit_s0_20261203-105200"
    print_summary([_summary(path)], 3000)
    lines = buf.getvalue().splitlines()
    assert any(path in line for line in lines), lines  # whole, on one line
    if width == 70:
        assert f"seed 0: {path}" in lines and all("run directory" not in line for line in lines)
    else:
        assert any("run directory" in line for line in lines)


def test_tensorboard_mirrors_the_jsonl_logs(tmp_path: Path) -> None:
    """tensorboard is in [test] now, so the logging path runs here: every evaluation's score and the training
    losses land in RUN_DIR/tensorboard with the values and steps of eval.jsonl / train.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.helpers import read_jsonl, run_cli

    out = tmp_path / "tb"
    proc = run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "60", "--eval-every", "20",
                   "--eval-episodes", "5", "--set", "trainer.tensorboard=true", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    evals = read_jsonl(out / "eval.jsonl")
    [score_tag] = [t for t in tags if t.endswith("normalized_score_100")]
    logged = [(e.step, e.value) for e in events.Scalars(score_tag)]
    assert logged == [(r["step"], pytest.approx(r["normalized_score_100"], rel=1e-6)) for r in evals]
    train_keys = {k for row in read_jsonl(out / "train.jsonl") for k in row if "/" in k}
    assert train_keys and train_keys <= set(tags), (train_keys, tags)


def test_import_offrl_envs_registers_the_gymnasium_ids() -> None:
    """`gym.make("offrl/…")` failed after `import offrl` with no word why; `import offrl.envs` registers them
    (and gymnasium's `module:id` form imports it for you), while `import offrl` stays free of gymnasium."""
    import subprocess
    import sys

    code = ("import sys, offrl; assert 'gymnasium' not in sys.modules; import gymnasium as gym; "
            "print(gym.make('offrl.envs:offrl/MultimodalBandit-v0').spec.id); "
            "import offrl.envs; print(gym.make('offrl/MultimodalBandit-v0').spec.id)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["offrl/MultimodalBandit-v0"] * 2


@pytest.mark.parametrize("argv, expected", [
    (["run"], True),                                      # bare: the papers' 1M steps, said up front
    (["run", "--preset", "bandit"], False),               # the preset chose 3,000
    (["run", "--steps", "500"], False),
    (["run", "--set", "trainer.steps=500"], False),
])
def test_bare_run_says_it_means_a_million_steps(argv: list[str], expected: bool) -> None:
    from offrl.cli.main import build_parser
    from offrl.cli.run import build_layers, default_steps_note
    from offrl.config import resolve

    layers = build_layers(build_parser().parse_args(argv))
    note = default_steps_note(layers, resolve(layers).trainer.steps)
    assert (note is not None) == expected
    if expected:
        assert note.startswith("1,000,000 training steps") and "--preset bandit" in note
