"""Device selection, CPU threads, matrix-product precision and seeding of every RNG a run draws from."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from offrl.errors import DeviceError


#: Environment variable that fixes what ``trainer.device=auto`` means (``cpu`` or ``cuda``); the test suite sets
#: ``cpu`` so that it runs on the CPU on every host, a GPU host included.
AUTO_DEVICE_VAR = "OFFRL_AUTO_DEVICE"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu (or ``$OFFRL_AUTO_DEVICE``); ``cuda`` without a GPU is a clear
    error; ``cuda:N`` becomes the process's current CUDA device, so every stream, graph and kernel the run
    makes is on it."""
    if name == "auto":
        forced = os.environ.get(AUTO_DEVICE_VAR, "").strip()
        if forced:
            if forced not in ("cpu", "cuda"):
                raise DeviceError(f"{AUTO_DEVICE_VAR}={forced!r}: valid values are cpu and cuda.")
            name = forced
        else:
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
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def configure_threads(device: torch.device, threads: int) -> None:
    """One intra-op thread on CPU unless asked otherwise: with these small nets, 2 threads on
    2 shared cores ran up to ~100x slower (OpenMP spin-wait), see docs/architecture.md."""
    if device.type == "cpu":
        torch.set_num_threads(threads if threads > 0 else 1)


#: Values of ``trainer.matmul_precision``: ``auto`` = ``highest`` on CPU, ``high`` on CUDA.
MATMUL_PRECISIONS = ("auto", "highest", "high")


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` → ``high`` (TF32 matrix products) on CUDA, ``highest`` (full fp32) elsewhere.

    Why TF32 on CUDA: fp32 GEMMs run at ~67 TFLOP/s on an H100/H200 against ~495 with TF32, and the
    papers' own JAX code (IQL, IDQL, FQL) runs its float32 products at JAX's default precision, which
    is TF32 on these GPUs. On CPU ``high`` would let oneDNN use bf16, so ``auto`` keeps fp32 there.
    """
    if precision not in MATMUL_PRECISIONS:
        from offrl.errors import unknown

        raise unknown("matmul precision (trainer.matmul_precision)", precision, MATMUL_PRECISIONS)
    if precision == "auto":
        return "high" if device.type == "cuda" else "highest"
    return precision


def configure_precision(device: torch.device, precision: str) -> str:
    """Set PyTorch's float32 matrix-product precision for this run (a process-wide setting)."""
    resolved = resolve_precision(device, precision)
    torch.set_float32_matmul_precision(resolved)
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived deterministically from integers (e.g. run seed and step)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] >> 1)
