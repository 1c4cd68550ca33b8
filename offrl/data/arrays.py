"""Your own data as arrays: the D4RL and OGBench layouts, read from files and cut back into episodes.

Most offline-RL data exists as flat arrays in one of two layouts (what
``offrl data import`` and :func:`offrl.data.from_arrays` accept):

``d4rl``  (D4RL's ``get_dataset()`` / ``qlearning_dataset()``, d3rlpy, CORL)
    ``observations`` [N, O], ``actions`` [N, A], ``rewards`` [N],
    ``terminals`` [N] — true terminal states (no bootstrap past them),
    ``timeouts`` [N] (optional) — episode cut by a time limit (bootstrap),
    ``next_observations`` [N, O] (optional).
    An episode ends at a terminal, a timeout, the end of the arrays (or of a
    file), or — when ``next_observations`` is given — where it differs from the
    next row's observation (an unmarked cut, counted as a truncation). Without
    ``next_observations`` the next state is the next row's observation; after a
    timeout or at the end of the arrays it is unknown, so that last transition
    is dropped (as ``d4rl.qlearning_dataset`` does); after a terminal it is
    never bootstrapped, so the terminal state's own observation stands in.

``ogbench``  (OGBench's ``.npz`` files and ``ogbench.load_dataset``)
    ``observations`` [N, O], ``actions`` [N, A], ``rewards`` [N],
    ``terminals`` [N] — **the end of a trajectory** (OGBench's meaning: not a
    terminal state), ``masks`` [N] (optional; 0 where the state is terminal:
    OGBench's single-task ``masks``), ``valids`` [N] (optional, the compact
    layout) and ``next_observations`` (optional, the regular layout). With
    ``next_observations`` each trajectory ends at its ``terminals`` row; without
    them (OGBench's raw and compact files) a row with ``valids == 0`` — by
    default ``terminals == 1`` — holds the trajectory's final state, whose action
    is not a transition. Episodes end in a truncation; ``masks == 0`` marks
    terminations inside them (episodes go on, as in OGBench).

``auto`` picks ``ogbench`` when ``masks`` or ``valids`` is present, else
``d4rl``. OGBench's goal-conditioned files hold no ``rewards``: relabel them for
a task first (e.g. ``ogbench.make_env_and_datasets(<singletask id>)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from offrl.errors import DatasetError, unknown

LAYOUTS = ("auto", "d4rl", "ogbench")

#: What the error messages say the valid layouts are.
LAYOUTS_HELP = (
    "Valid layouts: d4rl — observations [N, O], actions [N, A], rewards [N], terminals [N] (true terminal "
    "states), optional timeouts [N] (time-limit cuts) and next_observations [N, O]; ogbench — observations [N, O], "
    "actions [N, A], rewards [N], terminals [N] (1 at the end of each trajectory), optional masks [N] (0 at terminal "
    "states), valids [N] and next_observations [N, O]. Files: one .npz (or .hdf5/.h5), or a folder of .npy files "
    "named after the keys, or a folder of .npz files (concatenated in name order, each ending its episodes)."
)

FLAG_KEYS = ("terminals", "timeouts", "masks", "valids")
KNOWN_KEYS = ("observations", "actions", "rewards", "next_observations", *FLAG_KEYS)


@dataclass
class Episode:
    """One recovered episode: ``observations`` has T + 1 rows."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


@dataclass
class Recovered:
    """The episodes cut from flat arrays, and what the cutting did (shown by ``offrl data import``)."""

    layout: str
    episodes: list[Episode]
    rows: int
    dropped: int = 0  # transitions without a next state (d4rl without next_observations), or trailing rows
    unmarked_cuts: int = 0  # next_observations[t] != observations[t + 1] with no flag: cut, as a truncation
    placeholder_next: int = 0  # terminal transitions whose next observation is the terminal state's own
    ignored_keys: list[str] = field(default_factory=list)

    @property
    def transitions(self) -> int:
        return sum(len(e.rewards) for e in self.episodes)

    @property
    def terminations(self) -> int:
        return int(sum(e.terminations.sum() for e in self.episodes))

    @property
    def truncations(self) -> int:
        return int(sum(e.truncations.sum() for e in self.episodes))

    def summary(self) -> dict[str, Any]:
        return {"layout": self.layout, "rows": self.rows, "episodes": len(self.episodes),
                "transitions": self.transitions, "terminations": self.terminations,
                "truncations": self.truncations, "dropped_transitions": self.dropped,
                "unmarked_cuts": self.unmarked_cuts, "placeholder_next_observations": self.placeholder_next,
                "ignored_keys": self.ignored_keys}


