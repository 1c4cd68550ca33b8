"""The preset registry."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from offrl.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A named config layer with its source (paper + section/table) and known deviations."""

    name: str
    description: str
    source: str
    values: dict[str, dict[str, Any]]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def layer(self) -> dict[str, Any]:
        out = copy.deepcopy(self.values)
        out["preset"] = self.name
        return out

    def describe(self) -> str:
        body = json.dumps(self.values, indent=2)
        notes = f"\nNotes: {self.notes}" if self.notes else ""
        return f"[bold]{self.name}[/]: {self.description}\nSource: {self.source}{notes}\n{body}"


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    PRESETS.add(preset.name, preset, f"{preset.description} ({preset.source})")
    return preset
