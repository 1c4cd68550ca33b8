"""How offrl writes to terminals, pipes and logs: clean help, unbroken errors and tables, quiet broken pipes,
plurals, and `offrl list trainer` / `offrl list data`."""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offrl.cli import terminal
from offrl.cli.main import BROKEN_PIPE_EXIT, build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _offrl(*args: str, columns: int = 80, **kwargs: object) -> subprocess.CompletedProcess:
    """``python -m offrl ARGS`` with output to pipes (not a terminal) and an 80-column environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "offrl", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, **kwargs)  # type: ignore[call-overload]


def _all_parsers(parser: argparse.ArgumentParser, prefix: str = "offrl") -> dict[str, argparse.ArgumentParser]:
    found = {prefix: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_all_parsers(sub, f"{prefix} {name}"))
    return found


# ---------------------------------------------------------------- help


def test_every_help_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    parsers = _all_parsers(build_parser())
    assert {"offrl run", "offrl sweep", "offrl report", "offrl list", "offrl data", "offrl data make"} <= set(parsers)
    for name, parser in parsers.items():
        text = parser.format_help()
        for noise in ("(default: None)", "``", "::", "(default: [])", "(default: False)"):
            assert noise not in text, f"{name} --help shows {noise!r}"


def test_defaults_shown_only_where_there_is_one() -> None:
    parsers = _all_parsers(build_parser())
    run_help = " ".join(parsers["offrl run"].format_help().split())
    assert "--steps STEPS trainer iterations (trainer.steps) --seed" in run_help  # no "(default: None)" appended
    report_help = " ".join(parsers["offrl report"].format_help().split())
    assert "bootstrap resamples, at most 100,000 (default: 10000)" in report_help


def test_examples_keep_their_lines() -> None:
    text = _all_parsers(build_parser())["offrl sweep"].format_help()
    assert "\n  offrl sweep benchmarks/bandit.toml --dry-run\n" in text


# ---------------------------------------------------------------- errors and tables in pipes and logs


def test_error_in_a_log_is_one_unbroken_line(tmp_path: Path) -> None:
    spec = tmp_path / ("a-rather-long-directory-name-for-the-spec" * 2) / "suite.toml"
    done = _offrl("sweep", str(spec))
    assert done.returncode == 2
    assert done.stderr == f"error: Sweep spec '{spec}' does not exist (expected a .toml file, e.g. " \
                          "benchmarks/bandit.toml).\n"


def test_error_on_a_terminal_is_soft_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an 80-column terminal a long error is one logical line: the terminal folds it, copying gives it whole."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    out = Tty()
    command = "offrl run --resume runs/expectile_gaussian-awr_offrl-bandit-multimodal-v0_seed0_20250101-120000"
    terminal.print_error(f"interrupted at step 1200; checkpoint saved. Continue with `{command}`.", file=out)
    text = out.getvalue()
    plain = text.replace("\x1b[1;31m", "").replace("\x1b[0m", "")
    assert plain == f"error: interrupted at step 1200; checkpoint saved. Continue with `{command}`.\n"


def test_tables_in_a_log_are_not_squeezed(tmp_path: Path) -> None:
    out = tmp_path / ("deep" * 10) / "sweep-with-a-long-name"
    done = _offrl("sweep", "--critics", "expectile", "--actors", "gaussian-awr", "--datasets",
                  "offrl/bandit/multimodal-v0", "--grid", "critic.hidden_dims=[256,256,256],[64,64]",
                  "--out", str(out), "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "sweep 'sweep': 2 cells -> " + str(out) in lines
    assert any(line.startswith(f"cell directories: {out}/runs/") for line in lines)
    rows = [line for line in lines if "critic.hidden_dims=[256,256,256]" in line]
    assert len(rows) == 1 and "offrl/bandit/multimodal-v0" in rows[0] and "pending" in rows[0]


# ---------------------------------------------------------------- broken pipes


@pytest.mark.parametrize("args", [["list", "critic"], ["--help"], ["sweep", "--dry-run", "--out", "unused"],
                                  ["list", "trainer"]])
def test_a_reader_that_went_away_ends_the_command_quietly(args: list[str]) -> None:
    """``offrl ... | head``: the reader closed the pipe before offrl wrote; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, whatever the output's size
    try:
        done = subprocess.run([sys.executable, "-m", "offrl", *args], cwd=REPO, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        os.close(write_end)
    assert done.stderr == ""
    # argparse itself ignores a failed write of --help; everything else ends like a Unix tool killed by SIGPIPE
    assert done.returncode == (0 if args == ["--help"] else BROKEN_PIPE_EXIT), done.stderr


def test_broken_pipe_in_process_returns_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["list", "critic"]) == BROKEN_PIPE_EXIT


# ---------------------------------------------------------------- plurals


def test_plural() -> None:
    assert terminal.plural(1, "cell") == "1 cell"
    assert terminal.plural(0, "cell") == "0 cells"
    assert terminal.plural(2, "dataset") == "2 datasets"
    assert terminal.plural(1, "analysis", "analyses") == "1 analysis"
    assert terminal.plural(3, "analysis", "analyses") == "3 analyses"


def test_one_cell_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--critics", "expectile", "--actors", "gaussian-awr", "--out", str(tmp_path / "s"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 cell ->" in out and "1 cells" not in out


# ---------------------------------------------------------------- offrl list trainer / data


def test_list_trainer_and_data_show_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    from offrl.config import DataConfig, TrainerConfig

    for section, cls in (("trainer", TrainerConfig), ("data", DataConfig)):
        assert main(["list", section]) == 0
        out = capsys.readouterr().out
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            row = next(line for line in out.splitlines() if f" {section}.{f.name} " in line)
            assert repr(default) in row and f.metadata.get("help", "") in row
    assert main(["list", "trainer", "steps"]) == 0
    assert "trainer.steps" in capsys.readouterr().out
    assert main(["list", "trainer", "stepz"]) == 2
    assert "Did you mean 'steps'?" in capsys.readouterr().err


def test_a_key_added_to_the_trainer_config_is_listed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import offrl.config

    @dataclasses.dataclass
    class Extended(offrl.config.TrainerConfig):
        clip_grad: float = dataclasses.field(default=1.5, metadata={"help": "Clip gradients at this norm"})

    monkeypatch.setattr(offrl.config, "TrainerConfig", Extended)  # what RunConfig's annotation names
    assert main(["list", "trainer"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "trainer.clip_grad" in line)
    assert "1.5" in row and "Clip gradients at this norm" in row


def test_list_names_the_settings_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    assert "settings: data.* (offrl list data), trainer.* (offrl list trainer)" in capsys.readouterr().out
    assert main(["list", "trainr"]) == 2
    assert "Did you mean 'trainer'?" in capsys.readouterr().err
