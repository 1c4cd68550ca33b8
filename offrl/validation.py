"""The values a configuration may hold, checked when the configuration is built.

A config dataclass declares the valid range of each numeric field next to the
fields, in a ``RANGES`` class attribute (``{"tau": OPEN_UNIT, "lr": POSITIVE}``,
inherited and extended by subclasses); its ``__post_init__`` calls
:func:`check_config`, which checks every field at once:

- NaN is never a valid value; an infinity only where the field's range says so
  (``critic.clip = inf``: no clip);
- a number outside its range is refused with the range in the message
  (``actor.beta must be >= 0, got -1.0``);
- integers are at most 2^63 − 1 (what torch and numpy can hold) unless their
  range says less; list fields (``hidden_dims``) are checked element by element.

Cross-field rules (``log_std_min < log_std_max``) use :func:`check_order`.
So a value that would train silently into garbage, or fail an hour later deep
inside torch, is one :class:`~offrl.errors.ConfigError` before anything runs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from offrl.errors import ConfigError

#: Largest integer a config may hold when its range sets no smaller bound (int64).
MAX_INT = 2**63 - 1
#: Seeds are integers in [0, MAX_SEED] (2^32 − 1: what every generator offrl seeds accepts as is).
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Range:
    """An interval of valid values; ``inf=True`` also admits +inf ("no limit"), ``neg_inf=True`` −inf
    (no lower limit: ``critic.clip_diff_min = -inf``)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    inf: bool = False
    label: str = ""  # how messages name the range, when not as an interval ("positive")
    neg_inf: bool = False

    def contains(self, v: float) -> bool:
        if math.isnan(v):
            return False
        if math.isinf(v):
            return (v > 0 and self.inf) or (v < 0 and self.neg_inf)
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def text(self) -> str:
        """The range as the messages say it: ``in (0, 1)``, ``>= 0``, ``positive``."""
        if self.label:
            body = self.label
        elif math.isinf(self.lo) and math.isinf(self.hi):
            body = "a finite number"
        elif math.isinf(self.hi):
            body = f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}"
        elif math.isinf(self.lo):
            body = f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}"
        else:
            body = f"in {'(' if self.lo_open else '['}{_fmt(self.lo)}, {_fmt(self.hi)}{')' if self.hi_open else ']'}"
        ends = [e for e, on in (("-inf", self.neg_inf), ("inf", self.inf)) if on]
        return body + (f" (or {' or '.join(ends)})" if ends else "")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else str(x)


POSITIVE = Range(0.0, lo_open=True, label="positive")  # learning rates, temperatures, scales
NON_NEGATIVE = Range(0.0)  # weights of optional terms (0 = off)
UNIT = Range(0.0, 1.0)  # probabilities, discounts
OPEN_UNIT = Range(0.0, 1.0, lo_open=True, hi_open=True)  # expectiles and quantiles
RATE = Range(0.0, 1.0, lo_open=True)  # Polyak and EMA rates: (0, 1]
DROPOUT = Range(0.0, 1.0, hi_open=True)  # [0, 1)
COUNT = Range(1, label="positive")  # sizes, counts, cadences (integer fields)


def check_config(cfg: Any, prefix: str, ranges: Mapping[str, Range] | None = None) -> None:
    """Check every numeric field of the dataclass ``cfg`` (keys named ``prefix.FIELD`` in messages).

    ``ranges`` defaults to the class's ``RANGES``. Raises :class:`ConfigError` for the first bad value.
    """
    ranges = getattr(type(cfg), "RANGES", {}) if ranges is None else ranges
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        check_value(value, f"{prefix}.{f.name}", ranges.get(f.name))


def check_value(value: Any, key: str, rng: Range | None) -> None:
    """``value`` (a number, or a tuple of numbers) within ``rng``; NaN/inf/huge integers refused everywhere."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            continue
        shown = list(value) if isinstance(value, (tuple, list)) else value
        if isinstance(x, float) and math.isnan(x):
            raise ConfigError(f"{key} is NaN; it must be {rng.text() if rng else 'a finite number'}.")
        if isinstance(x, float) and math.isinf(x) and not (rng is not None and rng.contains(x)):
            raise ConfigError(f"{key} must be {rng.text() if rng else 'a finite number'}, got {shown!r}.")
        if rng is not None and not rng.contains(x):
            raise ConfigError(f"{key} must be {rng.text()}, got {shown!r}.")
        if isinstance(x, int) and abs(x) > MAX_INT:
            raise ConfigError(f"{key}={shown!r} is too large: integers in a config are at most 2^63 - 1.")


def check_order(cfg: Any, prefix: str, low: str, high: str) -> None:
    """``cfg.low < cfg.high`` (a range given as two keys must not be empty or inverted)."""
    lo, hi = getattr(cfg, low), getattr(cfg, high)
    if not lo < hi:
        raise ConfigError(f"{prefix}.{low} ({lo}) must be less than {prefix}.{high} ({hi}).")


__all__ = ["COUNT", "DROPOUT", "MAX_INT", "MAX_SEED", "NON_NEGATIVE", "OPEN_UNIT", "POSITIVE",
           "RATE", "Range", "UNIT", "check_config", "check_order", "check_value"]
