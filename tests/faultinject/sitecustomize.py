"""Fault injection for tests/test_faults.py, loaded by Python at start-up when this folder is on PYTHONPATH.

``OFFRL_KILL_AT=N`` SIGKILLs the process at the N-th file rename or hard link whose target is a checkpoint
(``checkpoint.pt`` / ``checkpoint.prev.pt``): inside the group checkpoint protocol of
offrl.trainer.checkpoint, between writing temporaries, linking the previous checkpoint and renaming.
Test-only: offrl itself has no hook for this.
"""
import os
import signal

_AT = int(os.environ.get("OFFRL_KILL_AT", "0") or 0)
if _AT:
    _count = [0]
    _replace, _link = os.replace, os.link

    def _maybe_die(dst: object) -> None:
        if "checkpoint" in os.path.basename(os.fspath(dst)):
            _count[0] += 1
            if _count[0] == _AT:
                os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *a, **k):  # type: ignore[no-untyped-def]
        _maybe_die(dst)
        return _replace(src, dst, *a, **k)

    def link(src, dst, *a, **k):  # type: ignore[no-untyped-def]
        _maybe_die(dst)
        return _link(src, dst, *a, **k)

    os.replace, os.link = replace, link
