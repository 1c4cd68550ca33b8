"""The throughput benchmark runs and prints its table and JSON rows (no timing thresholds)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--dataset", "offrl/bandit/multimodal-v0",
         "--store", str(store), "--pairings", "iql", "--peer", "none", "--updates", "4", "--warmup", "1",
         "--rounds", "1", "--set", "critic.hidden_dims=[16,16]", "--set", "actor.hidden_dims=[16,16]", *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )


def test_throughput_script_prints_a_table(session_store: Path) -> None:
    proc = _run("--seeds", "1", "2", "--modes", "off", store=session_store)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2  # E = 1 and E = 2, eager
    cells = [c.strip() for c in rows[0].split("│")[1:-1]]
    assert cells[:4] == ["offrl", "iql", "off", "1"] and cells[7] == "1.00"  # eager E=1 is the reference


def test_throughput_json_rows(session_store: Path) -> None:
    proc = _run("--seeds", "2", "--modes", "off", "--json", store=session_store)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"impl", "mode", "seeds", "updates_per_s", "seed_updates_per_s"} <= row.keys()
    assert row["seeds"] == 2 and row["seed_updates_per_s"] == 2 * row["updates_per_s"] > 0
