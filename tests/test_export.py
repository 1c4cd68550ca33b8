"""`offrl export`: the exported acting function (normalisation, acting, action scaling, noise as inputs) gives
load_policy's actions for the same noise, for every built-in actor; ONNX where onnx/onnxruntime are installed;
clear errors for what cannot be exported."""
from __future__ import annotations

import builtins
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import offrl
from offrl.actors import ACTORS
from offrl.export import ExportError, draw_inputs, export_policy
from offrl.policy import load_policy
from tests.helpers import run_cli

BUILTIN_ACTORS = ("gaussian-awr", "ddpg-bc", "diffusion-resample", "edp", "fql", "flow-resample")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> dict[str, Path]:
    """A 3-iteration bandit run per built-in actor, with observation normalisation on (so it is exported too)."""
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    root = tmp_path_factory.mktemp("export-runs")
    out = {}
    for actor in BUILTIN_ACTORS:
        cfg = offrl.make_config(critic="expectile", actor=actor, preset="bandit", steps=3,
                                overrides={"trainer.eval_every": 3, "trainer.eval_episodes": 2, "trainer.eval_envs": 2,
                                           "data.normalize_obs": True})
        offrl.train(cfg, root / actor)
        out[actor] = root / actor
    return out


def _same_as_load_policy(run: Path, call, batch: int = 4, seed: int = 5) -> float:
    policy = load_policy(run)
    obs = np.random.default_rng(seed).uniform(-1, 1, (batch, policy.obs_dim))
    want = policy.seed(seed)(obs)
    noise = draw_inputs(policy, batch, torch.Generator().manual_seed(seed))  # the draws load_policy makes
    got = call(torch.as_tensor(obs, dtype=torch.float32), noise)
    assert got.shape == want.shape == (batch, policy.act_dim)
    return float(np.abs(got - want).max())


def test_every_builtin_actor_is_covered() -> None:
    assert set(BUILTIN_ACTORS) <= set(ACTORS.names())


@pytest.mark.parametrize("actor", BUILTIN_ACTORS)
def test_torchscript_actions_equal_load_policys_for_the_same_noise(actor: str, runs: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    meta = export_policy(runs[actor], "torchscript", out=tmp_path / "p.pt", batch=4)
    module = torch.jit.load(str(tmp_path / "p.pt"))
    diff = _same_as_load_policy(runs[actor], lambda obs, noise: module(obs, *noise).numpy())
    assert diff < 1e-5
    names = [i["name"] for i in meta["inputs"]]
    assert names[0] == "observations" and meta["output"]["shape"] == [4, 2]
    if actor in ("gaussian-awr", "ddpg-bc"):
        assert names == ["observations"]  # deterministic actors take no noise
    else:
        assert len(names) > 1  # sampling actors: the noise is an input
    with zipfile.ZipFile(tmp_path / "p.pt") as z:  # the description travels inside the file, and beside it
        embedded = json.loads(z.read(next(n for n in z.namelist() if n.endswith("extra/offrl.json"))))
    assert embedded["inputs"] == meta["inputs"] == json.loads((tmp_path / "p.pt.json").read_text())["inputs"]


def test_a_different_noise_gives_different_actions_for_a_sampling_actor(runs: dict[str, Path], tmp_path: Path) -> None:
    export_policy(runs["fql"], "torchscript", out=tmp_path / "p.pt", batch=4)
    module = torch.jit.load(str(tmp_path / "p.pt"))
    policy = load_policy(runs["fql"])
    obs = torch.zeros(4, 2)
    a = module(obs, *draw_inputs(policy, 4, torch.Generator().manual_seed(0)))
    b = module(obs, *draw_inputs(policy, 4, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, b)  # the noise is a live input, not a constant baked into the trace


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_onnx(), reason="onnx and onnxruntime are not installed (pip install 'offrl[onnx]')")
@pytest.mark.parametrize("actor", BUILTIN_ACTORS)
def test_onnx_actions_equal_load_policys(actor: str, runs: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime

    meta = export_policy(runs[actor], "onnx", out=tmp_path / "p.onnx", batch=4)
    session = onnxruntime.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    used = {i.name for i in session.get_inputs()}
    names = [i["name"] for i in meta["inputs"]]

    def call(obs: torch.Tensor, noise: list[torch.Tensor]) -> np.ndarray:
        feed = {n: t.numpy() for n, t in zip(names, [obs, *noise]) if n in used}
        return session.run(["actions"], feed)[0]

    assert _same_as_load_policy(runs[actor], call) < 1e-5


def test_onnx_without_its_packages_says_what_to_install(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_onnx(name: str, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ExportError, match=r"--format onnx needs onnx and onnxruntime .*pip install onnx onnxruntime"):
        export_policy(runs["ddpg-bc"], "onnx")


def test_an_acting_function_that_branches_on_values_is_refused(runs: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cls = ACTORS.get("gaussian-awr")

    def branching(self, obs, critic, noise):  # Python control flow on tensor values: the trace fixes one branch
        return self.mean(obs) * (1.0 if float(obs.sum()) > 0 else -1.0)

    monkeypatch.setattr(cls, "act", branching)
    with pytest.raises(ExportError, match="'gaussian-awr' cannot be exported as TorchScript: on new inputs .* "
                                          "differ from eager acting by up to .*depends on values the trace fixed"):
        export_policy(runs["gaussian-awr"], "torchscript", out=tmp_path / "p.pt", batch=3)
    assert not (tmp_path / "p.pt").exists()


def test_cli(runs: dict[str, Path]) -> None:
    run = runs["diffusion-resample"]
    r = run_cli("export", str(run), "--which", "best")
    assert r.returncode == 0, r.stderr
    assert (run / "policy_best.torchscript.pt").is_file() and "inputs: observations [1, 2] (raw), x_T" in r.stdout
    r = run_cli("export", str(run), "--out", str(run / "policy_final.pt"))
    assert r.returncode == 2 and "is one of the run's own files" in r.stderr
    load_policy(run)  # the run's own policy file is intact
    r = run_cli("export", str(run), "--format", "savedmodel")
    assert r.returncode == 2 and "Valid choices: onnx, torchscript" in r.stderr
