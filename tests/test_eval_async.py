"""Evaluation in worker processes: the same scores and files as in-process evaluation, and nothing lost when
a worker cannot start or dies."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import offrl
from offrl.trainer.api import train
from tests.helpers import read_jsonl


def _cfg(eval_async: str, seeds: str = "", workers: int = 1) -> object:
    return offrl.make_config(preset="bandit", actor="gaussian-awr", steps=60, seed=0, seeds=seeds or None, overrides={
        "trainer.eval_every": 30, "trainer.save_every": 60, "trainer.log_every": 30, "trainer.eval_episodes": 6,
        "trainer.eval_async": eval_async, "trainer.eval_workers": workers})


def _evals(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(run_dir / "eval.jsonl")]


def _policy(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "policy_final.pt", weights_only=True)["state"]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    out = tmp_path_factory.mktemp("sync") / "run"
    train(_cfg("off"), out)
    return out


def test_workers_score_what_in_process_evaluation_scores(in_process: Path, tmp_path: Path) -> None:
    result = train(_cfg("on"), tmp_path / "async")
    assert _evals(tmp_path / "async") == _evals(in_process)
    a, b = _policy(tmp_path / "async"), _policy(in_process)
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert result.summary["eval_where"] == "1 worker process" and result.summary["evaluations"] == 2
    assert 0 <= result.summary["eval_share"] < 1


def test_a_worker_that_cannot_start_means_evaluating_here(in_process: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")

    def refuse(self: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(type(ctx.Process(target=print)), "start", refuse)
    result = train(_cfg("on"), tmp_path / "refused")
    assert _evals(tmp_path / "refused") == _evals(in_process)
    assert result.summary["eval_where"] == "in-process (workers unavailable)"
    assert any("could not start" in n and "Resource temporarily unavailable" in n for n in result.summary["notes"])


def test_a_worker_that_dies_loses_nothing(in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offrl.trainer.evaluations import Evaluations

    opened = Evaluations.open

    def open_then_kill(self: Evaluations) -> None:
        opened(self)
        proc = self.workers.workers[0][0]
        proc.kill()
        proc.join()

    monkeypatch.setattr(Evaluations, "open", open_then_kill)
    result = train(_cfg("on"), tmp_path / "killed")
    assert _evals(tmp_path / "killed") == _evals(in_process)
    assert any("evaluating in the trainer's process" in n for n in result.summary["notes"])


def test_seeds_split_over_workers_score_as_one_process(tmp_path: Path) -> None:
    train(_cfg("off", seeds="0-2"), tmp_path / "sync")
    train(_cfg("on", seeds="0-2", workers=2), tmp_path / "async")
    for s in range(3):
        a, b = _evals(tmp_path / "async" / f"seed{s}"), _evals(tmp_path / "sync" / f"seed{s}")
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for x, y in zip(a, b):
            assert x["return_mean"] == pytest.approx(y["return_mean"], rel=1e-5, abs=1e-6)


def test_auto_evaluates_in_workers_only_where_it_pays() -> None:
    from offrl.trainer.evaluations import resolve_eval_async

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_eval_async("auto", cuda, 100)
    assert not resolve_eval_async("auto", cpu, 3_000)  # the bandit, the tests: a worker costs more than it saves
    assert resolve_eval_async("on", cpu, 10) and not resolve_eval_async("off", cuda, 10**6)
    assert resolve_eval_async("auto", cpu, 1_000_000) == ((os.cpu_count() or 1) >= 2)
    with pytest.raises(Exception, match="trainer.eval_async.*auto"):
        resolve_eval_async("maybe", cpu, 10)
