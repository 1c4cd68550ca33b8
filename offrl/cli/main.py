"""Entry point of the ``offrl`` command.

Each subcommand is a module ``offrl.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
User errors (:class:`offrl.errors.OfflineRLError`) are printed as one clear
message and exit non-zero, without a traceback. Output piped into a reader
that stops early (``offrl ... | head``) ends the command quietly.

Nothing a user can do with files and flags prints a traceback: an ``OSError``
that no command turned into its own message (a full disk, a read-only or
vanished folder) is one message naming the file and the cause, and an
unexpected exception is one message saying it is a bug in offrl
(``OFFRL_TRACEBACK=1`` shows the traceback).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from offrl.cli import terminal
from offrl.errors import OfflineRLError

#: Subcommand modules, in the order ``offrl --help`` lists them.
COMMANDS: tuple[str, ...] = ("run", "finetune", "eval", "list", "sweep", "report", "data", "export", "ope")

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
        except BrokenPipeError:
            raise
        except OSError as e:
            if os.environ.get("OFFRL_TRACEBACK"):
                raise
            print_error(describe_os_error(e))
            code = 2
        except MemoryError:
            print_error("out of memory: the sizes asked for (batch sizes, network widths, seeds, episodes) do not fit "
                        "in this machine's memory; lower them.")
            code = 2
        except Exception as e:
            if os.environ.get("OFFRL_TRACEBACK"):
                raise
            detail = str(e).splitlines()[0] if str(e) else ""
            print_error(f"internal error ({type(e).__name__}{': ' + detail if detail else ''}). This is a bug in "
                        "offrl, not in what you typed: rerun with OFFRL_TRACEBACK=1 for the traceback and report it.")
            code = 1
        sys.stdout.flush()  # a reader that went away shows up here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _detach_stdout()
        return BROKEN_PIPE_EXIT


def describe_os_error(e: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and what to do."""
    where = f" ({e.filename})" if e.filename else ""
    what = e.strerror or str(e) or type(e).__name__
    hint = {
        errno.ENOSPC: "free some space and rerun",
        errno.EDQUOT: "free some space and rerun",
        errno.EACCES: "make it writable (or readable) and rerun",
        errno.EPERM: "make it writable (or readable) and rerun",
        errno.EROFS: "the file system is read-only: use a writable folder",
        errno.EIO: "the disk reported an input/output error",
    }.get(e.errno or -1, "check the path and rerun")
    return (f"{what}{where}: {hint}. offrl writes its files atomically, so what they held before is intact "
            "(a run continues with `offrl run --resume`).")


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again (Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
