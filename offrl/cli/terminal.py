"""How every ``offrl`` command writes text: one console setup, one help format, one error format.

Output goes to a terminal, a pipe, a file or a CI log. The rules that keep it
readable and copy-pasteable everywhere:

- on a terminal, tables fit its width and lines are *soft-wrapped* (the
  terminal folds a long line; copying it gives the original line), so an
  error or a command is never broken inside a word, a path or a command;
- anywhere else (a pipe, ``> file``, CI) there is no width limit: tables keep
  their columns and every line is written whole, so ``grep`` and copy-paste
  work on logs;
- help is plain text: paragraphs re-flowed to the terminal, indented lines
  (examples) kept exactly as written, and ``(default: X)`` only on options
  that have a default.
"""
from __future__ import annotations

import argparse
import errno
import functools
import re
import sys
import textwrap
from typing import IO, Any

#: Width used when output is not a terminal: wide enough that no table is squeezed and no line is cut.
LOG_WIDTH = 10_000


def console(stderr: bool = False, file: IO[str] | None = None) -> Any:
    """A rich Console following the module's rules (imported lazily: ``offrl --help`` must stay fast)."""
    cls = _console_class()
    probe = cls(stderr=stderr, file=file)
    width = None if probe.is_terminal else LOG_WIDTH
    return cls(stderr=stderr, file=file, highlight=False, soft_wrap=True, width=width)


@functools.cache
def _console_class() -> type:
    from rich.console import Console

    class OffrlConsole(Console):
        """A Console that reports a vanished reader (``offrl ... | head``) as BrokenPipeError.

        rich's own handling exits with status 1 from inside ``print``; raising lets ``offrl``'s
        entry point end every command the same quiet way (see :func:`offrl.cli.main.main`).
        """

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "the reader of this output has gone away")

    return OffrlConsole


def print_error(message: str, file: IO[str] | None = None) -> None:
    """``error: MESSAGE`` on stderr, as one unbroken line (plain text: no rich markup is interpreted)."""
    stream = file if file is not None else sys.stderr
    out = console(stderr=file is None, file=file)
    if out.is_terminal:
        from rich.text import Text

        out.print(Text.assemble(("error:", "bold red"), " ", message))
    else:
        stream.write(f"error: {message}\n")
        stream.flush()


def print_warning(message: str, file: IO[str] | None = None) -> None:
    """``warning: MESSAGE`` on stderr: something was continued, not refused, and the user should know why."""
    stream = file if file is not None else sys.stderr
    out = console(stderr=file is None, file=file)
    if out.is_terminal:
        from rich.text import Text

        out.print(Text.assemble(("warning:", "bold yellow"), " ", message))
    else:
        stream.write(f"warning: {message}\n")
        stream.flush()


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "cell")`` -> "1 cell"; ``plural(3, "cell")`` -> "3 cells" (``many`` for irregular words)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


class HelpFormatter(argparse.HelpFormatter):
    """Plain-text help for every offrl command.

    Paragraphs (separated by blank lines) are re-flowed to the terminal width;
    a paragraph whose lines are indented (examples, command lines) is printed
    exactly as written. ``(default: X)`` is added only when an option has a
    real default and its help does not already state one.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = re.split(r"\n[ \t]*\n", textwrap.dedent(text).strip("\n"))
        out = []
        for block in blocks:
            lines = block.splitlines()
            if any(line[:1] in (" ", "\t") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)  # flags: their default is "off"
            or default == []  # repeatable options start empty
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose help always uses :class:`HelpFormatter`, for every (sub)command.

    Sub-parsers are built with this class too (``add_subparsers`` uses the parent's class), so a
    command module cannot end up with a different help style by accident.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)


__all__ = ["LOG_WIDTH", "ArgumentParser", "HelpFormatter", "console", "plural", "print_error", "print_warning"]
