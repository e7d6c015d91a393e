"""The coarse-to-fine ladder a shot's first frame climbs: a pure function of the frame size."""

from dataclasses import replace

import pytest
from stylereel.pipeline.config import Config
from stylereel.pipeline.sequence import ladder, rung_budgets


@pytest.mark.parametrize("size, rungs", [
    ((72, 128), [(36, 64), (72, 128)]),  # the preview preset: one coarse pass, as before the ladder
    ((288, 512), [(144, 256), (288, 512)]),  # the default size: 256 px, then 512
    ((576, 1024), [(144, 256), (288, 512), (576, 1024)]),
    ((1080, 1920), [(135, 240), (270, 480), (540, 960), (1080, 1920)]),  # 1080p: 240 px is the first at most 256
    ((2160, 3840), [(135, 240), (270, 480), (540, 960), (1080, 1920), (2160, 3840)]),
    ((64, 96), [(32, 48), (64, 96)]),
    ((24, 32), [(24, 32)]),  # 12x16 would be too small for conv5_1
])
def test_rungs_halve_down_to_the_smallest_size(size, rungs):
    assert ladder(size, Config()) == rungs


def test_rungs_follow_coarse_side_and_coarse_scale():
    assert ladder((1080, 1920), replace(Config(), coarse_side=512)) == [(270, 480), (540, 960), (1080, 1920)]
    root_half = replace(Config(), coarse_scale=0.5 ** 0.5)
    assert ladder((576, 1024), root_half) == [(144, 256), (204, 362), (288, 512), (407, 724), (576, 1024)]


def test_no_coarse_to_fine_is_one_rung():
    assert ladder((1080, 1920), replace(Config(), coarse_to_fine=False)) == [(1080, 1920)]


def test_a_rung_too_small_for_the_network_is_left_out():
    assert ladder((40, 5000), Config()) == [(20, 2500), (40, 5000)]  # 10 px would be under conv5_1's 16
    # conv3_1 is behind 2 pools: it needs 4 px on the short side.
    shallow = replace(Config(), content_layer="conv3_1", style_layers=("conv1_1", "conv3_1"), style_layer_weights=(1, 1))
    assert ladder((40, 5000), shallow) == [(5, 625), (10, 1250), (20, 2500), (40, 5000)]


def test_rungs_above_the_first_get_rung_iterations_at_most_first_iterations():
    assert rung_budgets(3, Config()) == [300, 100, 100]
    assert rung_budgets(2, replace(Config(), first_iterations=40)) == [40, 40]  # the preview preset: as before
    assert rung_budgets(1, replace(Config(), coarse_to_fine=False)) == [300]


def test_a_piece_of_a_shot_keeps_the_colours_of_the_shots_first_frame(monkeypatch, tmp_path):
    # A Ray chunk that starts inside a shot maps the style to the shot's first frame, as the local
    # chain did when it started that shot (`--preserve-colors histogram`), and names the video's frames.
    import numpy as np
    import torch
    from stylereel.pipeline import io, sequence
    from stylereel.pipeline.checkpoint import Resume

    rng = np.random.default_rng(0)
    style = tmp_path / "style.png"
    io.write_image(style, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    config = Config(max_side=32, first_iterations=2, iterations=2, device="cpu", preserve_colors="histogram")
    session = sequence.prepare_session(config, [style], size=(32, 32))
    mapped_to, original = [], sequence.shot_session
    monkeypatch.setattr(sequence, "shot_session", lambda session, first: mapped_to.append(first) or original(session, first))
    steps = list(sequence.stylize_sequence(session, frames[1:], lambda event: None, Resume(),
                                           first_index=5, shot_first=frames[0]))
    assert torch.equal(mapped_to[0], io.to_tensor(frames[0]))
    assert [step.record.index for step in steps] == [5, 6]
