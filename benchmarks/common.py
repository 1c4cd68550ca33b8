"""What the benchmark scripts share: the benchmark data, exporting it for a peer, and the peer's environment.

- :func:`ensure_hopper_random` makes a Hopper-sized Minari dataset (Hopper-v5, uniformly random actions,
  1M transitions by default) in a private store, once. Speed does not depend on the data's quality, only on
  its shapes and size, so no behaviour policy needs training.
- :func:`export_npz` writes a dataset's transitions to one ``.npz`` so a peer library can read the same data
  from its own environment.
- :func:`export_ogbench_npz` writes an ``offrl/ogbench/…`` dataset in OGBench's own ``.npz`` layout (with
  the qpos its loader relabels from), for seohongpark/fql's code.
- :func:`dataset_digest` is the sha256 of a dataset's transitions, kept with every recorded result so a
  study is never mixed across different data (a SAC recipe is deterministic per machine only).
- :func:`peer_python` and :func:`fql_python` prepare (once) a virtual environment for a peer library that
  cannot share offrl's (d3rlpy 2.8.1 pins ``gymnasium==1.0.0``; FQL's code is JAX) and return its
  interpreter. offrl's own environment is never changed.
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


def export_ogbench_npz(dataset_id: str, out_dir: Path) -> Path:
    """An ``offrl/ogbench/…`` dataset in OGBench's ``.npz`` layout, for seohongpark/fql's loader
    (``ogbench.utils.load_dataset``): per episode its T + 1 observations, T actions and a zero action for the
    final state, ``terminals`` = 1 on each episode's last row, ``qpos`` (and ``button_states`` where the
    environment has buttons) from the raw oracle episodes offrl relabelled them from; OGBench's loader drops
    every last row and relabels rewards and masks from qpos itself. ``offrl_rewards`` / ``offrl_masks`` hold
    offrl's own relabelling on the same rows, so the peer can check that both train on the same targets.
    Also writes the ``-val.npz`` FQL's loader requires: the first episode again (FQL only logs validation
    losses on it; nothing trains on it). Returns the directory (``dataset_dir`` of ogbench)."""
    import minari

    from offrl.data.metadata import read_metadata
    from offrl.data.store import datasets_root
    from offrl.datagen.recipes.ogbench import parse_id
    from offrl.datagen.shards import ShardStore

    env, task_id = parse_id(dataset_id)
    name = env.dataset_name(task_id)  # cube-single-play-singletask-task2-v0
    splits = name.split("-")
    pos = splits.index("singletask")
    path = Path(out_dir) / ("-".join(splits[:pos] + splits[-1:]) + ".npz")
    recipe = read_metadata(dataset_id)["offrl_recipe"]
    store = ShardStore(datasets_root() / recipe["raw_episodes"])
    episodes = list(minari.load_dataset(dataset_id).iterate_episodes())
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "terminals", "qpos",
                                                          "button_states", "offrl_rewards", "offrl_masks")}
    for i, ep in enumerate(episodes):
        raw = store.read(i)
        if not (np.array_equal(raw["actions"], ep.actions) and np.array_equal(raw["observations"], ep.observations)):
            raise RuntimeError(f"episode {i} of {dataset_id} differs from its raw oracle episode in {store.root}")
        t = len(ep.actions)
        rows["observations"].append(ep.observations.astype(np.float32))
        rows["actions"].append(np.concatenate([ep.actions, np.zeros((1, ep.actions.shape[1]))]).astype(np.float32))
        rows["terminals"].append(np.r_[np.zeros(t), 1.0].astype(np.float32))
        rows["qpos"].append(raw["qpos"].astype(np.float32))
        rows["button_states"].append(raw["button_states"])
        rows["offrl_rewards"].append(np.r_[ep.rewards, 0.0].astype(np.float32))
        rows["offrl_masks"].append(np.r_[1.0 - ep.terminations, 1.0].astype(np.float32))
    arrays = {k: np.concatenate(v) for k, v in rows.items()}
    if arrays["button_states"].shape[1] == 0:
        del arrays["button_states"]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    first = int(np.flatnonzero(arrays["terminals"])[0]) + 1
    np.savez(path.with_name(path.stem + "-val.npz"), **{k: v[:first] for k, v in arrays.items()})
    return path.parent


def peer_python(name: str) -> Path:
    """The interpreter of the peer's own virtual environment, created on first use (needs the package index)."""
    import torch

    packages = [f"torch=={torch.__version__.split('+')[0]}", *PEERS[name]]
    tag = hashlib.sha1(" ".join(packages).encode()).hexdigest()[:8]
    return make_venv(BENCH_DIR / f"peer-{name}-{tag}", packages, name)


def make_venv(env_dir: Path, packages: list[str], name: str) -> Path:
    """A virtual environment at ``env_dir`` with ``packages`` (the first installed first), made once: a
    ``.complete`` file records what it holds, and a different request for the same directory is refused."""
    python = env_dir / "bin" / "python"
    done = env_dir / ".complete"
    wanted = " ".join(packages) + "\n"
    if done.exists():
        if done.read_text() != wanted:
            raise SystemExit(f"{env_dir} holds another {name} environment ({done.read_text().strip()}); "
                             f"remove it or choose another directory")
        return python
    print(f"preparing {name}'s environment in {env_dir} (once): {' '.join(packages)}", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", packages[0]], check=True)
    if packages[1:]:  # the first pin again, so that nothing upgrades it (mujoco's extras would pull a newer jax)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    done.write_text(wanted)
    return python


#: seohongpark/fql's requirements (its requirements.txt: jax >= 0.4.26, flax >= 0.8.4, distrax >= 0.1.5,
#: ml_collections, wandb) at versions that work together, without D4RL's (not needed for OGBench). The
#: simulator stack is pinned to offrl's own versions at run time (fql_packages), so both libraries evaluate
#: in the same OGBench environment.
FQL_PACKAGES = ["flax==0.8.5", "distrax==0.1.5", "tensorflow-probability==0.24.0", "optax==0.2.3", "chex==0.1.86",
                "ml_collections", "absl-py", "tqdm", "wandb", "pillow"]


def fql_packages(cuda: bool = False) -> list[str]:
    """The FQL peer's packages: JAX (CPU or CUDA 12) first, then FQL's requirements and offrl's own versions
    of ogbench, mujoco, dm_control and gymnasium."""
    from importlib.metadata import version

    jax = "jax[cuda12]==0.4.30" if cuda else "jax[cpu]==0.4.30"
    same = [f"{p}=={version(p)}" for p in ("ogbench", "mujoco", "dm_control", "gymnasium")]
    return [jax, *FQL_PACKAGES, *same]


def fql_python(env_dir: Path | None = None, cuda: bool = False) -> Path:
    """The FQL peer's interpreter: the environment at ``env_dir`` (default ``OFFRL_FQL_VENV`` or
    BENCH_DIR/peer-fql), created on first use."""
    env_dir = Path(env_dir or os.environ.get("OFFRL_FQL_VENV", BENCH_DIR / "peer-fql"))
    return make_venv(env_dir, fql_packages(cuda), "fql")


def dataset_digest(dataset_id: str) -> str:
    """sha256 of the transitions (observations, actions, rewards, next observations, terminals, timeouts)."""
    from offrl.data.dataset import open_dataset, read_transitions

    ds, meta, decl = open_dataset(dataset_id, make_missing=False)
    a = read_transitions(ds, dataset_id, meta, decl)
    h = hashlib.sha256()
    for x in (a.observations, a.actions, a.rewards, a.next_observations, a.terminals, a.timeouts):
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()
