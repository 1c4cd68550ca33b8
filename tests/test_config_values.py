"""Values a config can hold: every field of every component, the trainer and the data, checked when the config is
built, with the valid range in the message (offrl/validation.py; docs/reliability.md)."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

import offrl
from offrl.actors import ACTORS
from offrl.config import MAX_SEEDS_PER_RUN, DataConfig, EvalConfig, TrainerConfig, load_config_file, parse_seed_list
from offrl.critics import CRITICS
from offrl.errors import ConfigError, DatasetError, OfflineRLError
from offrl.online.config import OnlineConfig
from offrl.validation import MAX_SEED, Range
from tests.helpers import run_cli


def _configs() -> list[tuple[str, str, type, dict]]:
    """(section, component, Config class, make_config kwargs choosing it) for every config dataclass."""
    out = [("critic", n, CRITICS.get(n).Config, {"critic": n}) for n in CRITICS.names()]
    out += [("actor", n, ACTORS.get(n).Config, {"actor": n}) for n in ACTORS.names()]
    return out + [("data", "", DataConfig, {}), ("trainer", "", TrainerConfig, {}), ("eval", "", EvalConfig, {}), ("online", "", OnlineConfig, {})]


def _numeric(cls: type) -> list[tuple[str, type]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        elem = typing.get_args(typ)[0] if typing.get_origin(typ) is tuple else typ
        if elem in (int, float):
            out.append((f.name, elem))
    return out


CASES = [(s, n, c, k, field, typ) for s, n, c, k in _configs() for field, typ in _numeric(c)]


def _ids(case: tuple) -> str:
    return f"{case[0]}{'@' + case[1] if case[1] else ''}.{case[4]}"


def test_every_numeric_field_declares_its_valid_range() -> None:
    """A new hyperparameter must say which values are valid (RANGES next to the fields), or this fails."""
    missing = [_ids(c) for c in CASES if c[4] not in getattr(c[2], "RANGES", {})]
    assert not missing, f"declare a Range in the Config's RANGES for: {missing}"


@pytest.mark.parametrize("case", [c for c in CASES if c[5] is float], ids=_ids)
def test_nan_and_infinity_are_refused_in_every_float_field(case: tuple) -> None:
    section, _, cls, kwargs, key, _ = case
    with pytest.raises(ConfigError, match=f"^{section}.{key} is NaN; it must be "):
        offrl.make_config(**kwargs, overrides={f"{section}.{key}": "nan"})
    rng: Range = cls.RANGES[key]
    if not rng.inf:
        with pytest.raises(ConfigError, match=f"^{section}.{key} must be .*got inf"):
            offrl.make_config(**kwargs, overrides={f"{section}.{key}": "inf"})
    if rng.neg_inf:  # −inf means "no lower limit" here (critic.clip_diff_min)
        assert getattr(getattr(offrl.make_config(**kwargs, overrides={f"{section}.{key}": "-inf"}),
                               f"{section}_cfg" if section in ("critic", "actor") else section), key) == -math.inf
    else:
        with pytest.raises(ConfigError, match=f"{section}.{key}"):
            offrl.make_config(**kwargs, overrides={f"{section}.{key}": "-inf"})


def _outside(rng: Range, typ: type) -> list[float]:
    step = 1 if typ is int else 1e-3
    out = []
    if math.isfinite(rng.lo):
        out.append(rng.lo if rng.lo_open else rng.lo - step)
    if math.isfinite(rng.hi):
        out.append(rng.hi if rng.hi_open else rng.hi + step)
    return [int(v) if typ is int else v for v in out]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_every_range_is_enforced_at_its_edges_with_the_range_in_the_message(case: tuple) -> None:
    section, _, cls, kwargs, key, typ = case
    rng: Range = cls.RANGES[key]
    default = next(f for f in dataclasses.fields(cls) if f.name == key)
    is_list = typing.get_origin(typing.get_type_hints(cls)[key]) is tuple
    for bad in _outside(rng, typ):
        value = f"[{bad}]" if is_list else str(bad)
        with pytest.raises(ConfigError, match=re_escape(f"{section}.{key} must be {rng.text()}")):
            offrl.make_config(**kwargs, overrides={f"{section}.{key}": value})
    assert default is not None  # the default itself is valid: make_config(**kwargs) resolves
    offrl.make_config(**kwargs)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("overrides, message", [
    ({"actor.beta": -1}, "actor.beta must be >= 0, got -1.0."),
    ({"actor.log_std_min": 3}, "actor.log_std_min (3.0) must be less than actor.log_std_max (2.0)."),
    ({"actor.log_std_max": -30}, "actor.log_std_max must be in [-20, 20], got -30.0."),
    ({"actor.dropout": 1}, "actor.dropout must be in [0, 1), got 1.0."),
    ({"actor.max_weight": "inf"}, None),  # no clip of the weights: valid
    ({"critic.discount": 1.5}, "critic.discount must be in [0, 1], got 1.5."),
    ({"critic.target_update_rate": 0}, "critic.target_update_rate must be in (0, 1], got 0.0."),
    ({"critic.batch_size": 0}, "critic.batch_size must be positive, got 0."),
    ({"critic.hidden_dims": "[64, 0]"}, "critic.hidden_dims must be positive, got [64, 0]."),
    ({"critic.num_q": 10**20}, "critic.num_q=100000000000000000000 is too large"),
    ({"trainer.seed": 2**32}, f"trainer.seed must be in [0, {MAX_SEED}], got 4294967296."),
    ({"trainer.device": "tpu"}, "Unknown device (trainer.device) 'tpu'. Valid choices: auto, cpu, cuda, cuda:N."),
    ({"data.action_clip_eps": -0.1}, "data.action_clip_eps must be in [0, 1), got -0.1."),
    ({"data.reward": "scaled"}, "Unknown reward preprocessing (data.reward) 'scaled'"),
    ({"data.dataset": "[1, 2]"}, "is not a Minari dataset id"),
])
def test_out_of_range_hyperparameters_name_the_key_and_the_range(overrides: dict, message: str | None) -> None:
    if message is None:
        offrl.make_config(actor="gaussian-awr", overrides=overrides)
        return
    with pytest.raises(OfflineRLError) as err:
        offrl.make_config(actor="gaussian-awr", overrides=overrides)
    assert message in str(err.value)


def test_diffusion_and_td3_specific_ranges() -> None:
    for overrides, message in (({"actor.solver_order": 4}, "actor.solver_order must be in [1, 3], got 4."),
                               ({"actor.solver_t_end": 1.0}, "actor.solver_t_end must be in [0, 1), got 1.0."),
                               ({"actor.ema_rate": 2}, "actor.ema_rate must be in (0, 1], got 2.0.")):
        with pytest.raises(ConfigError, match=re_escape(message)):
            offrl.make_config(actor="edp", overrides=overrides)
    with pytest.raises(ConfigError, match=re_escape("critic.noise_clip must be >= 0, got -0.5.")):
        offrl.make_config(critic="td3", overrides={"critic.noise_clip": -0.5})
    with pytest.raises(ConfigError, match=re_escape("critic.clip must be > 1 (or inf), got 1.0.")):
        offrl.make_config(critic="exponential", overrides={"critic.clip": 1})
    assert offrl.make_config(critic="exponential", overrides={"critic.clip": "inf"}).critic_cfg.clip == math.inf


@pytest.mark.parametrize("seed, message", [
    ("1e30", "trainer.seed must be in [0, 4294967295], got 1000000000000000019884624838656."),
    (str(2**64), f"trainer.seed must be in [0, {MAX_SEED}]"),
    ("1.5", "trainer.seed='1.5' is not a valid integer."),
    ("-3", f"trainer.seed must be in [0, {MAX_SEED}], got -3."),
])
def test_seeds_out_of_range_or_fractional_are_refused(seed: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re_escape(message)):
        offrl.make_config(seed=seed)


@pytest.mark.parametrize("seeds, message", [
    ("12345678901234567890,1", "12345678901234567890 is not a valid seed (seeds are integers in [0, 4294967295])"),
    ("0-100000", f"names more than {MAX_SEEDS_PER_RUN:,} seeds"),
    ("0-" + "9" * 30, "is not a valid seed"),
    ("0.5,1", "'0.5' is not a seed"),
    ("3-1", "'3-1' is not a seed or an inclusive range"),
])
def test_seed_lists_are_bounded_before_they_are_expanded(seeds: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re_escape(message)):
        parse_seed_list(seeds)
    assert parse_seed_list("0-3,9") == [0, 1, 2, 3, 9]


def test_preset_names_config_paths_and_config_files(tmp_path: Path) -> None:
    with pytest.raises(OfflineRLError, match="Unknown preset ''"):
        offrl.make_config(preset="")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config_file(tmp_path)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[trainer]\nsteps = [1, 2]\n")
    with pytest.raises(ConfigError, match=re_escape("trainer.steps=[1, 2] is not a valid integer.")):
        offrl.config.resolve([load_config_file(wrong)])
    listed = tmp_path / "listed.toml"
    listed.write_text('[data]\ndataset = ["a", "b"]\n')
    with pytest.raises(ConfigError, match="data.dataset=\\['a', 'b'\\] is not a valid string"):
        offrl.config.resolve([load_config_file(listed)])
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[trainer]\r\nstepz = 5\r\n")
    with pytest.raises(OfflineRLError, match="'stepz'. Did you mean 'steps'?"):
        offrl.config.resolve([load_config_file(bom)])
    bom_json = tmp_path / "bom.json"
    bom_json.write_bytes(b'\xef\xbb\xbf{"critic": {"tua": 0.9}}\r\n')
    with pytest.raises(OfflineRLError, match="'tua'. Did you mean 'tau'?"):
        offrl.config.resolve([load_config_file(bom_json)])


def test_a_scoped_key_must_exist_for_its_component_even_when_another_is_chosen() -> None:
    from offrl.config import parse_set, resolve

    with pytest.raises(OfflineRLError, match=re_escape("Unknown hyperparameter of actor 'fql' (actor@fql.KEY) 'nokey'")):
        resolve([{"actor": {"name": "ddpg-bc"}}, parse_set(["actor@fql.nokey=1"])])
    with pytest.raises(ConfigError, match=re_escape("actor@fql.alpha='abc' is not a valid number.")):
        resolve([{"actor": {"name": "ddpg-bc"}}, parse_set(["actor@fql.alpha=abc"])])
    cfg = resolve([{"actor": {"name": "ddpg-bc"}}, parse_set(["actor@fql.alpha=3"])])  # valid, not applied
    assert cfg.actor == "ddpg-bc"


def test_a_dataset_id_escaping_the_store_is_refused_when_the_config_is_built() -> None:
    for bad in ("../../etc/x-v0", "/abs/x-v0", "offrl/../x-v0"):
        with pytest.raises(DatasetError, match="is not a Minari dataset id"):
            offrl.make_config(dataset=bad)


# --- sweep specs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ('[backend]\nworkers = "two"\n', "workers must be an integer >= 1, got 'two'"),
    ("[backend]\nworkers = true\n", "workers must be an integer >= 1, got True"),
    ('[backend]\ngpus_per_cell = "x"\n', "gpus_per_cell must be a number >= 0 (a GPU share, e.g. 0.25), got 'x'"),
    ("[backend]\ngpus_per_cell = nan\n", "gpus_per_cell must be a number >= 0"),
    ("[backend]\nname = 5\n", "Unknown backend 5"),
    ("[sweep]\nactors = 5\n", "[sweep] actors must be a name or a list of names, got 5"),
    ("[sweep]\ncritics = [1, 2]\n", "[sweep] critics must be a name or a list of names, got [1, 2]"),
    ("[sweep]\nname = 5\n", "The sweep's name must be a non-empty string, got 5"),
    ('[sweep]\ndatasets = ["../../etc/x-v0"]\n', "'../../etc/x-v0' is not a Minari dataset id"),
    ('[sweep]\nseeds = "0-100000000"\n', "Seeds '0-100000000' name more than 10,000 seeds"),
    ("[sweep]\nseeds = 100000000000\n", "A seed count must be in [1, 10,000], got 100,000,000,000"),
    ("[sweep]\nseeds = [0.5, 1]\n", "seeds are whole numbers, got 0.5"),
    ("[sweep]\nseeds = [0, 99999999999]\n", "Seeds must be integers in [0, 4294967295], got 99999999999"),
    ("[run]\nsteps = [1, 2]\n", "[run] steps must be an integer, got [1, 2]"),
    ("[run]\ndevice = true\n", "[run] device must be a string, got True"),
    ("[run]\nplugins = [1]\n", "[run] plugins must be a list of strings, got (1,)"),
    ('[grid]\n"critic.tau" = [0.6, 0.7]\n"actor.beta" = [1, 2]\n[sweep]\nseeds = 10000\ncritics = ["a", "b", "c"]\n',
     "The sweep's grid has 120,000 cells; at most 100,000"),
])
def test_sweep_spec_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    from offrl.sweep.spec import load_spec

    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(OfflineRLError) as err:
        load_spec(path)
    assert message in str(err.value), str(err.value)
    assert str(path) in str(err.value) or "Minari dataset id" in str(err.value)


def test_a_plugins_string_in_a_sweep_spec_is_one_plugin(tmp_path: Path) -> None:
    from offrl.sweep.spec import load_spec

    path = tmp_path / "spec.toml"
    path.write_text('[run]\nplugins = "my_plugin"\n')
    assert load_spec(path).run.plugins == ("my_plugin",)


def test_sweep_cells_resume_with_the_plugins_of_the_users_spec(tmp_path: Path) -> None:
    """A cell is resumed with --plugin for what the user's spec (and its config file) names, never from config.json."""
    from offrl.sweep.cells import expand_cells
    from offrl.sweep.driver import build_job
    from offrl.sweep.layout import SweepLayout
    from offrl.sweep.spec import RunOptions, SweepSpec

    config = tmp_path / "c.toml"
    config.write_text('plugins = ["from_config"]\n')
    spec = SweepSpec(run=RunOptions(plugins=("from_spec",), config=str(config)))
    job = build_job(expand_cells(spec)[0], SweepLayout(tmp_path), spec, threads=1, runner=("offrl-run",))
    assert list(job.resume_argv[:6]) == ["offrl-run", "--plugin", "from_spec", "--plugin", "from_config", "--resume"]


def test_hostile_values_on_the_command_line_are_one_message(tmp_path: Path) -> None:
    """The same checks through `offrl run` and `offrl sweep`: exit 2, one message, nothing written, no hang."""
    cases = [
        (["run", "--seeds", "0-100000", "--out", str(tmp_path / "a")], "names more than 1,024 seeds"),
        (["run", "--seed", "1e30", "--out", str(tmp_path / "b")], "trainer.seed must be in [0, 4294967295]"),
        (["run", "--preset", "", "--out", str(tmp_path / "c")], "Unknown preset ''"),
        (["run", "--config", str(tmp_path), "--out", str(tmp_path / "d")], "is a directory"),
        (["sweep", "--seeds", "0-100000000", "--dry-run", "--out", str(tmp_path / "e")], "more than 10,000 seeds"),
    ]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases.append((["sweep", "--steps", "5", "--out", str(blocker), "--dry-run"], "is a file; give a folder"))
    for argv, message in cases:
        proc = run_cli(*argv, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert message in proc.stderr, (argv, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
