"""``offrl list``: registered critics, actors and presets, and their hyperparameters."""
from __future__ import annotations

import argparse
from typing import Any

from offrl.errors import unknown


def _families() -> dict[str, Any]:
    from offrl.actors import ACTORS
    from offrl.critics import CRITICS

    fams: dict[str, Any] = {"critic": CRITICS, "actor": ACTORS}
    try:
        from offrl.presets import PRESETS

        fams["preset"] = PRESETS
    except ImportError:
        pass
    return fams


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list critics, actors and presets, or one component's hyperparameters",
                       description="`offrl list` shows everything; `offrl list critic` one family; "
                       "`offrl list critic expectile` its hyperparameters with defaults and help.")
    p.add_argument("family", nargs="?", help="critic | actor | preset")
    p.add_argument("name", nargs="?", help="a component name")
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    fams = _families()
    if args.family is None:
        for fam in fams:
            _print_family(console, fam, fams[fam])
        return 0
    family = args.family.rstrip("s") if args.family not in fams else args.family
    if family not in fams:
        raise unknown("component family", args.family, fams)
    registry = fams[family]
    if args.name is None:
        _print_family(console, family, registry)
        return 0
    entry = registry.entry(args.name)
    if family == "preset":
        console.print(entry.obj.describe())
        return 0
    from offrl.registry import config_fields

    table = Table(title=f"{family} '{entry.name}': {entry.description}")
    table.add_column("key")
    table.add_column("default")
    table.add_column("help")
    for name, default, help_ in config_fields(entry.obj.Config):
        table.add_row(f"{family}.{name}", repr(default), help_)
    console.print(table)
    return 0


def _print_family(console: Any, family: str, registry: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{family}s")
    table.add_column("name", style="bold")
    table.add_column("description")
    for entry in registry:
        table.add_row(entry.name, entry.description)
    console.print(table)
