"""Headless progress (issue 26, item 5): without a terminal, plain full lines on a clock and on evaluations."""
from __future__ import annotations

import io

import pytest

import offrl
from offrl.trainer import progress as progress_mod
from offrl.trainer.progress import TrainingProgress, clock, headless_every

TINY = {"critic.hidden_dims": [32, 32], "actor.hidden_dims": [32, 32], "critic.batch_size": 64,
        "actor.batch_size": 64, "trainer.eval_episodes": 4, "trainer.eval_envs": 2, "trainer.compile": "off"}


def make(every_s: float, total: int = 1000) -> tuple[TrainingProgress, io.StringIO]:
    out = io.StringIO()
    return TrainingProgress(total, 0, enabled=True, title="t " * 100, headless=True, every_s=every_s,
                            stream=out), out


def test_lines_on_the_clock_with_step_rate_eta_and_a_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: now[0])
    p, out = make(every_s=10.0)
    with p:
        for step in range(1, 501):
            now[0] = step * 0.1  # 10 it/s
            p.advance(step)
    lines = out.getvalue().split("\n")
    assert out.getvalue().endswith("\n") and lines[-1] == ""
    assert lines[0] == ("t " * 100).strip() or lines[0] == "t " * 100  # the title, never cut at 80 columns
    steps = [ln for ln in lines if ln.startswith("step ")]
    # one at the first step, one per 10 s (100 steps) after it, and the last one at exit
    assert 5 <= len(steps) <= 7, steps
    assert "step 500/1,000 (50%)" in steps[-1] and "10 it/s" in steps[-1] and "ETA 0:50" in steps[-1]
    assert "0:50 elapsed" in steps[-1]


def test_each_evaluation_prints_a_line_with_the_score(monkeypatch: pytest.MonkeyPatch) -> None:
    p, out = make(every_s=1e9)
    with p:
        p.advance(1)
        p.advance(200)
        p.score([{"normalized_score_100": 91.44}], [{"normalized_score_100": 93.0}], "normalized_score_100")
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("step ")]
    assert len(lines) == 2  # the first step, then the evaluation (nothing new at exit)
    assert lines[1].startswith("step 200/1,000 (20%)") and "score 91.4 (best 93.0)" in lines[1]


def test_compile_status_is_shown_once(monkeypatch: pytest.MonkeyPatch) -> None:
    p, out = make(every_s=1e9)
    with p:
        p.status("compiling the training step…")
        p.advance(5)
        p.status("compile 14.2 s")
        p.status("compile 14.2 s")
    lines = out.getvalue().splitlines()[1:]
    assert lines[0] == "compiling the training step…"  # before the first step: the first minute is not a hang
    assert lines[1].startswith("step 5/1,000")
    assert lines[2] == "step 5/1,000 · compile 14.2 s" and len(lines) == 3  # shown once, not on every call


def test_long_lines_are_not_cut() -> None:
    p, out = make(every_s=1e9)
    with p:
        p.metrics({"critic/a_very_long_name_for_a_loss": 1.0, "actor/another_very_long_name_loss": 2.0})
        p.status("x" * 200)
        p.advance(3)
    assert "x" * 200 in out.getvalue() and "…" not in out.getvalue()


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFRL_PROGRESS_EVERY", "5")
    assert headless_every() == 5.0
    monkeypatch.setenv("OFFRL_PROGRESS_EVERY", "soon")
    with pytest.raises(ValueError, match="OFFRL_PROGRESS_EVERY='soon'.*seconds"):
        headless_every()
    assert clock(3723) == "1:02:03" and clock(8) == "0:08"


def test_a_run_without_a_terminal_prints_plain_lines(tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFRL_PROGRESS_EVERY", "1000")
    cfg = offrl.make_config(preset="bandit", actor="gaussian-awr", steps=40,
                            overrides={**TINY, "trainer.eval_every": 20, "trainer.log_every": 10})
    offrl.train(cfg, tmp_path / "run", show_progress=True)
    err = capsys.readouterr().err
    assert err.endswith("\n")
    lines = [ln for ln in err.splitlines() if ln.startswith("step ")]
    assert any("step 20/40" in ln and ("return" in ln or "score" in ln) for ln in lines), err
    assert lines[-1].startswith("step 40/40 (100%)"), err
    assert "\x1b[" not in err  # no cursor control in a log file
