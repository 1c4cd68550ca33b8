"""User-facing errors.

Every error a user can cause (bad names, bad values, missing data, unusable
devices) is an :class:`OfflineRLError`. The CLI prints its message in one
line-block and exits non-zero without a traceback; Python users can catch it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class OfflineRLError(Exception):
    """An error caused by the user's input or environment, with a clear message."""

    exit_code: int = 2


class UnknownNameError(OfflineRLError, KeyError):
    """A name (component, key, dataset) that is not among the valid choices."""

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return str(self.args[0]) if self.args else ""


class DatasetError(OfflineRLError):
    """A dataset is missing, malformed, or does not match its environment."""


class ConfigError(OfflineRLError):
    """A configuration value is invalid or inconsistent."""


class RunDirError(OfflineRLError):
    """A run directory cannot be written, or cannot be resumed."""


class DeviceError(OfflineRLError):
    """The requested device is not available."""


class MissingExtraError(OfflineRLError):
    """An optional dependency (a pip extra of offrl, e.g. ``offrl[ray]``) is not installed."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest valid choice, or ""."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """Build the standard error for an unknown ``kind`` called ``name``."""
    choices = sorted(choices)
    listed = ", ".join(choices) if choices else "(none registered)"
    return UnknownNameError(
        f"Unknown {kind} '{name}'.{suggest(name, choices)} Valid choices: {listed}."
    )
