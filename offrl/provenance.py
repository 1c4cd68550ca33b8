"""``provenance.json``: where a run came from, so a result can be traced and reproduced.

A run directory's ``config.json`` says *what* a run computes; ``provenance.json``
says *how and where* it was made: offrl's version and git commit (when offrl
runs from a git checkout), the versions of Python and the packages that decide
the numbers, the command line, the host and the device. It is written
atomically when the run starts and a short entry is appended on each resume.
It is not part of the configuration hash (:func:`offrl.config.fingerprint`):
two runs of one config on two machines are the same experiment.

Torch-free at import; package versions are read from their installed metadata,
so recording them imports nothing heavy.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from offrl import rundir

PROVENANCE = "provenance.json"

#: Distributions whose versions are recorded (``None`` when not installed).
PACKAGES = ("torch", "numpy", "gymnasium", "minari", "mujoco", "ogbench", "rich", "pandas")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def offrl_version() -> str:
    import offrl

    return getattr(offrl, "__version__", None) or _version("offrl") or "unknown"


def git_commit(source: Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree has uncommitted changes) of the git checkout holding offrl's source;
    ``None`` when offrl is installed from a wheel or git is unavailable."""
    root = (source or Path(__file__).resolve().parent).parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None,
            "path": str(root)}


def _cuda(device: str) -> dict[str, Any]:
    """CUDA's version and the GPU's name, from torch if it is already imported (a run has imported it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"cuda": None, "gpu": None}
    gpu = None
    if str(device).startswith("cuda"):
        try:
            gpu = torch.cuda.get_device_name(torch.device(device))
        except Exception:  # noqa: BLE001 - provenance never stops a run
            gpu = None
    return {"cuda": getattr(torch.version, "cuda", None), "gpu": gpu}


def collect(device: str = "cpu", argv: list[str] | None = None) -> dict[str, Any]:
    """Everything ``provenance.json`` records about this process."""
    return {
        "offrl_version": offrl_version(),
        "git": git_commit(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        **_cuda(device),
        "device": str(device),
        "command": list(sys.argv if argv is None else argv),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def record(run_dir: Path, device: str = "cpu", resumed: bool = False) -> None:
    """Write ``run_dir/provenance.json`` (a new run) or append this process to its ``resumes`` (a resume).

    A write error is not fatal: provenance describes a run, it never stops one.
    """
    path = Path(run_dir) / PROVENANCE
    info = collect(device)
    try:
        if resumed:
            old = rundir.read_json(path) if not path.is_symlink() else None
            data = old if old is not None else {"note": "written on resume; the first start was not recorded"}
            entries = data.get("resumes") if isinstance(data.get("resumes"), list) else []
            data["resumes"] = [*entries, info]
        else:
            data = info
        rundir.write_json(path, data)
    except OSError:
        pass


def read(run_dir: Path) -> dict[str, Any] | None:
    """The run's provenance (``None``: a run from before provenance was recorded, or a damaged file)."""
    path = Path(run_dir) / PROVENANCE
    return None if path.is_symlink() else rundir.read_json(path)
