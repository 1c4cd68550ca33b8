"""Runs the worked example of docs/extending.md verbatim."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from offrl.actors import ACTORS
from offrl.critics import CRITICS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Execute the doc's one Python block (it registers a critic and an actor, then trains them)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    namespace: dict = {"RUN_DIR": tmp_path_factory.mktemp("extending") / "run"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    return namespace


def test_extending_example_trains(example: dict) -> None:
    result = example["result"]
    assert result.finished and result.summary["critic"] == "asymmetric-huber" and result.summary["actor"] == "bc"
    assert result.summary["final_score_100"] is not None
    assert "asymmetric-huber" in CRITICS and "bc" in ACTORS
    # the new critic's implicit weight, |τ − 1(u<0)| · min(1, δ/|u|), against hand-computed values
    critic = CRITICS.get("asymmetric-huber")(example["AsymmetricHuberConfig"](), 2, 2)
    w = critic.implicit_weight_u(torch.tensor([-3.0, 0.0, 0.5, 2.0]))
    torch.testing.assert_close(w, torch.tensor([0.3 / 3.0, 0.7, 0.7, 0.7 / 2.0]))


def test_cli_lists_user_registered_components(example: dict, capsys: pytest.CaptureFixture) -> None:
    from offrl.cli.main import main

    assert main(["list", "critic", "asymmetric-huber"]) == 0
    out = capsys.readouterr().out
    assert "critic.delta" in out and "critic.tau" in out
