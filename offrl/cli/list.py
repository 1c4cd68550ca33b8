"""``offrl list``: registered critics, actors and presets, their hyperparameters, and the run settings.

Components (critic, actor, preset) come from their registries. The run settings
(``trainer.*``, ``data.*``) come from the config dataclasses of
:class:`offrl.config.RunConfig`, read generically, so a key added to
``TrainerConfig`` or ``DataConfig`` is listed without an edit here.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from offrl.cli.terminal import console as make_console
from offrl.errors import unknown

DESCRIPTION = (
    "offrl list shows every critic, actor and preset; offrl list critic shows one family; "
    "offrl list critic expectile shows a component's hyperparameters with defaults and help. "
    "offrl list trainer and offrl list data show the run settings (trainer.*, data.*) the same way."
)


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


def settings_sections() -> dict[str, type]:
    """Config section name -> its dataclass, for every section of RunConfig that is a plain dataclass."""
    from offrl.config import RunConfig

    hints = typing.get_type_hints(RunConfig)
    return {name: typ for name, typ in hints.items() if isinstance(typ, type) and dataclasses.is_dataclass(typ)}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list critics, actors and presets, a component's hyperparameters, "
                       "or the trainer/data settings", description=DESCRIPTION)
    p.add_argument("family", nargs="?", help="critic | actor | preset | trainer | data")
    p.add_argument("name", nargs="?", help="a component name (or one trainer/data key)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, to list its critics/actors too (repeatable; as for offrl run)")
    return p


def run(args: argparse.Namespace) -> int:
    if getattr(args, "plugins", None):
        from offrl.plugins import load_plugins

        load_plugins(args.plugins)
    console = make_console()
    fams = _families()
    sections = settings_sections()
    if args.family is None:
        for fam in fams:
            _print_family(console, fam, fams[fam])
        console.print("settings: " + ", ".join(f"{s}.* (offrl list {s})" for s in sections), markup=False)
        return 0
    family = args.family if args.family in fams or args.family in sections else args.family.rstrip("s")
    if family in sections:
        _print_settings(console, family, sections[family], args.name)
        return 0
    if family not in fams:
        raise unknown("component family or settings section", args.family, [*fams, *sections])
    registry = fams[family]
    if args.name is None:
        _print_family(console, family, registry)
        return 0
    entry = registry.entry(args.name)
    if family == "preset":
        console.print(entry.obj.describe())
        return 0
    from offrl.registry import config_fields

    console.print(_key_table(f"{family} '{entry.name}': {entry.description}", family,
                             config_fields(entry.obj.Config)))
    return 0


def _print_settings(console: Any, section: str, cls: type, key: str | None) -> None:
    """Every ``SECTION.KEY`` with its default and help (only ``key`` when given)."""
    from offrl.registry import config_fields

    rows = config_fields(cls)
    if key is not None:
        names = [name for name, _, _ in rows]
        if key not in names:
            raise unknown(f"{section} setting ({section}.KEY)", key, names)
        rows = [r for r in rows if r[0] == key]
    doc = (cls.__doc__ or "").strip().splitlines()
    title = f"{section}.* settings" + (f": {doc[0]}" if doc else "")
    console.print(_key_table(title, section, rows))


def _key_table(title: str, prefix: str, rows: list[tuple[str, Any, str]]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("help")
    for name, default, help_ in rows:
        table.add_row(escape(f"{prefix}.{name}"), escape(repr(default)), escape(help_))
    return table


def _print_family(console: Any, family: str, registry: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{family}s")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description")
    for entry in registry:
        table.add_row(escape(entry.name), escape(entry.description))
    console.print(table)
