"""The speed-baseline script runs and prints its table (no timing thresholds)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_script_prints_a_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--preset", "bandit", "--actor", "gaussian-awr",
         "--updates", "5", "--repeats", "2", "--warmup", "1", "--eval-episodes", "2", "--threads", "1", "2"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2  # one row per thread count
    assert rows[0].split("│")[4].strip() == "1.00"  # ratio column: first row is the reference
