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
    """Name -> component, with helpful errors on unknown names.

    A name belongs to the first object registered under it: registering another object under a taken name
    (a plugin reusing ``expectile``) is an error, so a plugin can never silently replace a built-in. Registering
    the same class again (a module imported twice) is allowed. ``check(kind, name, obj)`` rejects malformed
    objects (critics and actors: a class with a ``Config`` dataclass) at registration, not at first use.
    """

    def __init__(self, kind: str, check: Callable[[str, str, Any], None] | None = None) -> None:
        self.kind = kind
        self.check = check
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (see the class docstring for taken names)."""

        def deco(obj: T) -> T:
            self.add(name, obj, description)
            return obj

        return deco

    def add(self, name: str, obj: T, description: str = "") -> None:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"invalid {self.kind} name {name!r}: must be non-empty, no spaces")
        if self.check is not None:
            self.check(self.kind, name, obj)
        old = self._entries.get(name)
        if old is not None and old.obj is not obj and _origin(old.obj) != _origin(obj):
            raise ValueError(f"a {self.kind} named '{name}' is already registered ({_origin(old.obj)}); "
                             f"register {_origin(obj)} under another name")
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


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def check_component(kind: str, name: str, obj: Any) -> None:
    """A critic or actor is a class with a ``Config`` dataclass (docs/extending.md)."""
    if not isinstance(obj, type):
        raise ValueError(f"{kind} '{name}' must be a class, got {obj!r}")
    config = getattr(obj, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ValueError(f"{kind} '{name}' ({_origin(obj)}) needs a Config attribute that is a dataclass of its "
                         "hyperparameters (see docs/extending.md)")


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
