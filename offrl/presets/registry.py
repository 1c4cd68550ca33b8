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
    #: A substring every dataset id this preset is made for contains (e.g. "antmaze"); a run of the preset on
    #: another dataset is refused (offrl.config), so it cannot silently train on the default dataset.
    dataset_family: str = ""
    #: Where such datasets come from (shown by ``offrl list`` and in the refusal).
    data_note: str = ""

    def layer(self) -> dict[str, Any]:
        out = copy.deepcopy(self.values)
        out["preset"] = self.name
        return out

    def describe(self) -> str:
        body = json.dumps(self.values, indent=2)
        notes = f"\nNotes: {self.notes}" if self.notes else ""
        data = f"\nData: {self.dataset_family} datasets only. {self.data_note}" if self.dataset_family else ""
        return f"[bold]{self.name}[/]: {self.description}\nSource: {self.source}{data}{notes}\n{body}"


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    data = f" [{preset.dataset_family} data: {preset.data_note}]" if preset.dataset_family else ""
    PRESETS.add(preset.name, preset, f"{preset.description} ({preset.source}){data}")
    return preset
