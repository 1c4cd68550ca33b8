"""What the benchmark scripts share: the benchmark data, exporting it for a peer, and the peer's environment.

- :func:`ensure_hopper_random` makes a Hopper-sized Minari dataset (Hopper-v5, uniformly random actions,
  1M transitions by default) in a private store, once. Speed does not depend on the data's quality, only on
  its shapes and size, so no behaviour policy needs training.
- :func:`export_npz` writes a dataset's transitions to one ``.npz`` so a peer library can read the same data
  from its own environment.
- :func:`peer_python` prepares (once) a virtual environment for a peer library that cannot share offrl's
  (d3rlpy 2.8.1 pins ``gymnasium==1.0.0``) and returns its interpreter. offrl's own environment is never
  changed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Where benchmark data and peer environments live (override with OFFRL_BENCH_DIR).
BENCH_DIR = Path(os.environ.get("OFFRL_BENCH_DIR", Path.home() / ".cache" / "offrl" / "bench"))
HOPPER_ID = "bench/hopper-random-v0"
#: The peers and what their environment installs (the torch pin is added at run time: the same torch as offrl).
PEERS = {"d3rlpy": ["d3rlpy==2.8.1", "h5py", "mujoco", "imageio"]}


def store() -> Path:
    path = BENCH_DIR / "minari"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_hopper_random(steps: int = 1_000_000, seed: int = 0) -> str:
    """A Hopper-v5 dataset of ``steps`` uniformly random transitions in the benchmark store; returns its id."""
    from offrl.datagen.writer import episode_buffer, minari_root, write_minari_dataset

    dataset_id = HOPPER_ID if steps == 1_000_000 else f"bench/hopper-random{steps}-v0"
    with minari_root(store()):
        from offrl.data.store import is_local

        if is_local(dataset_id):
            return dataset_id
        import gymnasium as gym

        env = gym.make("Hopper-v5")
        rng = np.random.default_rng(seed)
        episodes, done_steps = [], 0
        while done_steps < steps:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            observations, actions, rewards, terms, truncs = [obs], [], [], [], []
            while True:
                a = rng.uniform(-1, 1, 3).astype(np.float32)
                obs, r, term, trunc, _ = env.step(a)
                observations.append(obs), actions.append(a), rewards.append(r), terms.append(term)
                truncs.append(trunc or (done_steps + len(actions) >= steps and not term))
                if term or truncs[-1]:
                    break
            done_steps += len(actions)
            episodes.append(episode_buffer(np.asarray(observations), np.asarray(actions), np.asarray(rewards),
                                           np.asarray(terms), np.asarray(truncs)))
        write_minari_dataset(dataset_id, episodes, env=env, ref_min_score=-20.272305, ref_max_score=3234.3,
                             description=f"Hopper-v5, {steps} uniformly random transitions (offrl benchmarks)")
        env.close()
    return dataset_id


def export_npz(dataset_id: str) -> Path:
    """The dataset's transitions (actions in [-1, 1], raw rewards and observations) in one .npz, for a peer to
    load by path; the dataset is read from the current Minari store."""
    out = BENCH_DIR / "npz" / (dataset_id.replace("/", "__") + ".npz")
    if out.exists():
        return out
    from offrl.data.dataset import load_offline_dataset

    ds = load_offline_dataset(dataset_id, reward="none", check_env=False)  # from the current Minari store
    a = ds.arrays
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, observations=a.observations.astype(np.float32), actions=a.actions.astype(np.float32),
             rewards=a.rewards.astype(np.float32), terminals=a.terminals.astype(np.float32),
             timeouts=a.timeouts.astype(np.float32), episode_starts=a.episode_starts)
    tmp.replace(out)
    return out


def peer_python(name: str) -> Path:
    """The interpreter of the peer's own virtual environment, created on first use (needs the package index)."""
    import torch

    packages = [f"torch=={torch.__version__.split('+')[0]}", *PEERS[name]]
    tag = hashlib.sha1(" ".join(packages).encode()).hexdigest()[:8]
    env_dir = BENCH_DIR / f"peer-{name}-{tag}"
    python = env_dir / "bin" / "python"
    if not (env_dir / ".complete").exists():
        print(f"preparing {name}'s environment in {env_dir} (once): {' '.join(packages)}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", packages[0]], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages[1:]], check=True)
        (env_dir / ".complete").write_text(" ".join(packages) + "\n")
    return python
