"""Entry point of the ``offrl`` command.

Each subcommand is a module ``offrl.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
User errors (:class:`offrl.errors.OfflineRLError`) are printed as one clear
message and exit non-zero, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from offrl.errors import OfflineRLError

#: Subcommand modules, in the order ``offrl --help`` lists them.
COMMANDS: tuple[str, ...] = ("run", "list", "sweep", "report", "data")


def build_parser() -> argparse.ArgumentParser:
    from offrl import __version__

    parser = argparse.ArgumentParser(
        prog="offrl",
        description="Offline RL: train and compare IQL-family critics with interchangeable actors.",
    )
    parser.add_argument("--version", action="version", version=f"offrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"offrl.cli.{name.replace('-', '_')}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def print_error(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {message}", markup=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except OfflineRLError as e:
        print_error(_escape(str(e)))
        return e.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    sys.exit(main())
