"""d3rlpy as the peer offrl is measured against; runs inside the peer's own environment (benchmarks/common.py).

    PEER_PYTHON d3rlpy_peer.py throughput --data DATA.npz --algo iql --updates 2000 --threads 1

prints one JSON object: the updates per second of d3rlpy's own ``fit`` (its data sampling and logging
included, as a user runs it), measured after a warm-up ``fit``. The data are offrl's transitions of the
same dataset (observations, actions in [-1, 1], rewards, terminals, timeouts), so both sides train on the
same arrays with the same network sizes and batch size.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def dataset(path: str):  # noqa: ANN201 - d3rlpy type
    import d3rlpy

    z = np.load(path)
    timeouts = z["timeouts"].copy()
    timeouts[-1] = 1.0 - z["terminals"][-1]  # the table ends an episode
    return d3rlpy.dataset.MDPDataset(z["observations"], z["actions"], z["rewards"], z["terminals"], timeouts,
                                     action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)


def make_algo(name: str, batch: int, hidden: int):  # noqa: ANN201
    import d3rlpy

    enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[hidden, hidden])
    if name == "iql":  # IQL's paper settings (d3rlpy's defaults are the paper's: τ=0.7, β=3, lr 3e-4, twin Q)
        cfg = d3rlpy.algos.IQLConfig(batch_size=batch, actor_encoder_factory=enc, critic_encoder_factory=enc,
                                     value_encoder_factory=enc)
    elif name == "td3+bc":
        cfg = d3rlpy.algos.TD3PlusBCConfig(batch_size=batch, actor_encoder_factory=enc, critic_encoder_factory=enc)
    else:
        raise SystemExit(f"unknown algorithm {name}")
    return cfg.create(device="cpu:0")


def throughput(args: argparse.Namespace) -> None:
    import d3rlpy

    torch.set_num_threads(args.threads)
    data = dataset(args.data)
    algo = make_algo(args.algo, args.batch, args.hidden)
    algo.build_with_dataset(data)
    quiet = {"show_progress": False, "save_interval": 10**9,
             "logger_adapter": d3rlpy.logging.NoopAdapterFactory()}
    algo.fit(data, n_steps=args.warmup, n_steps_per_epoch=args.warmup, **quiet)
    t0 = time.perf_counter()
    algo.fit(data, n_steps=args.updates, n_steps_per_epoch=args.updates, **quiet)
    rate = args.updates / (time.perf_counter() - t0)
    print(json.dumps({"impl": "d3rlpy", "d3rlpy": d3rlpy.__version__, "updates_per_s": rate}))


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--data", required=True)
    t.add_argument("--algo", default="iql")
    t.add_argument("--updates", type=int, default=2000)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--hidden", type=int, default=256)
    args = p.parse_args()
    throughput(args)


if __name__ == "__main__":
    main()
