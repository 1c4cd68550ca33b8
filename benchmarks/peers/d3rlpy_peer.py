"""d3rlpy as the peer offrl is measured against; runs inside the peer's own environment (benchmarks/common.py).

    PEER_PYTHON d3rlpy_peer.py throughput --data DATA.npz --algo iql --updates 2000 --threads 1
    PEER_PYTHON d3rlpy_peer.py train --data DATA.npz --algo iql --updates 100000 --seed 0 --out RUN_DIR \
        --env Hopper-v5 --eval-every 10000 --eval-episodes 10 --ref-min R0 --ref-max R1

``throughput`` prints one JSON object: the updates per second of d3rlpy's own ``fit`` (its data sampling
and logging included, as a user runs it), measured after a warm-up ``fit``. ``train`` trains with the
paper's settings as d3rlpy's reproduction scripts set them (IQL: returns scaled by 1000/(R_max − R_min);
TD3+BC: standardised observations) and writes an offrl-style run directory (config.json, eval.jsonl,
train.jsonl with each epoch's losses under offrl's names, summary.json) so that ``offrl report`` reads
both libraries' runs alike. Evaluation follows offrl's
protocol: episode seeds from numpy's SeedSequence([seed, step, 7]), deterministic actions, scores on
the D4RL scale from the dataset's reference returns.

The data are offrl's transitions of the same dataset (observations, actions in [-1, 1], raw rewards,
terminals, timeouts), so both sides train on the same arrays with the same network sizes and batch size.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

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


def _evaluate(algo, env_id: str, episodes: int, seed: int, step: int, ref: tuple[float, float]) -> dict:  # noqa: ANN001
    import gymnasium as gym

    env = gym.make(env_id)
    seeds = np.random.SeedSequence([seed, step, 7]).generate_state(episodes).tolist()
    returns = []
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        done, total = False, 0.0
        while not done:
            action = algo.predict(np.asarray(obs, np.float32)[None])[0]
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    ret = np.asarray(returns)
    score = 100.0 * (ret - ref[0]) / (ref[1] - ref[0])
    return {"return_mean": float(ret.mean()), "return_std": float(ret.std()), "episodes": episodes,
            "normalized_score_100": float(score.mean()), "normalized_score_100_std": float(score.std())}


#: d3rlpy's loss names -> offrl's, so one table compares both (IQL: q_loss, v_loss; TD3+BC: critic_loss).
METRIC_NAMES = {"q_loss": "critic/q_loss", "critic_loss": "critic/q_loss", "v_loss": "critic/v_loss",
                "actor_loss": "actor/loss", "bc_loss": "actor/bc_loss"}


def train_metrics(epoch: dict[str, float]) -> dict[str, float]:
    """One epoch's averaged d3rlpy metrics under offrl's names (timings and IQL's summed critic_loss dropped;
    for TD3+BC critic_loss is the Q loss)."""
    keep = {k: v for k, v in epoch.items() if not k.startswith("time_")}
    if "q_loss" in keep:
        keep.pop("critic_loss", None)  # IQL: critic_loss = q_loss + v_loss
    return {METRIC_NAMES.get(k, f"d3rlpy/{k}"): float(v) for k, v in keep.items()}


def train(args: argparse.Namespace) -> None:
    import d3rlpy

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    data = dataset(args.data)
    enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[args.hidden, args.hidden])
    if args.algo == "iql":
        # as d3rlpy's IQL reproduction: returns scaled by 1000/(R_max − R_min), actor LR cosine-decayed to 0
        cosine = d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=args.updates)
        cfg = d3rlpy.algos.IQLConfig(batch_size=args.batch, actor_encoder_factory=enc, critic_encoder_factory=enc,
                                     value_encoder_factory=enc,
                                     actor_optim_factory=d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=cosine),
                                     reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0))
    else:
        cfg = d3rlpy.algos.TD3PlusBCConfig(batch_size=args.batch, actor_encoder_factory=enc,
                                           critic_encoder_factory=enc,
                                           observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
    algo = cfg.create(device="cpu:0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({
        "critic": {"name": "d3rlpy"}, "actor": {"name": args.algo}, "data": {"dataset": args.dataset},
        "trainer": {"seed": args.seed, "steps": args.updates}, "peer": {"d3rlpy": d3rlpy.__version__}}, indent=2))
    quiet = {"show_progress": False, "save_interval": 10**9, "logger_adapter": d3rlpy.logging.NoopAdapterFactory()}
    t0, done = time.perf_counter(), 0
    with open(out / "eval.jsonl", "w") as log, open(out / "train.jsonl", "w") as train_log:
        while done < args.updates:
            n = min(args.eval_every, args.updates - done)
            history = algo.fit(data, n_steps=n, n_steps_per_epoch=n, **quiet)
            done += n
            train_log.write(json.dumps({"step": done, "time_s": round(time.perf_counter() - t0, 3),
                                        **train_metrics(history[-1][1])}) + "\n")
            train_log.flush()
            row = {"step": done, "time_s": round(time.perf_counter() - t0, 3),
                   **_evaluate(algo, args.env, args.eval_episodes, args.seed, done, (args.ref_min, args.ref_max))}
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
    (out / "summary.json").write_text(json.dumps({"status": "finished", "critic": "d3rlpy", "actor": args.algo,
                                                  "dataset": args.dataset, "seed": args.seed, "steps": done,
                                                  "final_score_100": row["normalized_score_100"],
                                                  "wall_time_s": round(time.perf_counter() - t0, 3)}, indent=2))


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
    r = sub.add_parser("train")
    r.add_argument("--data", required=True)
    r.add_argument("--dataset", required=True, help="the dataset id (recorded in config.json)")
    r.add_argument("--algo", choices=["iql", "td3+bc"], default="iql")
    r.add_argument("--updates", type=int, default=100_000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--env", required=True)
    r.add_argument("--eval-every", type=int, default=10_000)
    r.add_argument("--eval-episodes", type=int, default=10)
    r.add_argument("--ref-min", type=float, required=True)
    r.add_argument("--ref-max", type=float, required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--hidden", type=int, default=256)
    args = p.parse_args()
    (throughput if args.cmd == "throughput" else train)(args)


if __name__ == "__main__":
    main()
