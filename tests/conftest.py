"""Shared fixtures: every test uses a private Minari store, never ~/.minari."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from offrl.data.store import minari_root
from offrl.datagen.builtins import ensure_dataset

torch.set_num_threads(1)
# The suite runs on the CPU on every host (a GPU host included): `trainer.device=auto` means cpu here, and the
# CUDA tests (@pytest.mark.cuda, tests/test_cuda.py) ask for cuda explicitly. Subprocesses inherit it.
os.environ["OFFRL_AUTO_DEVICE"] = "cpu"


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Minari store shared by the session, holding the built-in bandit dataset."""
    os.environ["OFFRL_CACHE_DIR"] = str(tmp_path_factory.mktemp("offrl-cache"))  # never ~/.cache in tests
    root = tmp_path_factory.mktemp("minari")
    with minari_root(root):
        ensure_dataset("offrl/bandit/multimodal-v0")
    return root


@pytest.fixture(autouse=True)
def minari_store(session_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point MINARI_DATASETS_PATH at the session store (with the bandit already built)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(session_store))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return session_store


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty Minari store for tests that create datasets."""
    root = tmp_path / "minari"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def copy_store(session_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session store, for tests that add or corrupt datasets."""
    root = tmp_path / "minari"
    shutil.copytree(session_store, root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CUDA tests are skipped where PyTorch sees no GPU (CI, these development machines)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
