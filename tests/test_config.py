"""Config layering: presets resolve, scoped sections, precedence, value conversion."""
from __future__ import annotations

from pathlib import Path

import pytest

import offrl
from offrl.config import parse_set, resolve
from offrl.errors import ConfigError, UnknownNameError
from offrl.presets import PRESETS


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_resolves_and_names_its_source(name: str) -> None:
    family = PRESETS.get(name).dataset_family  # presets for one family of data need such a dataset
    cfg = offrl.make_config(preset=name, dataset=f"mine/{family}-v0" if family else None)
    assert cfg.preset == name
    assert PRESETS.get(name).source


@pytest.mark.parametrize("actor", ["gaussian-awr", "diffusion-resample", "edp", "ddpg-bc"])
def test_bandit_preset_sizes_every_actor_with_equal_budgets(actor: str) -> None:
    cfg = offrl.make_config(preset="bandit", actor=actor)
    assert cfg.trainer.steps == 3000 and cfg.actor_cfg.batch_size == 128 and cfg.critic_cfg.batch_size == 128
    width = getattr(cfg.actor_cfg, "hidden", None) or cfg.actor_cfg.hidden_dims[0]
    assert width == 64


def test_precedence_defaults_preset_file_set(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[critic]\ntau = 0.8\n[trainer]\nsteps = 500\n[actor]\nbeta = 5.0\n')
    from offrl.config import load_config_file

    layers = [PRESETS.get("iql-antmaze").layer(), load_config_file(f), parse_set(["critic.tau=0.95"])]
    cfg = resolve(layers)
    assert cfg.critic_cfg.tau == 0.95  # --set beats the file (0.8) and the preset (0.9)
    assert cfg.trainer.steps == 500  # the file beats the preset (1M)
    assert cfg.actor_cfg.beta == 5.0 and cfg.data.reward == "antmaze"  # preset value kept where nothing overrides


def test_scoped_sections_apply_only_to_the_chosen_component() -> None:
    layer = {"actor@edp": {"timesteps": 7}, "actor@diffusion-resample": {"timesteps": 3}}
    assert resolve([layer, {"actor": {"name": "edp"}}]).actor_cfg.timesteps == 7
    assert resolve([layer, {"actor": {"name": "diffusion-resample"}}]).actor_cfg.timesteps == 3
    # a plain key set in a later layer wins over an earlier scoped one
    assert resolve([layer, {"actor": {"name": "edp", "timesteps": 11}}]).actor_cfg.timesteps == 11
    with pytest.raises(UnknownNameError, match="config section 'actor@'|Unknown config section"):
        resolve([{"trainer@x": {"steps": 1}}])


def test_scoped_set_tunes_one_component_of_a_grid() -> None:
    sets = parse_set(["actor@fql.alpha=300", "actor@ddpg-bc.alpha=1", "critic@expectile.tau=0.9"])
    fql = resolve([sets, {"actor": {"name": "fql"}, "critic": {"name": "td3"}}])
    bc = resolve([sets, {"actor": {"name": "ddpg-bc"}, "critic": {"name": "expectile"}}])
    assert fql.actor_cfg.alpha == 300 and bc.actor_cfg.alpha == 1 and bc.critic_cfg.tau == 0.9
    with pytest.raises(ConfigError, match="actor@NAME.KEY"):
        parse_set(["data@x.reward=none"])
    with pytest.raises(UnknownNameError, match="fqll"):  # a misspelt scope is not silently ignored
        resolve([parse_set(["actor@fqll.alpha=3"])])


def test_values_are_converted_or_rejected() -> None:
    cfg = resolve([parse_set(["critic.hidden_dims=64,64", "data.normalize_obs=yes", "trainer.steps=2e3",
                              "actor.name=gaussian-awr", "actor.cosine_decay=false"])])
    assert cfg.critic_cfg.hidden_dims == (64, 64) and cfg.data.normalize_obs is True
    assert cfg.trainer.steps == 2000 and cfg.actor_cfg.cosine_decay is False
    with pytest.raises(ConfigError, match="trainer.steps='2.5' is not a valid integer"):
        resolve([parse_set(["trainer.steps=2.5"])])
    with pytest.raises(ConfigError, match="SECTION.NAME"):
        parse_set(["tau=0.9"])
