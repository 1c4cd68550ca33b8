"""Using trained policies, tracking, plugins and the display: what users of d3rlpy, CORL and CleanRL expect."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import offrl
from offrl.rundir import read_jsonl
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, session_store: Path) -> Path:
    """A short IDQL run on the bandit (diffusion sampling + critic selection inside the saved policy)."""
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(session_store)
    out = tmp_path_factory.mktemp("policy") / "run"
    proc = run_cli("run", "--preset", "bandit", "--steps", "400", "--eval-every", "200", "--eval-episodes", "200",
                   "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def test_policy_files_load_safely_without_the_dataset(trained: Path) -> None:
    for which in ("final", "best"):
        payload = torch.load(trained / f"policy_{which}.pt", weights_only=True)  # plain values and tensors only
        assert payload["config"]["actor"]["name"] == "diffusion-resample" and payload["obs_dim"] == 2
    assert (trained / "policy_final.pt").stat().st_size < (trained / "checkpoint.pt").stat().st_size
    policy = offrl.load_policy(trained, which="best", seed=3)
    one, batch = policy(np.zeros(2)), policy(np.zeros((5, 2)))
    assert one.shape == (2,) and batch.shape == (5, 2) and np.all(np.abs(batch) <= 1.0)
    again = offrl.load_policy(trained, which="best", seed=3)(np.zeros(2))
    assert np.array_equal(one, again)  # seeded
    with pytest.raises(offrl.errors.ConfigError, match="observation size 2"):
        policy(np.zeros(3))
    with pytest.raises(offrl.errors.RunDirError, match="policy_best.pt' does not exist"):
        offrl.load_policy(trained.parent, which="best")


def test_the_readme_loop_gets_the_logged_score(trained: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Use a trained policy"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    namespace = {"RUN_DIR": str(trained), "print": lambda *a: out.write(" ".join(map(str, a)))}
    exec(compile(code, "README.md", "exec"), namespace)
    mean = float(out.getvalue())
    logged = read_jsonl(trained / "eval.jsonl")[-1]
    # 200 episodes of returns in [0, 1]: within 4 standard errors of the logged 200-episode mean
    se = np.hypot(logged["return_std"], np.std(namespace["returns"])) / np.sqrt(200)
    assert abs(mean - logged["return_mean"]) < 4 * se + 1e-9, (mean, logged["return_mean"])


def test_offrl_eval_reproduces_the_logged_evaluation(trained: Path) -> None:
    proc = run_cli("eval", str(trained), "--episodes", "200", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    logged = read_jsonl(trained / "eval.jsonl")[-1]
    assert result["policy_step"] == 400 and result["normalized_score_100"] == pytest.approx(
        logged["normalized_score_100"], rel=1e-9)
    other = json.loads(run_cli("eval", str(trained), "--episodes", "200", "--seed", "5", "--json").stdout)
    assert other["normalized_score_100"] != result["normalized_score_100"]


def test_readme_video_example_works_on_the_bandit(trained: Path, tmp_path: Path) -> None:
    """README's `offrl eval RUN --which best --video DIR` on its own bandit run: it failed (no render mode)."""
    pytest.importorskip("moviepy")
    proc = run_cli("eval", str(trained), "--which", "best", "--episodes", "2", "--video", str(tmp_path / "v"),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    videos = json.loads(proc.stdout)["videos"]
    assert [Path(v).name for v in videos] == ["best-step400-episode-0.mp4", "best-step400-episode-1.mp4"]
    assert "Overwriting" not in proc.stderr


def test_bandit_frame_marks_the_action_on_the_reward_landscape() -> None:
    import gymnasium as gym

    import offrl  # noqa: F401  (registers offrl/MultimodalBandit-v0)

    env = gym.make("offrl/MultimodalBandit-v0", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (128, 128, 3) and before.dtype == np.uint8
    assert (before[..., 0] == before[..., 1]).all()  # grey: no action drawn yet
    env.reset(seed=0)
    env.step(np.array([0.7, 0.0], np.float32))  # the right-hand good mode
    frame = env.render()
    red = np.argwhere((frame[..., 0] > 200) & (frame[..., 1] < 60))
    row, col = red.mean(0)
    assert abs(col - 0.85 * 127) < 1.5 and abs(row - 63.5) < 1.5
    from offrl.envs.bandit import MultimodalBanditEnv

    with pytest.raises(ValueError, match="render_mode 'human' is not supported"):
        MultimodalBanditEnv(render_mode="human")


def test_offrl_eval_writes_videos(tmp_path: Path, copy_store: Path) -> None:
    """A MuJoCo environment rendered headless (EGL) into one MP4 per episode."""
    pytest.importorskip("moviepy")
    import gymnasium as gym

    from tests.helpers import write_episodes

    env = gym.make("InvertedPendulum-v5")
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(3):
        obs = [env.reset(seed=int(rng.integers(1000)))[0]]
        acts, rews, terms = [], [], []
        for _ in range(20):
            a = rng.uniform(-3, 3, 1).astype(np.float32)
            o, r, term, _, _ = env.step(a)
            obs.append(o), acts.append(a), rews.append(r), terms.append(term)
            if term:
                break
        episodes.append({"observations": np.array(obs), "actions": np.array(acts), "rewards": np.array(rews),
                         "terminations": np.array(terms), "truncations": np.array([False] * (len(terms) - 1) +
                                                                                 [not terms[-1]])})
    write_episodes("test/pendulum/random-v0", episodes, None, None, env=env)
    run = tmp_path / "run"
    proc = run_cli("run", "--dataset", "test/pendulum/random-v0", "--actor", "ddpg-bc", "--steps", "20",
                   "--eval-every", "20", "--eval-episodes", "1", "--set", "critic.hidden_dims=[8]",
                   "--set", "actor.hidden_dims=[8]", "--set", "critic.batch_size=8", "--set", "actor.batch_size=8",
                   "--out", str(run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", str(run), "--episodes", "2", "--video", str(tmp_path / "videos"), "--json")
    assert proc.returncode == 0, proc.stderr
    videos = json.loads(proc.stdout)["videos"]
    assert len(videos) == 2 and all(Path(v).stat().st_size > 1000 for v in videos)


def test_wandb_offline_logs_each_seed_and_resumes_the_same_run(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    out = tmp_path / "g"
    args = ["run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "40", "--eval-every", "20",
            "--eval-episodes", "5", "--save-every", "20", "--seeds", "0,1", "--set", "trainer.log_every=10",
            "--set", "trainer.wandb=true", "--set", "trainer.wandb_mode=offline", "--out", str(out), "--quiet"]
    proc = run_cli(*args, env={"WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr
    for seed in (0, 1):
        run_id = json.loads((out / f"seed{seed}" / "wandb.json").read_text())["id"]
        [data] = (out / f"seed{seed}" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
        blob = data.read_bytes()
        for key in (b"critic/q_loss", b"eval/normalized_score_100", f"g-seed{seed}".encode()):
            assert key in blob, key
    # resume after removing the summaries: the same W&B run id continues
    for seed in (0, 1):
        (out / f"seed{seed}" / "summary.json").unlink()
    proc = run_cli("run", "--resume", str(out), "--quiet", env={"WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads((out / "seed0" / "wandb.json").read_text())["id"]
    assert len(list((out / "seed0" / "wandb").glob(f"offline-run-*-{run_id}"))) >= 1
    assert len({p.name.rsplit("-", 1)[-1] for p in (out / "seed0" / "wandb").glob("offline-run-*")}) == 1


PLUGIN = '''
from dataclasses import dataclass
import torch
import offrl
from offrl.critics import CriticConfig, IQLCritic


@offrl.critics.register("plugin-expectile", "an expectile critic from a plugin")
class PluginCritic(IQLCritic):
    Config = CriticConfig

    def value_loss(self, u):
        return torch.where(u < 0, 0.3, 0.7) * u ** 2

    def implicit_weight_u(self, u):
        return torch.where(u < 0, 0.3, 0.7)
'''


def test_plugin_module_is_recorded_and_loaded_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "my_components.py").write_text(PLUGIN)
    env = {"PYTHONPATH": f"{tmp_path / 'mods'}:{ROOT}"}
    out = tmp_path / "run"
    proc = run_cli("run", "--plugin", "my_components", "--critic", "plugin-expectile", "--preset", "bandit",
                   "--actor", "ddpg-bc", "--steps", "40", "--eval-every", "40", "--save-every", "20",
                   "--eval-episodes", "5", "--out", str(out), "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "config.json").read_text())["plugins"] == ["my_components"]
    (out / "summary.json").unlink()
    # the plugin config.json records is never imported for you: one message says which one and how to load it
    refused = run_cli("run", "--resume", str(out), "--quiet", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "from plugin 'my_components', which is not loaded" in refused.stderr
    assert f"offrl run --resume {out} --plugin my_components" in refused.stderr
    resumed = run_cli("run", "--resume", str(out), "--plugin", "my_components", "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        with pytest.raises(offrl.errors.ConfigError, match="plugins=\\['my_components'\\]"):
            offrl.load_policy(out)
        assert offrl.load_policy(out, plugins=["my_components"]).config.critic == "plugin-expectile"
    finally:
        sys.path.remove(str(tmp_path / "mods"))
    listed = run_cli("list", "critic", env={**env, "OFFRL_PLUGINS": "my_components"})
    assert "plugin-expectile" in listed.stdout
    dry = run_cli("sweep", "--critics", "plugin-expectile", "--actors", "ddpg-bc", "--preset", "bandit",
                  "--plugin", "my_components", "--dry-run", "--out", str(tmp_path / "sweep"), env=env)
    assert dry.returncode == 0, dry.stderr
    bad = run_cli("run", "--plugin", "no_such_module", "--steps", "5", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Plugin module 'no_such_module' cannot be imported" in bad.stderr


def test_installed_entry_point_plugin(tmp_path: Path) -> None:
    """A package declaring an `offrl.plugins` entry point, installed (into a target folder), is found by every
    command: a run uses its critic and resumes without being told about it."""
    pkg = tmp_path / "pkg"
    (pkg / "my_components").mkdir(parents=True)
    (pkg / "my_components" / "__init__.py").write_text(PLUGIN.replace("plugin-expectile", "ep-expectile"))
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "my-offrl-components"
        version = "0.1.0"
        [project.entry-points."offrl.plugins"]
        my_components = "my_components"
        [tool.setuptools]
        packages = ["my_components"]
    '''))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(pkg)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": f"{target}:{ROOT}"}
    listed = run_cli("list", "critic", env=env)
    assert "ep-expectile" in listed.stdout, listed.stderr
    out = tmp_path / "run"
    proc = run_cli("run", "--critic", "ep-expectile", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "40",
                   "--eval-every", "40", "--save-every", "20", "--eval-episodes", "5", "--out", str(out), "--quiet",
                   env=env)
    assert proc.returncode == 0, proc.stderr
    (out / "summary.json").unlink()
    assert run_cli("run", "--resume", str(out), "--quiet", env=env).returncode == 0


# --- the display -------------------------------------------------------------------------------------------------
def test_progress_fits_80_columns_with_step_count_and_eta() -> None:
    from rich.console import Console

    from offrl.trainer.progress import TrainingProgress

    progress = TrainingProgress(3000, 0, enabled=True, headless=False, title="expectile + diffusion-resample · "
                                "offrl/bandit/multimodal-v0 · seed 0 and a long tail that cannot fit")
    progress.console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True)
    progress.advance(1750)
    progress.metrics({"critic/q_loss": 0.0123, "critic/v_loss": 0.0041, "actor/loss": 0.341})
    progress.score([{"normalized_score_100": 91.4}], [{"normalized_score_100": 93.0}], "normalized_score_100")
    progress.status("compile 14.2 s")
    progress.console.print(progress.live.get_renderable())
    lines = [line for line in progress.console.export_text().splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) == 3 and lines[0].endswith("…")
    assert "1750/3000" in lines[1] and "58%" in lines[1] and "<" in lines[1]
    assert lines[2].startswith("score 91.4 (best 93.0)") and "critic/q_loss" in lines[2]


def test_wall_time_includes_making_the_dataset_and_setup(tmp_path: Path, empty_store: Path) -> None:
    proc = run_cli("run", "--preset", "bandit", "--actor", "ddpg-bc", "--steps", "10", "--eval-every", "10",
                   "--eval-episodes", "2", "--out", str(tmp_path / "r"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "bandit" in proc.stderr.lower()  # the dataset is made on first use, and says so
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["setup_s"] > 0.5 and summary["wall_time_s"] >= summary["setup_s"]
