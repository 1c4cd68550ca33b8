"""``offrl export``: a run's acting function as TorchScript or ONNX (offrl.export), deployable without offrl."""
from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from offrl.cli.terminal import HelpFormatter

    p = sub.add_parser(
        "export",
        help="export a run's policy (observation normalisation, acting, action scaling) as TorchScript or ONNX",
        description="Export the acting function of a run's saved policy: raw flat observations [B, O] (and, for "
        "sampling actors, the noise as inputs) -> actions in the environment's bounds [B, A]. The same noise "
        "gives load_policy's actions. A JSON file beside the export describes every input.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="a run directory (for a multi-seed run: one of its seed<S> folders)")
    p.add_argument("--format", dest="fmt", default="torchscript", help="torchscript | onnx (needs onnx and onnxruntime)")
    p.add_argument("--which", choices=["final", "best"], default="final", help="which saved policy")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output file (default RUN/policy_WHICH.torchscript.pt, or RUN/policy_WHICH.onnx)")
    p.add_argument("--batch", type=int, default=1, metavar="B",
                   help="observations per call; shapes are fixed at export (default 1)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: the plugin a run of your own critic or actor needs (repeatable)")
    p.add_argument("--json", action="store_true", help="print the export's description as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from offrl.export import export_policy

    meta = export_policy(args.run_dir, args.fmt, args.which, args.out, args.batch, tuple(args.plugins))
    if args.json:
        print(json.dumps(meta))
        return 0
    inputs = ", ".join(f"{i['name']} {i['shape']} ({i['distribution'] if i['name'] != 'observations' else 'raw'})"
                       for i in meta["inputs"])
    print(f"Exported {meta['critic']} + {meta['actor']} ({args.which} policy, step {meta['policy_step']}) as "
          f"{meta['format']}: {meta['path']}\n  inputs: {inputs}\n  output: actions {meta['output']['shape']} in the "
          f"environment's bounds\n  checked against eager acting on new inputs: max |difference| "
          f"{meta['max_abs_difference']:.2g}\n  description: {meta['path']}.json")
    return 0
