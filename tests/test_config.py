"""Config: paper defaults, presets, overrides and errors naming the file and key."""

from dataclasses import replace
from pathlib import Path

import pytest
from stylereel.pipeline.config import Config, Init, Optimizer, load_config
from stylereel.pipeline.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"


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


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_every_preset_loads(preset):
    assert isinstance(load_config(CONFIGS / preset), Config)


def test_default_preset_matches_the_dataclass():
    assert load_config(CONFIGS / "default.toml") == Config()


def test_preview_preset_runs_a_first_frame_as_far_as_the_defaults_and_cuts_later_frames():
    # A first frame stopped short lets later frames carry on converging, and the shot drifts (issue 9).
    config = load_config(CONFIGS / "preview.toml")
    assert (config.first_iterations, config.rung_iterations, config.stop_tolerance) == (
        Config().first_iterations, Config().rung_iterations, Config().stop_tolerance)
    assert config.iterations < Config().iterations and config.max_side < Config().max_side


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
