"""One registry mechanism for every component family (critics, actors, presets, datasets).

A component is a class with a ``Config`` dataclass attribute whose fields are
its hyperparameters (documented defaults, a docstring per field via
``field(metadata={"help": ...})``). Registering needs no edit to offrl::

    @offrl.critics.register("my-critic", "one-line description")
    class MyCritic(offrl.critics.IQLCritic):
        Config = MyConfig
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from offrl.errors import unknown

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: its name, the registered object and a one-line description."""

    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    """Name -> component, with helpful errors on unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; re-registering replaces it."""

        def deco(obj: T) -> T:
            self.add(name, obj, description)
            return obj

        return deco

    def add(self, name: str, obj: T, description: str = "") -> None:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"invalid {self.kind} name {name!r}: must be non-empty, no spaces")
        self._entries[name] = Entry(name, obj, description or _first_line(obj))

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown(self.kind, name, self._entries) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def config_fields(config_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) for each field of a component config dataclass."""
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        out.append((f.name, default, f.metadata.get("help", "")))
    return out
