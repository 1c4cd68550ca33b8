"""Every code block of README.md and docs/*.md runs (python) or is checked against the code (shell).

What is checked, block by block (fenced blocks, by their language tag; an untagged block fails):

- ``python``: executed in a fresh temporary directory, in a namespace of its own. A line may end in
  ``# docs-test: OLD -> NEW``: the test replaces OLD by NEW on that line (a smaller budget, e.g.
  ``range(3000)`` -> ``range(30)``), so the printed code stays the real one. Blocks already executed by
  another test are listed in ``COVERED`` (that test file must name the document).
- ``bash``: every command (backslash continuations joined, comments dropped, ``&&`` chains split,
  leading ``VAR=value`` assignments dropped) must be one this test knows:
  ``offrl ...`` is parsed by offrl's own argument parser (exit 2 = a bad flag fails the test); ``run``
  commands' configurations are resolved (critic, actor, preset, every ``--set`` key and value checked;
  ``--resume`` only parsed); ``sweep`` commands are checked as ``--dry-run`` checks them (the spec and
  every cell's configuration resolved, nothing trains); ``data make`` ids must be built-in datasets; ``list`` and ``data list`` run; ``report``,
  ``eval``, ``data info``/``download`` are parsed only (they need runs or a network). The quick start
  ``offrl run --preset bandit`` runs, at 20 iterations. ``pip install`` may only name extras that
  pyproject.toml defines; ``python benchmarks/SCRIPT.py ARGS`` may only use flags the script's
  ``--help`` lists; ``python -m pytest`` is accepted as is.
- ``text`` (diagrams, outputs, usage synopses), ``toml``, ``json``: not code to run.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"python", "bash", "text", "toml", "json"}
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.S | re.M)
#: (document, index among its python blocks) -> the test that executes that block.
COVERED = {("README.md", 0): "tests/test_policy.py", ("docs/extending.md", 0): "tests/test_extending.py",
           ("docs/datasets.md", 0): "tests/test_import_data.py"}


def blocks() -> list[tuple[str, int, str, str]]:
    """(document relative to the root, line, language, code) of every fenced block."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            out.append((doc.relative_to(ROOT).as_posix(), text[:m.start()].count("\n") + 1, m.group(1), m.group(2)))
    return out


def _python_blocks() -> list[tuple[str, int, int, str]]:
    seen: dict[str, int] = {}
    out = []
    for doc, line, lang, code in blocks():
        if lang == "python":
            index = seen.get(doc, 0)
            seen[doc] = index + 1
            out.append((doc, line, index, code))
    return out


def _commands() -> list[tuple[str, int, list[str]]]:
    """(document, line, tokens) of every shell command of every bash block."""
    out = []
    for doc, line, lang, code in blocks():
        if lang != "bash":
            continue
        joined = re.sub(r"\\\n\s*", " ", code)
        for i, raw in enumerate(joined.splitlines()):
            tokens = shlex.split(raw, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                command, tokens = tokens[:cut], tokens[cut + 1:]
                while command and re.fullmatch(r"[A-Z_]+=\S*", command[0]):
                    command = command[1:]
                if command:
                    out.append((doc, line + 1 + i, command))
    return out


def test_every_block_says_what_it_is() -> None:
    bad = [(doc, line, lang) for doc, line, lang, _ in blocks() if lang not in LANGS]
    assert not bad, f"fenced blocks without a known language tag ({', '.join(sorted(LANGS))}): {bad}"
    assert len(_python_blocks()) >= 4 and len(_commands()) >= 30  # the docs' blocks were found


@pytest.mark.parametrize("doc, line, index, code", _python_blocks(), ids=lambda v: str(v)[:40])
def test_python_block_runs(doc: str, line: int, index: int, code: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if (doc, index) in COVERED:
        test_file = ROOT / COVERED[(doc, index)]
        assert Path(doc).name in test_file.read_text(), f"{test_file} no longer runs {doc}'s block"
        return
    lines = []
    for text in code.splitlines():
        m = re.search(r"\s*# docs-test: (.+?) -> (.+)$", text)
        if m:
            assert m.group(1) in text[:m.start()], f"{doc}:{line}: '{m.group(1)}' is not on its line"
            text = text[:m.start()].replace(m.group(1), m.group(2))
        lines.append(text)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(lines), f"{doc}:{line}", "exec"), {"__name__": "__docs__"})


def _check_offrl(tokens: list[str], where: str, tmp_path: Path) -> None:
    from offrl.cli.main import build_parser

    try:
        args = build_parser().parse_args(tokens)
    except SystemExit as e:
        pytest.fail(f"{where}: offrl's parser refuses `offrl {' '.join(tokens)}` (exit {e.code})")
    if args.command == "run" and not args.resume:
        from offrl.cli.run import build_layers
        from offrl.config import resolve

        resolve(build_layers(args))  # names, preset, --set keys and values
    elif args.command == "sweep":  # what --dry-run checks: the spec, the flags on top, every cell's config
        from offrl.cli.sweep import resolve_spec
        from offrl.sweep.cells import expand_cells
        from offrl.sweep.driver import validate_spec

        spec = resolve_spec(args)
        validate_spec(spec, expand_cells(spec))
    elif args.command == "data" and tokens[1] == "make":
        from offrl.datagen.builtins import BUILTIN_DATASETS

        BUILTIN_DATASETS.get(tokens[2])
    elif tokens in (["list"], ["data", "list"]):
        from offrl.cli.main import main

        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(tokens) == 0, f"{where}: exit status"
        assert out.getvalue().strip(), f"{where}: printed nothing"


def _check_pip(tokens: list[str], where: str) -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for t in tokens[2:]:
        m = re.fullmatch(r"(?:\.|offrl)\[([\w,-]+)\]", t)
        if m:
            unknown = set(m.group(1).split(",")) - extras
            assert not unknown, f"{where}: extras {unknown} are not in pyproject.toml ({sorted(extras)})"


def _check_script(tokens: list[str], where: str) -> None:
    script = ROOT / tokens[1]
    assert script.is_file(), f"{where}: {tokens[1]} does not exist"
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout
    flags = {t.split("=")[0] for t in tokens[2:] if t.startswith("--")}
    missing = {f for f in flags if not re.search(rf"{re.escape(f)}\b", help_text)}
    assert not missing, f"{where}: {tokens[1]} has no option {sorted(missing)}"


def test_shell_commands_are_valid(tmp_path: Path) -> None:
    commands = _commands()
    for doc, line, tokens in commands:
        where = f"{doc}:{line}"
        if tokens[0] == "offrl":
            _check_offrl(tokens[1:], where, tmp_path)
        elif tokens[:2] == ["pip", "install"]:
            _check_pip(tokens, where)
        elif tokens[0] == "python" and tokens[1:3] == ["-m", "pytest"]:
            continue
        elif tokens[0] == "python" and tokens[1].startswith("benchmarks/"):
            _check_script(tokens, where)
        else:
            pytest.fail(f"{where}: `{' '.join(tokens)}` is a command this test does not know how to check")


def test_the_quick_start_runs(tmp_path: Path) -> None:
    """README's first command, `offrl run --preset bandit`, at 20 iterations."""
    quick = [t for d, _, t in _commands() if d == "README.md" and t[:2] == ["offrl", "run"]][0]
    assert quick == ["offrl", "run", "--preset", "bandit"]
    proc = run_cli(*quick[1:], "--steps", "20", "--eval-every", "20", "--eval-episodes", "2",
                   "--out", str(tmp_path / "quick"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "quick" / "summary.json").exists()
