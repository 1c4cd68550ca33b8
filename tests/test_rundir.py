"""The run-directory format: strict JSON, atomic writes, torn logs, states."""
from __future__ import annotations

import json
import math
from pathlib import Path

from offrl import rundir


def test_json_is_strict_and_non_finite_becomes_null(tmp_path: Path) -> None:
    rundir.write_json(tmp_path / "s.json", {"a": math.nan, "b": [1.0, math.inf], "c": "x"})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": "x"}
    assert rundir.floats_as_text({"clip": math.inf, "x": [-math.inf, 1.5]}) == {"clip": "inf", "x": ["-inf", 1.5]}


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    for i in range(3):
        rundir.write_json(tmp_path / "config.json", {"i": i})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    assert rundir.read_json(tmp_path / "config.json") == {"i": 2}


def test_jsonl_skips_torn_lines_and_truncates(tmp_path: Path) -> None:
    log = tmp_path / "train.jsonl"
    for step in (10, 20, 30):
        rundir.append_jsonl(log, {"step": step, "loss": math.nan if step == 20 else 1.0})
    with open(log, "a") as f:
        f.write('{"step": 40, "lo')  # a crash mid-write
    rows = rundir.read_jsonl(log)
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[1]["loss"] is None
    assert rundir.last_row(log)["step"] == 30
    rundir.truncate_jsonl(log, 20)
    assert [r["step"] for r in rundir.read_jsonl(log)] == [10, 20]


def test_run_state(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert rundir.run_state(run) == "pending" and not rundir.is_run_dir(run)
    rundir.write_json(run / rundir.CONFIG, {})
    assert rundir.find_run_dirs(tmp_path) == [run]
    (run / rundir.CHECKPOINT).write_bytes(b"x")
    assert rundir.run_state(run) == "partial"
    (run / rundir.SUMMARY).write_text('{"status": "fin')  # torn summary: not an ended run
    assert rundir.run_state(run) == "partial"
    rundir.write_json(run / rundir.SUMMARY, {"status": "diverged"})
    assert rundir.run_state(run) == "diverged" and rundir.has_ended(run)


def test_group_round_trip(tmp_path: Path) -> None:
    dirs = [rundir.seed_dir(tmp_path, s) for s in (0, 3)]
    rundir.write_group(tmp_path, [0, 3], dirs)
    assert rundir.read_group(tmp_path) == dirs
    assert rundir.read_group(tmp_path / "nothing") is None
