"""Entry point of the ``offrl`` command.

Each subcommand is a module ``offrl.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
User errors (:class:`offrl.errors.OfflineRLError`) are printed as one clear
message and exit non-zero, without a traceback. Output piped into a reader
that stops early (``offrl ... | head``) ends the command quietly.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from offrl.cli import terminal
from offrl.errors import OfflineRLError

#: Subcommand modules, in the order ``offrl --help`` lists them.
COMMANDS: tuple[str, ...] = ("run", "eval", "list", "sweep", "report", "data")

#: Exit status after the reader of stdout went away: 128 + SIGPIPE, as for any Unix tool killed by it.
BROKEN_PIPE_EXIT = 141


def build_parser() -> argparse.ArgumentParser:
    from offrl import __version__

    parser = terminal.ArgumentParser(
        prog="offrl",
        description="Offline RL: train and compare IQL-family critics with interchangeable actors.",
    )
    parser.add_argument("--version", action="version", version=f"offrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=terminal.ArgumentParser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"offrl.cli.{name.replace('-', '_')}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, never wrapped inside a command or a path (plain text, no markup)."""
    terminal.print_error(message)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help, --version, usage errors: their text must reach the reader first
            sys.stdout.flush()
            raise
        try:
            if args.command == "list":  # show components of installed / OFFRL_PLUGINS plugins too
                from offrl.plugins import env_plugins, load_plugins

                load_plugins(env_plugins())
            code = int(args._run(args) or 0)
        except OfflineRLError as e:
            print_error(str(e))
            code = e.exit_code
        except KeyboardInterrupt:
            print_error("interrupted")
            code = 130
        sys.stdout.flush()  # a reader that went away shows up here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _detach_stdout()
        return BROKEN_PIPE_EXIT


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again (Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
