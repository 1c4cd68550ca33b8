"""seohongpark/fql's own JAX agents as the peer offrl is measured against; runs inside the peer's environment.

    PEER_PYTHON fql_peer.py train --fql CHECKOUT --data-dir DIR --env-name cube-single-play-singletask-task2-v0 \\
        --agent fql --seed 0 --updates 50000 --eval-every 10000 --eval-episodes 50 --log-every 1000 \\
        --hidden 256,256 --out RUN_DIR [--set agent.alpha=300 ...]
    PEER_PYTHON fql_peer.py throughput --fql CHECKOUT --data-dir DIR --env-name ... --agent ifql \\
        --hidden 512,512,512,512

``CHECKOUT`` is a checkout of seohongpark/fql the user names (never copied into offrl). ``train`` runs its
``main.py`` as it is — its agent (``agents/AGENT.py`` with ``--agent.KEY`` overrides), its data loader
(``ogbench.make_env_and_datasets``, relabelling from qpos), its training loop and its ``evaluate`` — with
three patches around it, none inside the algorithm:

- ``ogbench.make_env_and_datasets`` reads the dataset files from ``--data-dir`` (offrl's export in OGBench's
  ``.npz`` layout, benchmarks/common.py ``export_ogbench_npz``) instead of downloading them, and builds the
  environments with ``success_timing='post'``, as offrl evaluates (ogbench 1.1.0's behaviour, which FQL's
  published numbers used; offrl.envs.ogbench);
- Weights & Biases runs disabled (``setup_wandb`` opens a disabled run): FQL's own CSV logs are kept;
- before training, the rewards and masks FQL's loader relabelled are compared with the ones offrl stored
  (``offrl_rewards``, ``offrl_masks`` in the export): both libraries must train on the same targets.

Afterwards FQL's ``train.csv`` / ``eval.csv`` are rewritten as an offrl run directory (config.json,
train.jsonl and eval.jsonl under offrl's metric names, summary.json), so ``offrl report`` and
benchmarks/parity_fql.py read both libraries alike. Loss definitions are put on offrl's scale: FQL's and
ReBRAC's critic losses average over the twin Q where offrl sums them (× 2); ReBRAC's actor loss is offrl's
ddpg-bc loss × α_actor (÷ α_actor). FQL logs one update's values every ``log_interval``; offrl averages
over its ``log_every``.

``throughput`` prints one JSON object: the agent's ``update`` calls per second on FQL's own batch sampling
(jitted, after a warm-up), single-threaded XLA when ``--threads 1``.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import sys
import time
from pathlib import Path

#: FQL's metric names -> (offrl's name, scale to offrl's definition) per agent.
METRICS: dict[str, dict[str, tuple[str, float]]] = {
    "fql": {"critic/critic_loss": ("critic/q_loss", 2.0), "critic/q_mean": ("critic/q_mean", 1.0),
            "actor/actor_loss": ("actor/loss", 1.0), "actor/bc_flow_loss": ("actor/flow_loss", 1.0),
            "actor/distill_loss": ("actor/distill_loss", 1.0), "actor/q_loss": ("actor/q_loss", 1.0),
            "actor/q": ("actor/q", 1.0)},
    "ifql": {"critic/critic_loss": ("critic/q_loss", 1.0), "value/value_loss": ("critic/v_loss", 1.0),
             "value/v_mean": ("critic/v_mean", 1.0), "actor/actor_loss": ("actor/loss", 1.0)},
    "iql": {"critic/critic_loss": ("critic/q_loss", 1.0), "value/value_loss": ("critic/v_loss", 1.0),
            "value/v_mean": ("critic/v_mean", 1.0), "actor/actor_loss": ("actor/loss", 1.0)},
    "rebrac": {"critic/critic_loss": ("critic/q_loss", 2.0), "critic/q_mean": ("critic/q_mean", 1.0),
               "actor/total_loss": ("actor/loss", None), "actor/mse": ("actor/bc_mse", 1.0)},
}


def patch_fql(checkout: Path, data_dir: Path) -> None:
    """Make FQL's modules importable and redirect its data and W&B (module docstring); nothing else."""
    sys.path.insert(0, str(checkout))
    os.environ.setdefault("MUJOCO_GL", "egl")
    import ogbench

    original = ogbench.make_env_and_datasets

    @functools.wraps(original)
    def local(dataset_name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        kwargs.setdefault("dataset_dir", str(data_dir))
        kwargs.setdefault("success_timing", "post")
        return original(dataset_name, *args, **kwargs)

    ogbench.make_env_and_datasets = local
    import tempfile

    import utils.log_utils as log_utils
    import wandb

    def no_wandb(entity=None, project="project", group=None, name=None, mode="online"):  # noqa: ANN001, ANN202
        """setup_wandb's run, disabled (and without its Settings, which newer wandb versions reject)."""
        return wandb.init(project=project, group=group, name=name, mode="disabled", dir=tempfile.mkdtemp())

    log_utils.setup_wandb = no_wandb


def check_relabelling(data_dir: Path, env_name: str) -> dict[str, float]:
    """FQL's loader's rewards and masks against offrl's (same transitions, same order); raises on a mismatch."""
    import numpy as np
    import ogbench

    _, train, _ = ogbench.make_env_and_datasets(env_name)
    name = dataset_file(env_name)
    z = np.load(data_dir / name)
    keep = z["terminals"] == 0  # the rows that are transitions (load_dataset drops each episode's last row)
    ours_r, ours_m = z["offrl_rewards"][keep], z["offrl_masks"][keep]
    if len(ours_r) != len(train["rewards"]):
        raise SystemExit(f"transition counts differ: offrl {len(ours_r)}, FQL's loader {len(train['rewards'])}")
    dr = float(np.abs(ours_r - train["rewards"]).max())
    dm = float(np.abs(ours_m - train["masks"]).max())
    if dr > 0 or dm > 0:
        raise SystemExit(f"offrl's and OGBench's relabelling differ (max |Δr| {dr}, max |Δmask| {dm})")
    return {"transitions": len(ours_r), "max_reward_diff": dr, "max_mask_diff": dm}


def dataset_file(env_name: str) -> str:
    """OGBench's file name for a single-task env name: the task words dropped (cube-single-play-v0.npz)."""
    splits = env_name.split("-")
    pos = splits.index("singletask")
    return "-".join(splits[:pos] + splits[-1:]) + ".npz"


def agent_flags(args: argparse.Namespace) -> list[str]:
    hidden = "(" + ",".join(args.hidden.split(",")) + ",)"
    flags = [f"--agent={args.fql}/agents/{args.agent}.py", f"--agent.actor_hidden_dims={hidden}",
             f"--agent.value_hidden_dims={hidden}"]
    return flags + [f"--agent.{s}" for s in args.set]


def train(args: argparse.Namespace) -> None:
    patch_fql(args.fql, args.data_dir)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    relabel = check_relabelling(args.data_dir, args.env_name)
    raw = out / "fql_raw"
    argv = ["main.py", f"--env_name={args.env_name}", f"--seed={args.seed}", f"--offline_steps={args.updates}",
            "--online_steps=0", f"--eval_interval={args.eval_every}", f"--eval_episodes={args.eval_episodes}",
            f"--log_interval={args.log_every}", f"--save_interval={10 * args.updates + 1}", "--buffer_size=1",
            f"--save_dir={raw}", "--run_group=parity", *agent_flags(args)]
    os.chdir(args.fql)  # main.py's --agent default (agents/fql.py) resolves from its root
    sys.argv = argv  # ml_collections finds the --agent.KEY overrides to define in sys.argv
    import main as fql_main  # noqa: E402 - FQL's main.py, as it is
    from absl import flags

    flags.FLAGS(argv)
    t0 = time.perf_counter()
    fql_main.main(argv)
    wall = time.perf_counter() - t0
    run = next(raw.glob("fql/parity/*"))
    config = flags.FLAGS.agent.to_dict()
    write_run_dir(out, run, args, config, relabel, wall)


def write_run_dir(out: Path, run: Path, args: argparse.Namespace, config: dict, relabel: dict, wall: float) -> None:
    """FQL's CSV logs as an offrl run directory (module docstring)."""
    names = METRICS[args.agent]
    alpha_actor = float(config.get("alpha_actor", 1.0) or 1.0)
    with open(out / "train.jsonl", "w") as f:
        for row in _csv(run / "train.csv"):
            step = int(float(row["step"]))
            record = {"step": step}
            for key, (name, scale) in names.items():
                value = row.get(f"training/{key}")
                if value not in (None, ""):
                    record[name] = float(value) * (1.0 / alpha_actor if scale is None else scale)
            f.write(json.dumps(record) + "\n")
    last = None
    with open(out / "eval.jsonl", "w") as f:
        for row in _csv(run / "eval.csv"):
            step = int(float(row["step"]))
            if step == 1:  # FQL also evaluates its initial policy; offrl does not
                continue
            last = {"step": step, "success_rate_100": 100.0 * float(row["evaluation/success"]),
                    "return_mean": float(row["evaluation/episode.return"]),
                    "length_mean": float(row["evaluation/episode.length"]), "episodes": args.eval_episodes}
            f.write(json.dumps(last) + "\n")
    (out / "config.json").write_text(json.dumps({
        "critic": {"name": "fql-repo"}, "actor": {"name": args.agent, **_plain(config)},
        "data": {"dataset": args.dataset}, "trainer": {"seed": args.seed, "steps": args.updates},
        "peer": {"fql_checkout": str(args.fql), "env_name": args.env_name, "relabelling": relabel}}, indent=2))
    (out / "summary.json").write_text(json.dumps({
        "status": "finished", "critic": "fql-repo", "actor": args.agent, "dataset": args.dataset, "seed": args.seed,
        "steps": args.updates, "final_success_rate_100": None if last is None else last["success_rate_100"],
        "wall_time_s": round(wall, 3)}, indent=2))


def _plain(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("ob_")}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def throughput(args: argparse.Namespace) -> None:
    patch_fql(args.fql, args.data_dir)
    import jax
    import numpy as np
    from absl import flags
    from ml_collections import config_flags

    from agents import agents
    from envs.env_utils import make_env_and_datasets
    from utils.datasets import Dataset

    argv = ["throughput", *agent_flags(args)]
    sys.argv = argv  # ml_collections finds the --agent.KEY overrides to define in sys.argv
    config_flags.DEFINE_config_file("agent", f"{args.fql}/agents/{args.agent}.py", lock_config=False)
    flags.FLAGS(argv)
    config = flags.FLAGS.agent
    _, _, train_data, _ = make_env_and_datasets(args.env_name)
    data = Dataset.create(**train_data)
    data.return_next_actions = config["agent_name"] == "rebrac"
    np.random.seed(0)
    agent = agents[config["agent_name"]].create(0, data.sample(1)["observations"], data.sample(1)["actions"],
                                                config)

    def step(i: int, agent):  # noqa: ANN001, ANN202 - main.py's offline loop body
        batch = data.sample(config["batch_size"])
        if config["agent_name"] == "rebrac":
            return agent.update(batch, full_update=(i % config["actor_freq"] == 0))[0]
        return agent.update(batch)[0]

    for i in range(1, args.warmup + 1):
        agent = step(i, agent)
    jax.block_until_ready(agent.network.params)
    t0 = time.perf_counter()
    for i in range(1, args.updates + 1):
        agent = step(i, agent)
    jax.block_until_ready(agent.network.params)
    rate = args.updates / (time.perf_counter() - t0)
    print(json.dumps({"impl": "fql-repo", "agent": args.agent, "hidden": args.hidden, "jax": jax.__version__,
                      "updates_per_s": rate}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "throughput"):
        s = sub.add_parser(name)
        s.add_argument("--fql", type=lambda v: Path(v).resolve(), required=True, help="a seohongpark/fql checkout")
        s.add_argument("--data-dir", type=lambda v: Path(v).resolve(), required=True,
                       help="the directory of the exported OGBench .npz files")
        s.add_argument("--env-name", required=True, help="OGBench single-task name, e.g. "
                                                         "cube-single-play-singletask-task2-v0")
        s.add_argument("--agent", choices=sorted(METRICS), required=True)
        s.add_argument("--hidden", default="512,512,512,512", help="actor and value hidden widths")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="--agent.KEY=VALUE of FQL")
        s.add_argument("--threads", type=int, default=1, help="XLA CPU threads (1: one core)")
        if name == "train":
            s.add_argument("--dataset", required=True, help="offrl's dataset id (recorded in config.json)")
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--updates", type=int, default=50_000)
            s.add_argument("--eval-every", type=int, default=10_000)
            s.add_argument("--eval-episodes", type=int, default=50)
            s.add_argument("--log-every", type=int, default=1_000)
            s.add_argument("--out", required=True)
        else:
            s.add_argument("--updates", type=int, default=300)
            s.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    if args.threads == 1:  # before jax is imported: one intra-op thread, as offrl's runs use
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    (train if args.cmd == "train" else throughput)(args)


if __name__ == "__main__":
    main()
