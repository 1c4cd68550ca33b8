"""Export a run's acting function as TorchScript or ONNX: deployable without offrl.

The exported function is what :func:`offrl.load_policy` calls, end to end:
raw flat observations [B, O] → observation normalisation → the actor's ``act``
(candidate sampling and the critic's selection included) → actions in the
environment's bounds [B, A]. Sampling actors take their noise as **inputs**
(named as the actor declares them, in that order, with fixed shapes for the
exported batch size B), so the caller owns the randomness: the same noise gives
the same actions as ``load_policy``'s (tested). A JSON file beside the export
(``FILE.json``; embedded in TorchScript files as ``offrl.json``) lists every
input with its shape, dtype and distribution (``normal``: standard normal;
``uniform``: U[0, 1); ``randint``: integers in [0, high)).

The batch size is fixed at export (``--batch``; shapes are traced). An actor
whose acting branches on tensor values cannot be traced faithfully: every
export is checked on fresh random inputs against eager acting, and a mismatch
is an :class:`ExportError` naming the actor and the largest difference.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from offrl.errors import OfflineRLError

FORMATS = ("torchscript", "onnx")
#: Exported and eager actions may differ by this much (float32 arithmetic in another order).
TOLERANCE = 1e-4


class ExportError(OfflineRLError):
    """A policy cannot be exported as asked (a missing package, an actor that does not trace)."""


class ActingFunction(nn.Module):
    """raw flat observations (+ noise) -> actions in the environment's bounds, as :class:`offrl.policy.Policy`."""

    def __init__(self, policy: Any, noise_names: list[str]) -> None:
        super().__init__()
        self.actor, self.critic = policy.agent.actor, policy.agent.critic
        self.noise_names = list(noise_names)
        self.actor_name = str(policy.config.actor)
        f32 = lambda x: torch.as_tensor(np.asarray(x, np.float32))  # noqa: E731
        self.register_buffer("obs_mean", f32(policy.normalizer.mean))
        self.register_buffer("obs_std", f32(policy.normalizer.std))
        self.register_buffer("act_low", f32(policy.scaler.low))
        self.register_buffer("act_high", f32(policy.scaler.high))

    def forward(self, obs: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        x = (obs - self.obs_mean) / self.obs_std
        unit = self.actor.act(x, self.critic, dict(zip(self.noise_names, noise))).clamp(-1.0, 1.0)
        return self.act_low + (unit + 1.0) * 0.5 * (self.act_high - self.act_low)


def noise_inputs(policy: Any, batch: int) -> list[dict[str, Any]]:
    """The noise inputs of ``policy``'s acting for ``batch`` observations: name, shape, dtype, distribution."""
    out = []
    for name, n in policy.agent.actor.act_noise(batch).items():
        item = {"name": name, "shape": list(n.shape), "dtype": "int64" if n.kind == "randint" else "float32",
                "distribution": n.kind}
        if n.kind == "randint":
            item["high"] = n.high
        out.append(item)
    return out


def draw_inputs(policy: Any, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Noise tensors in input order, drawn exactly as ``load_policy`` draws them from ``generator``."""
    spec = policy.agent.actor.act_noise(batch)
    return [n.draw(generator, policy.device) for n in spec.values()]


def _trace(module: ActingFunction, inputs: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(module, inputs, check_trace=False)
        except Exception as e:
            raise ExportError(f"The actor '{_actor(module)}' cannot be traced: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None
    module.tracer_warnings = [str(w.message).splitlines()[0] for w in caught
                              if issubclass(w.category, torch.jit.TracerWarning)]
    return traced


def _actor(module: ActingFunction) -> str:
    return module.actor_name


def _fresh_inputs(policy: Any, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device=policy.device).manual_seed(seed)
    obs = torch.randn(batch, policy.obs_dim, generator=g, device=policy.device) * 2.0
    obs = obs * torch.as_tensor(policy.normalizer.std, device=policy.device) + torch.as_tensor(
        policy.normalizer.mean, device=policy.device)
    return (obs, *draw_inputs(policy, batch, g))


def _check(module: ActingFunction, run: Any, policy: Any, batch: int, what: str) -> float:
    """Largest |exported − eager| over fresh inputs; an ExportError beyond TOLERANCE."""
    worst = 0.0
    example = _fresh_inputs(policy, batch, 0)
    mean = torch.as_tensor(policy.normalizer.mean, device=policy.device)
    mirrored = (2 * mean - example[0], *example[1:])  # the traced example mirrored: every sign flips
    for inputs in [mirrored, *(_fresh_inputs(policy, batch, seed) for seed in (1, 2, 3, 4))]:
        with torch.no_grad():
            want = module(*inputs).cpu().numpy()
        got = np.asarray(run(inputs))
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > TOLERANCE * max(1.0, float(np.abs(policy.scaler.high - policy.scaler.low).max())):
        warned = getattr(module, "tracer_warnings", [])
        why = f" (the tracer warned: {warned[0]})" if warned else ""
        raise ExportError(f"The actor '{_actor(module)}' cannot be exported as {what}: on new inputs the exported "
                          f"function's actions differ from eager acting by up to {worst:.3g}{why} — its acting "
                          "depends on values the trace fixed. Use load_policy (offrl and torch) for it.")
    return worst


def export_policy(run_dir: str | Path, fmt: str = "torchscript", which: str = "final", out: str | Path | None = None,
                  batch: int = 1, plugins: tuple[str, ...] = ()) -> dict[str, Any]:
    """Export the acting function of ``run_dir``'s ``which`` policy; return the description written beside it."""
    from offrl.errors import unknown
    from offrl.policy import load_policy

    if fmt not in FORMATS:
        raise unknown("export format (--format)", fmt, FORMATS)
    if not 1 <= batch <= 1_000_000:
        raise ExportError(f"--batch must be between 1 and 1,000,000, got {batch}.")
    if fmt == "onnx":
        _need_onnx()
    policy = load_policy(run_dir, which=which, device="cpu", plugins=plugins)
    inputs_meta = noise_inputs(policy, batch)
    module = ActingFunction(policy, [i["name"] for i in inputs_meta]).eval().requires_grad_(False)
    example = _fresh_inputs(policy, batch, 0)
    path = Path(out) if out else Path(run_dir) / f"policy_{which}.{'torchscript.pt' if fmt == 'torchscript' else 'onnx'}"
    if path.exists() and path.is_dir():
        raise ExportError(f"--out '{path}' is a folder; give a file name.")
    own = {(Path(run_dir) / name).resolve() for name in ("policy_final.pt", "policy_best.pt", "checkpoint.pt")}
    if path.resolve() in own:
        raise ExportError(f"--out '{path}' is one of the run's own files; give another name (default "
                          f"{Path(run_dir) / f'policy_{which}.torchscript.pt'}).")
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["observations", *[i["name"] for i in inputs_meta]]
    meta = {
        "format": fmt, "run_dir": str(run_dir), "which": which, "policy_step": policy.step,
        "critic": policy.config.critic, "actor": policy.config.actor, "dataset": policy.config.data.dataset,
        "batch": batch, "obs_dim": policy.obs_dim, "act_dim": policy.act_dim,
        "inputs": [{"name": "observations", "shape": [batch, policy.obs_dim], "dtype": "float32",
                    "distribution": "raw flat environment observations (dict observations: leaves in alphabetical "
                                    "key order)"}, *inputs_meta],
        "output": {"name": "actions", "shape": [batch, policy.act_dim], "dtype": "float32",
                   "bounds": [policy.scaler.low.tolist(), policy.scaler.high.tolist()]},
        "includes": ["observation normalisation", "the actor's acting (candidate sampling and critic selection "
                     "where it has them)", "clipping to [-1, 1] and rescaling to the action bounds"],
    }
    if fmt == "torchscript":
        traced = _trace(module, example)
        meta["max_abs_difference"] = _check(module, lambda i: traced(*i).detach().numpy(), policy, batch, "TorchScript")
        traced.save(str(path), _extra_files={"offrl.json": json.dumps(meta)})
    else:
        _export_onnx(module, example, names, path)
        meta["max_abs_difference"] = _check(module, _onnx_runner(path, names), policy, batch, "ONNX")
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=1))
    return {"path": str(path), **meta}


def _need_onnx() -> None:
    missing = []
    for module, package in (("onnx", "onnx"), ("onnxruntime", "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ExportError(f"--format onnx needs {' and '.join(missing)} (onnxruntime checks the exported file): "
                          f"`pip install {' '.join(missing)}`, or `pip install 'offrl[onnx]'`.")


def _export_onnx(module: ActingFunction, example: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(path), input_names=names, output_names=["actions"],
                              dynamo=False)
    except Exception as e:
        raise ExportError(f"The actor '{_actor(module)}' cannot be exported as ONNX: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _onnx_runner(path: Path, names: list[str]) -> Any:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    used = {i.name for i in session.get_inputs()}  # an input the function ignores is pruned from the graph

    def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        feed = {n: t.cpu().numpy() for n, t in zip(names, inputs) if n in used}
        return session.run(["actions"], feed)[0]

    return run


__all__ = ["ActingFunction", "ExportError", "FORMATS", "draw_inputs", "export_policy", "noise_inputs"]
