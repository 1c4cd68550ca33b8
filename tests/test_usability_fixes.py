"""Fixes from issue 26's "also found" list: file modes, CLI flags, piped output, wording."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from offrl import rundir


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path: Path, mask: int) -> None:
    """mkstemp makes 0600 files whatever the umask; run files must get 0666 & ~umask like a plain open."""
    old = os.umask(mask)
    try:
        rundir.write_text_atomic(tmp_path / "a.json", "{}")
        rundir.write_json(tmp_path / "b.json", {"x": 1})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~mask
    for name in ("a.json", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name


def test_checkpoint_and_policy_temp_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fd, tmp = rundir.make_temp(tmp_path / "policy.pt")
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(tmp).stat().st_mode) == 0o644


def test_dataset_temp_files_and_dirs_respect_the_umask(tmp_path: Path) -> None:
    from offrl.datagen.tempdirs import private_temp_dir, private_temp_file

    old = os.umask(0o022)
    try:
        f = private_temp_file(tmp_path, "shard", ".npz")
        d = private_temp_dir(tmp_path, "write")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE(d.stat().st_mode) == 0o755


def test_list_accepts_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`offrl list --plugin MODULE` was refused; it imports MODULE so its components are listed."""
    from offrl.cli.main import main
    from test_policy import PLUGIN

    # its own component name: other tests of this process have registered test_policy's plugin already
    (tmp_path / "my_list_components.py").write_text(PLUGIN.replace("plugin-expectile", "listed-expectile"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "critic", "--plugin", "my_list_components"]) == 0
    assert "listed-expectile" in capsys.readouterr().out
    assert main(["list", "--plugin", "no_such_module_x"]) == 2
    assert "no_such_module_x" in capsys.readouterr().err