def _bad(source: str, what: str) -> DatasetError:
    return DatasetError(f"{source}: {what}. {LAYOUTS_HELP}")


def read_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(arrays by key, rows that end a file or None) from a .npz/.hdf5 file or a folder (see LAYOUTS_HELP)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"'{p}' does not exist. {LAYOUTS_HELP}")
    if p.is_dir():
        npy = sorted(p.glob("*.npy"))
        npz = sorted(p.glob("*.npz"))
        if npy and not npz:
            return {f.stem: _load_npy(f) for f in npy}, None
        if npz and not npy:
            parts = [_load_npz(f) for f in npz]
            keys = set(parts[0])
            for f, part in zip(npz[1:], parts[1:]):
                if set(part) != keys:
                    raise _bad(str(f), f"it holds keys {sorted(part)}, but {npz[0].name} holds {sorted(keys)}")
            try:
                arrays = {k: np.concatenate([part[k] for part in parts]) for k in keys}
            except ValueError as e:
                raise _bad(str(p), f"its files' arrays do not concatenate ({e})") from None
            lengths = [len(next(iter(part.values()))) for part in parts]
            return arrays, np.cumsum(lengths) - 1
        raise _bad(str(p), "this folder holds " + ("both .npy and .npz files" if npy else "no .npy or .npz file"))
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p), None
    if suffix in (".hdf5", ".h5"):
        return _load_hdf5(p), None
    if suffix == ".npy":
        raise _bad(str(p), "a single .npy file holds one array; put one .npy per key in a folder, or use .npz")
    raise _bad(str(p), f"'{suffix or p.name}' is not a format offrl reads")


def _load_npy(f: Path) -> np.ndarray:
    try:
        return np.load(f, allow_pickle=False)
    except Exception as e:
        raise _bad(str(f), f"numpy cannot read it ({type(e).__name__}: {e})") from None


