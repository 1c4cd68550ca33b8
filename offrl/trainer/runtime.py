"""Device selection, CPU threads and seeding of every RNG a run draws from."""
from __future__ import annotations

import random

import numpy as np
import torch

from offrl.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"Unknown device '{name}'. Valid choices: auto, cpu, cuda, cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name} was requested but no CUDA GPU is available "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). Use --device cpu or auto."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise DeviceError(f"--device {name}: only {n} CUDA device{'s' if n != 1 else ''} present "
                              f"(cuda:0{f' to cuda:{n - 1}' if n > 1 else ''}).")
    elif device.type != "cpu":
        raise DeviceError(f"Unsupported device '{name}'. Valid choices: auto, cpu, cuda, cuda:N.")
    return device


def configure_threads(device: torch.device, threads: int) -> None:
    """One intra-op thread on CPU unless asked otherwise: with these small nets, 2 threads on
    2 shared cores ran up to ~100x slower (OpenMP spin-wait), see docs/architecture.md."""
    if device.type == "cpu":
        torch.set_num_threads(threads if threads > 0 else 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived deterministically from integers (e.g. run seed and step)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] >> 1)
