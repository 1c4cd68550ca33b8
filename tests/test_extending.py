"""Runs the worked example of docs/extending.md verbatim."""
from __future__ import annotations

import re
from pathlib import Path

from offrl.actors import ACTORS
from offrl.critics import CRITICS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def test_extending_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    namespace: dict = {"RUN_DIR": tmp_path / "run"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    result = namespace["result"]
    assert result.finished and result.summary["critic"] == "asymmetric-huber" and result.summary["actor"] == "bc"
    assert result.summary["final_score_100"] is not None
    assert "asymmetric-huber" in CRITICS and "bc" in ACTORS
    # the new critic's implicit weight is finite at u = 0 and non-negative
    import torch

    critic = result_critic = CRITICS.get("asymmetric-huber")(namespace["AsymmetricHuberConfig"](), 2, 2, torch.device("cpu"))
    w = result_critic.implicit_weight_u(torch.tensor([-3.0, 0.0, 1e-9, 2.0]))
    assert torch.isfinite(w).all() and (w >= 0).all()
    assert critic is result_critic


def test_cli_lists_user_registered_components() -> None:
    from offrl.cli.main import main

    assert main(["list", "critic", "asymmetric-huber"]) == 0