def _load_npz(f: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise _bad(str(f), f"numpy cannot read it as .npz ({type(e).__name__}: {e})") from None


def _load_hdf5(f: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(f, "r") as h:
            return {k: h[k][()] for k in h.keys() if isinstance(h[k], h5py.Dataset)}
    except Exception as e:
        raise _bad(str(f), f"h5py cannot read it ({type(e).__name__}: {e})") from None


def resolve_layout(arrays: Mapping[str, Any], layout: str, source: str) -> str:
    """``auto`` -> ``ogbench`` when masks/valids are present, else ``d4rl``; explicit layouts are checked."""
    if layout not in LAYOUTS:
        raise unknown("data layout (--layout)", layout, LAYOUTS)
    if layout != "auto":
        return layout
    og = [k for k in ("masks", "valids") if k in arrays]
    if og and "timeouts" in arrays:
        raise _bad(source, f"it holds both timeouts (D4RL) and {', '.join(og)} (OGBench), so what 'terminals' means "
                           "is ambiguous: give the layout (--layout d4rl or --layout ogbench)")
    return "ogbench" if og else "d4rl"


def _flag(arrays: Mapping[str, Any], key: str, n: int, source: str) -> np.ndarray | None:
    if key not in arrays:
        return None
    raw = np.asarray(arrays[key])
    if raw.shape not in ((n,), (n, 1)):
        raise _bad(source, f"'{key}' has shape {raw.shape}, expected ({n},) like rewards")
    if raw.dtype != bool:
        ok = np.isin(raw, (0, 1)) if np.issubdtype(raw.dtype, np.number) else np.zeros(raw.shape, bool)
        if not ok.all():
            first = int(np.flatnonzero(~ok.reshape(-1))[0])
            raise _bad(source, f"'{key}' holds {raw.reshape(-1)[first].item()!r} at row {first}; flags must be 0/1 or booleans")
    return raw.astype(bool).reshape(n)


def _matrix(arrays: Mapping[str, Any], key: str, source: str, n: int | None = None) -> np.ndarray:
    if key not in arrays:
        raise _bad(source, f"the key '{key}' is missing (keys present: {', '.join(sorted(arrays)) or 'none'})")
    x = np.asarray(arrays[key])
    if not np.issubdtype(x.dtype, np.number) or x.dtype.kind == "c":
        raise _bad(source, f"'{key}' holds {x.dtype} values, not real numbers")
    if x.ndim != 2 or x.shape[1] == 0:
        raise _bad(source, f"'{key}' has shape {x.shape}, expected [N, size] (one flat vector per row)")
    if n is not None and x.shape[0] != n:
        raise _bad(source, f"'{key}' has {x.shape[0]} rows but observations have {n}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        raise _bad(source, f"'{key}' holds {int(bad.sum())} NaN/inf values (first at row {int(np.nonzero(bad)[0][0])})")
    return x


def check_arrays(arrays: Mapping[str, Any], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observations, actions, rewards) checked: 2-D, same row count, finite; rewards [N] or [N, 1]."""
    obs = _matrix(arrays, "observations", source)
    n = obs.shape[0]
    if n == 0:
        raise _bad(source, "'observations' has no rows")
    actions = _matrix(arrays, "actions", source, n)
    if "rewards" not in arrays:
        hint = (" OGBench's goal-conditioned files hold none: relabel them for a task first (e.g. "
                "ogbench.make_env_and_datasets('<env>-singletask-<task>-v0') gives rewards and masks)")
        raise _bad(source, f"the key 'rewards' is missing (keys present: {', '.join(sorted(arrays))}).{hint}")
    rewards = np.asarray(arrays["rewards"])
    if rewards.shape not in ((n,), (n, 1)) or not np.issubdtype(rewards.dtype, np.number):
        raise _bad(source, f"'rewards' has shape {rewards.shape} ({rewards.dtype}), expected ({n},) numbers")
    rewards = rewards.astype(np.float64).reshape(n)
    if not np.isfinite(rewards).all():
        raise _bad(source, f"'rewards' holds NaN/inf (first at row {int(np.flatnonzero(~np.isfinite(rewards))[0])})")
    if "terminals" not in arrays:
        raise _bad(source, "the key 'terminals' is missing (d4rl: true terminal states; ogbench: trajectory ends; "
                           "give an all-zero array when there are none)")
    return obs, actions, rewards


def recover_episodes(arrays: Mapping[str, Any], layout: str = "auto", source: str = "the arrays",
                     file_ends: np.ndarray | None = None) -> Recovered:
    """Episodes of ``arrays`` in ``layout`` (see the module docstring); every problem is one DatasetError."""
    layout = resolve_layout(arrays, layout, source)
    obs, actions, rewards = check_arrays(arrays, source)
    n = obs.shape[0]
    nxt = _matrix(arrays, "next_observations", source, n) if "next_observations" in arrays else None
    if nxt is not None and nxt.shape[1] != obs.shape[1]:
        raise _bad(source, f"'next_observations' has shape {nxt.shape} but observations have {obs.shape}")
    flags = {k: _flag(arrays, k, n, source) for k in FLAG_KEYS}
    wrong = [k for k in (("masks", "valids") if layout == "d4rl" else ("timeouts",)) if flags[k] is not None]
    if wrong:
        raise _bad(source, f"{', '.join(wrong)} belong{'s' if len(wrong) == 1 else ''} to the "
                           f"{'ogbench' if layout == 'd4rl' else 'd4rl'} layout, not {layout}")
    cut = np.zeros(n, bool)
    cut[-1] = True
    if file_ends is not None:
        cut[np.asarray(file_ends, np.int64)] = True
    ignored = sorted(k for k in arrays if k not in KNOWN_KEYS)
    if layout == "d4rl":
        out = _d4rl(obs, actions, rewards, nxt, flags["terminals"], flags["timeouts"], cut)
    else:
        out = _ogbench(obs, actions, rewards, nxt, flags["terminals"], flags["masks"], flags["valids"], cut, source)
    out.ignored_keys = ignored
    if not out.episodes:
        raise _bad(source, f"no transition is left after cutting the {n} rows into episodes ({layout} layout)")
    return out


def _segments(ends: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) rows of each run ending at a True of ``ends`` (the last row always ends one)."""
    stops = np.flatnonzero(ends)
    starts = np.concatenate([[0], stops[:-1] + 1])
    return list(zip(starts.tolist(), stops.tolist()))


def _d4rl(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, nxt: np.ndarray | None,
          terminals: np.ndarray, timeouts: np.ndarray | None, cut: np.ndarray) -> Recovered:
    n = len(obs)
    timeouts = np.zeros(n, bool) if timeouts is None else timeouts
    unmarked = np.zeros(n, bool)
    if nxt is not None:
        scale = np.maximum(1.0, np.abs(obs[1:]))
        unmarked[:-1] = np.any(np.abs(nxt[:-1] - obs[1:]) > 1e-5 * scale, axis=1) & ~(terminals | timeouts | cut)[:-1]
    ends = terminals | timeouts | cut | unmarked
    out = Recovered("d4rl", [], n, unmarked_cuts=int(unmarked.sum()))
    for s, e in _segments(ends):
        term = bool(terminals[e])
        if nxt is not None:
            o = np.concatenate([obs[s:e + 1], nxt[e:e + 1]])
            last = e + 1
        elif term:  # the next state of a terminal transition is never bootstrapped
            o = np.concatenate([obs[s:e + 1], obs[e:e + 1]])
            last = e + 1
            out.placeholder_next += 1
        else:  # cut by a timeout or by the data's end: the last transition has no next state
            o = obs[s:e + 1]
            last = e
            out.dropped += 1
        T = last - s
        if T == 0:
            continue
        done = np.zeros(T, bool)
        done[-1] = term and last == e + 1
        out.episodes.append(Episode(o, actions[s:last], rewards[s:last], done, ~done & (np.arange(T) == T - 1)))
    return out


def _ogbench(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, nxt: np.ndarray | None,
             terminals: np.ndarray, masks: np.ndarray | None, valids: np.ndarray | None, cut: np.ndarray,
             source: str) -> Recovered:
    n = len(obs)
    terminal_state = np.zeros(n, bool) if masks is None else ~masks  # masks: 1 − (task complete)
    out = Recovered("ogbench", [], n)
    if nxt is not None:  # regular layout: each trajectory's last transition carries terminals = 1
        if valids is not None and not valids.all():
            raise _bad(source, "with next_observations (OGBench's regular layout) every row is a transition, but "
                               "'valids' marks some rows invalid; drop next_observations or valids")
        for s, e in _segments(terminals | cut):
            o = np.concatenate([obs[s:e + 1], nxt[e:e + 1]])
            done = terminal_state[s:e + 1].copy()
            trunc = np.zeros(e + 1 - s, bool)
            trunc[-1] = not done[-1]
            out.episodes.append(Episode(o, actions[s:e + 1], rewards[s:e + 1], done, trunc))
        return out
    final = ~valids if valids is not None else terminals  # rows holding a trajectory's final state only
    for s, e in _segments(final | cut):
        if not final[e]:  # rows after the last final state of the data (or of a file): no next state
            out.dropped += e + 1 - s
            continue
        T = e - s
        if T == 0:
            continue
        done = terminal_state[s:e].copy()
        trunc = np.zeros(T, bool)
        trunc[-1] = not done[-1]
        out.episodes.append(Episode(obs[s:e + 1], actions[s:e], rewards[s:e], done, trunc))
    return out
