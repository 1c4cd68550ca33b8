"""offrl.data (loading) vs offrl.datagen (production): imports, registration, first-use making."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offrl.data.dataset import load_offline_dataset
from offrl.errors import DatasetError

BANDIT = "offrl/bandit/multimodal-v0"
PRODUCTION = ("offrl.datagen", "stable_baselines3", "ogbench", "gymnasium_robotics")


def _python(code: str, store: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(store), "OFFRL_CACHE_DIR": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_loading_imports_no_production_code(minari_store: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from offrl.data.dataset import load_offline_dataset\n"
        "import offrl.data.info, offrl.data.preprocess, offrl.data.flatten, offrl.data.store\n"
        f"prod = {PRODUCTION!r}\n"
        "after_import = sorted(m for m in sys.modules if m.split('.')[0] in prod or m.startswith('offrl.datagen'))\n"
        f"ds = load_offline_dataset({BANDIT!r})\n"
        "after_load = sorted(m for m in sys.modules if m.split('.')[0] in prod or m.startswith('offrl.datagen'))\n"
        "print(after_import, after_load, ds.obs_dim)\n"
    )
    proc = _python(code, minari_store, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[]", "[]", "2"]


def test_every_module_imports_first_without_cycles(minari_store: Path, tmp_path: Path) -> None:
    """Each data/datagen module imported first in a clean module table: an import cycle would fail here."""
    import offrl.data
    import offrl.datagen

    mods = []
    for pkg in (offrl.data, offrl.datagen):
        root = Path(pkg.__file__).parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root.parent.parent).with_suffix("")
            mods.append(".".join(rel.parts).removesuffix(".__init__"))
    assert "offrl.datagen.builtins" in mods and "offrl.datagen.recipes.bandit" in mods
    code = (
        "import importlib, sys\n"
        f"for name in {mods!r}:\n"
        "    for m in [m for m in sys.modules if m == 'offrl' or m.startswith('offrl.')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
        "from offrl.datagen.builtins import BUILTIN_DATASETS\n"
        "print(len(BUILTIN_DATASETS))\n"
    )
    proc = _python(code, minari_store, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip()) >= 19


def test_expensive_builtin_is_not_made_on_the_fly(empty_store: Path) -> None:
    from offrl.datagen.builtins import BUILTIN_DATASETS

    start = time.perf_counter()
    with pytest.raises(DatasetError) as err:
        load_offline_dataset("offrl/hopper/medium-v0")
    assert time.perf_counter() - start < 2
    message = " ".join(str(err.value).split())
    assert "`offrl data make offrl/hopper/medium-v0`" in message
    assert BUILTIN_DATASETS.get("offrl/hopper/medium-v0").cost in message and "1 h 42 min" in message
    assert not any(p.name != ".locks" for p in empty_store.iterdir())  # nothing was started


def test_only_cheap_builtins_are_made_on_first_use() -> None:
    from offrl.datagen.builtins import BUILTIN_DATASETS

    first_use = [e.name for e in BUILTIN_DATASETS if e.obj.made_on_first_use]
    assert first_use == [BANDIT]
    assert all(e.obj.cost for e in BUILTIN_DATASETS)  # every recipe records its measured cost


def test_bandit_made_on_first_use_with_a_notice(empty_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = load_offline_dataset(BANDIT)
    err = capsys.readouterr().err
    assert f"Making built-in dataset '{BANDIT}' on first use" in err and f"Made '{BANDIT}' in" in err
    assert ds.arrays.observations.shape == (3000, 2)
    assert ds.metadata["offrl_recipe"]["offrl_version"] == __import__("offrl").__version__
    load_offline_dataset(BANDIT)
    assert "Making" not in capsys.readouterr().err  # made once


def test_compat_writer_module_reexports() -> None:
    """offrl.data.writer stays importable for code outside the data layer (test helpers, sweep tests)."""
    from offrl.data import writer
    from offrl.data.store import minari_root
    from offrl.datagen import builtins
    from offrl.datagen import writer as gen_writer

    assert writer.ensure_dataset is builtins.ensure_dataset and writer.minari_root is minari_root
    assert writer.write_minari_dataset is gen_writer.write_minari_dataset
