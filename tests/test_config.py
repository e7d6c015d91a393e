"""Config: paper defaults, presets, overrides and errors naming the file and key."""

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import replace
from pathlib import Path

import pytest
from stylereel.pipeline.config import Config, Init, Optimizer, load_config, preset_names
from stylereel.pipeline.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"
PRESETS = sorted(p.name for p in CONFIGS.glob("*.toml"))
# The one rule for fields left unset: TOML has no null, so a preset names a field whose value is None
# in a commented-out line (`# weights = "vgg19.pth"`); load_config leaves an absent key at its default.
# These are the fields that may be None, and so the only ones a preset may name that way.
UNSET_FIELDS = ("learning_rate", "max_frames", "weights", "ray")


def test_defaults_are_gatys_layers_with_the_articles_layer_weights():
    config = Config()
    assert config.content_layer == "conv4_2"  # Gatys et al. 2015
    assert config.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")  # Gatys
    assert config.style_layer_weights == (1.0, 0.75, 0.2, 0.2, 0.2)  # "Can Machines Dream?", not Gatys


def test_gatys_preset_weights_the_five_style_layers_equally():
    config = load_config(CONFIGS / "gatys.toml")
    assert config.style_layers == Config().style_layers
    assert config.style_layer_weights == (0.2,) * 5  # Gatys et al. 2015: w_l = 1/5
    assert replace(config, style_layer_weights=Config().style_layer_weights) == Config()  # nothing else differs


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads(preset):
    assert isinstance(load_config(CONFIGS / preset), Config)


def _named(path: Path) -> tuple[set[str], set[str]]:
    """The keys a preset sets, and the fields it names in a commented-out `# name = value` line."""
    with path.open("rb") as file:
        keys = set(tomllib.load(file))
    fields = {field.name for field in dataclasses.fields(Config)}
    commented = set(re.findall(r"^# (\w+) = ", path.read_text(), flags=re.MULTILINE)) & fields
    return keys, commented


def test_the_unset_fields_are_those_that_may_be_none():
    hints = typing.get_type_hints(Config)
    may_be_none = {name for name, hint in hints.items()
                   if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)}
    assert may_be_none == set(UNSET_FIELDS)
    assert all(getattr(Config(), name) is None for name in UNSET_FIELDS)  # so an absent key means None


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_names_every_field_of_config(preset):
    # load_config fills a key left out with the default, so loading a preset cannot show one missing:
    # read the file's own keys instead.
    keys, commented = _named(CONFIGS / preset)
    fields = {field.name for field in dataclasses.fields(Config)}
    assert sorted(fields - keys - commented) == [], f"{preset} does not name these fields"
    assert sorted(commented - set(UNSET_FIELDS)) == [], f"{preset} comments out fields that cannot be None"
    assert sorted(commented & keys) == [], f"{preset} both sets and comments out these fields"


def test_default_preset_matches_the_dataclass():
    keys, _ = _named(CONFIGS / "default.toml")
    config = load_config(CONFIGS / "default.toml")
    assert {key: getattr(config, key) for key in sorted(keys)} == {key: getattr(Config(), key) for key in sorted(keys)}
    assert config == Config()


@pytest.mark.parametrize("name", [path.removesuffix(".toml") for path in PRESETS])
def test_a_preset_can_be_named_by_its_short_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here
    assert load_config(name) == load_config(Path(name)) == load_config(CONFIGS / f"{name}.toml")


def test_the_installed_presets_are_the_files_in_configs():
    assert preset_names() == tuple(path.removesuffix(".toml") for path in PRESETS)


def test_an_existing_file_beats_a_preset_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("preview").write_text("iterations = 3\n")
    assert load_config(Path("preview")).iterations == 3
    assert load_config(Path("preview")).max_side == Config().max_side  # the file, not the preset


@pytest.mark.parametrize("value", ["nonesuch", "sub/preview", "preview.toml"])
def test_an_unknown_config_names_the_value_and_the_presets(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    presets = ", ".join(path.removesuffix(".toml") for path in PRESETS)
    with pytest.raises(ConfigError, match=rf"^{re.escape(value)}: no such config file or preset \(presets: {presets}\)$"):
        load_config(Path(value))


def test_preview_preset_runs_a_first_frame_as_far_as_the_defaults_and_cuts_later_frames_and_training():
    # A first frame stopped short lets later frames carry on converging, and the shot drifts (issue 9).
    config = load_config(CONFIGS / "preview.toml")
    assert (config.first_iterations, config.rung_iterations, config.stop_tolerance) == (
        Config().first_iterations, Config().rung_iterations, Config().stop_tolerance)
    assert config.iterations < Config().iterations and config.max_side < Config().max_side
    assert config.train_iterations < Config().train_iterations  # the network engine trains shorter too
    assert replace(config, iterations=Config().iterations, max_side=Config().max_side,
                   train_iterations=Config().train_iterations) == Config()  # nothing else differs


def test_overrides_beat_the_file_and_none_keeps_it(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('iterations = 7\noptimizer = "adam"\n')
    config = load_config(path, iterations=None, first_iterations=3)
    assert (config.iterations, config.first_iterations, config.optimizer) == (7, 3, Optimizer.adam)


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("iteratons = 7\n")
    with pytest.raises(ConfigError, match=r"typo.toml: unknown key 'iteratons'"):
        load_config(path)


@pytest.mark.parametrize("text, key", [('iterations = "ten"', "iterations"), ("init = 3", "init"),
                                       ('init = "sideways"', "init"), ("style_weight = true", "style_weight"),
                                       ("coarse_to_fine = 1", "coarse_to_fine"), ('precision = "fp8"', "precision")])
def test_wrong_type_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=rf"bad.toml: key '{key}'"):
        load_config(path)


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="iterations must be positive"):
        load_config(iterations=0)
    with pytest.raises(ConfigError, match="style_layer_weights has 2 values"):
        replace(Config(), style_layer_weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("iterations = = 3")
    with pytest.raises(ConfigError, match="broken.toml: not a readable TOML file"):
        load_config(tmp_path / "broken.toml")


def test_enum_values_from_strings():
    assert load_config(init="prev").init == Init.prev


def test_speed_settings_load_and_are_checked(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text('coarse_to_fine = false\nprecision = "bf16"\nstop_tolerance = 0.01\ncompile = true\n')
    config = load_config(path)
    assert (config.coarse_to_fine, config.precision.value, config.stop_tolerance, config.compile) == (
        False, "bf16", 0.01, True)
    with pytest.raises(ConfigError, match="coarse_scale must be between 0 and 1"):
        load_config(coarse_scale=1.0)
    with pytest.raises(ConfigError, match="stop_tolerance must not be negative"):
        load_config(stop_tolerance=-0.1)
    with pytest.raises(ConfigError, match="stop_window must be positive"):
        load_config(stop_window=0)
