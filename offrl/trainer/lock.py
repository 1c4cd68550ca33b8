"""One writer per run directory: a lock held for the life of the process that trains in it.

``RUN_DIR/run.lock`` (:data:`offrl.rundir.LOCK`, which the sweep also checks)
is locked with ``fcntl.flock`` (released by the kernel when the process dies,
so a killed run never leaves a stale lock) and holds the holder's pid, so a second ``offrl run`` on the same directory is refused with
a message naming the process that owns it.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from offrl import rundir
from offrl.errors import RunDirError


class RunLock:
    """An exclusive, non-blocking lock on a run directory (context manager)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / rundir.LOCK
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if self.path.is_symlink():  # never truncate a file a crafted run folder links run.lock to
            raise RunDirError(f"'{self.path}' is a symbolic link; offrl does not follow links among a run's files.")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            raise RunDirError(f"Cannot write to run directory '{self.path.parent}': {e.strerror or e}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"'{self.path.parent}' is in use by another offrl process (pid {holder}); one process writes "
                "a run directory at a time. Wait for it to finish, or stop it (Ctrl-C saves a checkpoint)."
            ) from None
        try:  # the pid is for the message a second writer gets; a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
