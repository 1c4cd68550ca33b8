"""Temporary files and directories owned by one process, removed once that process is dead.

Writers build datasets beside the store and rename them into place. A writer
that is killed (SIGKILL, out of memory, a closed laptop) leaves its temporary
directory behind -- tens or hundreds of MB each. Every temporary name therefore
carries its owner, ``.offrl-<kind>-<host>-<pid>-<random>``, so a later writer
can tell a dead writer's leftovers (same host, pid no longer running: remove)
from a live writer's work in progress (leave alone). Names from other hosts
(a store shared over NFS) are never touched.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable

_OWNED = re.compile(r"^\.offrl-(?P<kind>[a-z]+)-(?P<host>.+)-(?P<pid>\d+)-(?P<rand>[A-Za-z0-9_]+)(?P<suffix>\.[A-Za-z0-9.]+)?$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``<host>-<pid>`` of the current process, as embedded in temporary names."""
    return f"{_host()}-{os.getpid()}"


def private_temp_dir(parent: Path, kind: str) -> Path:
    """A new directory ``parent/.offrl-<kind>-<host>-<pid>-<random>``."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".offrl-{kind}-{owner_tag()}-", dir=parent))
    _umask_mode(path, 0o777)  # renamed into place later: shared like any directory the user makes
    return path


def private_temp_file(parent: Path, kind: str, suffix: str = "") -> Path:
    """A new empty file ``parent/.offrl-<kind>-<host>-<pid>-<random><suffix>``."""
    parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".offrl-{kind}-{owner_tag()}-", suffix=suffix, dir=parent)
    os.close(fd)
    _umask_mode(Path(name), 0o666)
    return Path(name)


def _umask_mode(path: Path, full: int) -> None:
    """Give ``path`` ``full & ~umask`` (mkstemp/mkdtemp make it private whatever the umask)."""
    from offrl.rundir import current_umask

    try:
        os.chmod(path, full & ~current_umask())
    except OSError:  # a file system without modes keeps the private one
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a pid we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owned_by_dead_process(path: Path) -> bool:
    """True for a temporary name of this host whose owner pid is no longer running."""
    m = _OWNED.match(path.name)
    if not m or m["host"] != _host():
        return False
    pid = int(m["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def clean_dead_temps(parent: Path, before_remove: Callable[[Path], None] | None = None) -> list[Path]:
    """Remove the temporary files and directories of dead processes directly under ``parent``.

    ``before_remove(path)`` runs first for each directory (the dataset writer uses
    it to restore a dataset whose replacement was interrupted mid-swap).
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for path in parent.iterdir():
        if not path.name.startswith(".offrl-") or not owned_by_dead_process(path):
            continue
        if path.is_dir():
            if before_remove is not None:
                before_remove(path)
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
