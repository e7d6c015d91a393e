"""The preview sheet: grid, labels, frame choice, both engines' time estimates, and bad --vary values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_lossless_clip
from stylereel.cli.main import app
from stylereel.pipeline import io, preview, run
from stylereel.pipeline.config import Config, PreserveColors
from stylereel.pipeline.errors import ConfigError, InputError
from stylereel.pipeline.events import CellDone, PreviewStarted
from typer.testing import CliRunner

FAST = Config(max_side=32, first_iterations=2, iterations=1, device="cpu", coarse_to_fine=False)


@pytest.fixture
def preset(tmp_path: Path) -> Path:
    """A preview preset for tests: 32 px cells, two iterations."""
    path = tmp_path / "tiny.toml"
    path.write_text("max_side = 32\nfirst_iterations = 2\niterations = 1\n")
    return path


@pytest.fixture
def styles(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = [tmp_path / "red.png", tmp_path / "noise.png"]
    io.write_image(paths[0], np.tile(np.array([255, 30, 30], np.uint8), (40, 40, 1)) ^ (rng.random((40, 40, 1)) * 60).astype(np.uint8))
    io.write_image(paths[1], (rng.random((40, 40, 3)) * 255).astype(np.uint8))
    return paths


def _content(tmp_path: Path) -> tuple[Path, np.ndarray]:
    y, x = np.mgrid[0:24, 0:32]
    image = np.stack([x * 8, y * 10, (x + y) * 4], -1).astype(np.uint8)
    path = tmp_path / "content.png"
    io.write_image(path, image)
    return path, image


def _shots_clip(path: Path) -> list[np.ndarray]:
    """8 lossless frames: a gradient panning 1 px a frame (frames 0-4), then noise (a cut at frame 5)."""
    y, x = np.mgrid[0:24, 0:32]
    rng = np.random.default_rng(1)
    frames = [np.stack([(x + t) * 7 % 256, y * 10, np.full_like(x, 90)], -1).astype(np.uint8) for t in range(5)]
    frames += [(rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(3)]
    write_lossless_clip(path, frames)
    return frames


def test_parse_vary_reads_each_key_with_its_type():
    vary = preview.parse_vary(["style_weight=1e-4,1e-3", "preserve-colors=none,luminance", "tv_weight=0",
                               "style_scale=0.5,1", "first_iterations=3"])
    assert vary == {"style_weight": [1e-4, 1e-3], "preserve_colors": ["none", "luminance"], "tv_weight": [0.0],
                    "style_scale": [0.5, 1.0], "first_iterations": [3]}


@pytest.mark.parametrize("item, words", [
    ("temporal_weight=1,2", "cannot vary 'temporal_weight'"),
    ("colour=1", "cannot vary 'colour'"),
    ("style_weight=abc", "'abc' is not a valid style_weight"),
    ("style_weight=-1", "style_weight must not be negative"),
    ("preserve_colors=sepia", "preserve_colors must be one of none, luminance, histogram"),
    ("style_weight", "expected style_weight=VALUE1,VALUE2"),
    ("first_iterations=2.5", "'2.5' is not a valid first_iterations"),
])
def test_parse_vary_refuses_bad_keys_and_values(item, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        preview.parse_vary([item])


def test_sheet_has_a_row_per_style_led_by_the_content(tmp_path, styles, preset):
    content, image = _content(tmp_path)
    events = []
    output = tmp_path / "sheet.png"
    summary = preview.preview_sheet(content, styles, output, FAST, vary=preview.parse_vary(["style_weight=1e-4,1e-2"]),
                                    preset=preset, callback=events.append)
    assert (summary.n_cells, summary.rows, summary.columns) == (6, 2, 3)
    assert [e.n_cells for e in events if isinstance(e, PreviewStarted)] == [4]
    assert [e.done for e in events if isinstance(e, CellDone)] == [1, 2, 3, 4]
    sheet = io.read_image(output)
    gap, width, height = preview.GAP, summary.cell_width, summary.cell_height
    assert sheet.shape == (2 * (height + gap) + gap, 3 * (width + gap) + gap, 3)
    for row in range(2):  # each row starts with the content frame, then stylized cells
        top = gap + row * (height + gap)
        assert np.array_equal(sheet[top : top + 24, gap : gap + 32], image)
        for column in (1, 2):
            left = gap + column * (width + gap)
            assert np.abs(sheet[top : top + 24, left : left + 32].astype(int) - image).mean() > 2
        label = sheet[top + 24 : top + height, gap + width + gap : gap + 2 * width + gap]
        assert (label < 128).any()  # the label is drawn under the cell
    assert summary.estimate.n_frames == 1 and summary.estimate.iterations == FAST.first_iterations
    assert summary.network is None  # an image has no clip to train on


def test_grid_lays_out_cells_row_by_row():
    cells = [np.full((10, 12, 3), value, np.uint8) for value in (10, 20, 30)]
    sheet = preview.grid(cells, [["a"], ["b"], ["c"]], columns=2)
    width, height = preview.cell_size(cells, [["a"], ["b"], ["c"]])
    gap = preview.GAP
    assert sheet.shape == (2 * (height + gap) + gap, 2 * (width + gap) + gap, 3)
    assert sheet[gap, gap + width + gap, 0] == 20 and sheet[gap + height + gap, gap, 0] == 30


def test_video_uses_the_middle_of_the_first_shot_or_the_frame_asked(tmp_path):
    clip = tmp_path / "shots.mkv"
    frames = _shots_clip(clip)
    index, image = preview.pick_frame(clip, FAST, None, lambda event: None)
    assert index == 2 and np.array_equal(image, frames[2])
    index, image = preview.pick_frame(clip, FAST, 6, lambda event: None)
    assert index == 6 and np.array_equal(image, frames[6])
    with pytest.raises(InputError, match="--frame 8 is outside the video"):
        preview.pick_frame(clip, FAST, 8, lambda event: None)


def test_estimate_counts_the_budget_of_every_frame_and_pass(tmp_path, styles):
    clip = tmp_path / "shots.mkv"
    _shots_clip(clip)
    config = Config(max_side=32, first_iterations=20, iterations=5, passes=2, device="cpu", coarse_to_fine=False)
    estimate, network = preview.estimate(clip, styles, config, frame=0)
    assert estimate.n_frames == 8 and (estimate.width, estimate.height) == (32, 24)
    assert estimate.iterations == 20 + 7 * 5 + 8 * 5
    assert estimate.seconds == pytest.approx(estimate.timings.iteration * estimate.iterations)
    assert "20 on the first frame" in estimate.rests_on and "upper bound" in estimate.rests_on
    assert network is None  # the network engine makes one pass


def test_a_video_also_gets_the_network_engines_estimate(tmp_path, styles):
    clip = tmp_path / "shots.mkv"
    _shots_clip(clip)
    config = Config(max_side=32, device="cpu", coarse_to_fine=False, train_iterations=50, refine=2)
    estimate, network = preview.estimate(clip, styles, config, frame=0)
    timings = network.timings
    assert network.engine == "network" and network.n_frames == 8 and network.train_steps == 50
    assert timings.train_step > 0 and timings.paint > 0 and timings.iteration == estimate.timings.iteration
    assert network.seconds == pytest.approx(50 * timings.train_step + 8 * timings.paint + 8 * 2 * timings.iteration)
    assert "x 50 steps" in network.rests_on and "(--refine)" in network.rests_on


def test_a_missing_style_is_refused_before_the_frame_is_searched(tmp_path, preset, monkeypatch):
    monkeypatch.setattr(preview, "pick_frame", lambda *a, **k: pytest.fail("frame search started"))
    clip = tmp_path / "shots.mkv"
    _shots_clip(clip)
    with pytest.raises(InputError, match="nope.png"):
        preview.preview_sheet(clip, [tmp_path / "nope.png"], tmp_path / "s.png", FAST, vary={}, preset=preset)


def test_an_image_with_frame_is_refused(tmp_path, styles, preset):
    content, _ = _content(tmp_path)
    with pytest.raises(InputError, match="--frame applies to videos"):
        preview.preview_sheet(content, styles, tmp_path / "s.png", FAST, vary={}, frame=3, preset=preset)


@pytest.mark.parametrize("vary, words", [
    ("bogus=1,2", "cannot vary 'bogus'"),
    ("style_weight=1e-4,lots", "'lots' is not a valid style_weight"),
    ("preserve_colors=sepia", "preserve_colors must be one of"),
])
def test_cli_bad_vary_is_one_line_exit_2_before_any_work(tmp_path, styles, monkeypatch, vary, words):
    monkeypatch.setattr(run, "prepare_session", lambda *a, **k: pytest.fail("work started"))
    content, _ = _content(tmp_path)
    output = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["preview", str(content), "-s", str(styles[0]), "--vary", vary, "-o", str(output)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.output
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "noise.png", "red.png"]


def test_cli_preview_writes_the_sheet_and_the_estimate(tmp_path, styles, preset, monkeypatch):
    monkeypatch.setattr(preview, "PREVIEW_PRESET", preset)
    content, _ = _content(tmp_path)
    output = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["preview", str(content), "-s", str(styles[0]), "--vary",
                                      "preserve_colors=none,luminance,histogram", "-o", str(output),
                                      "--max-side", "32", "--first-iterations", "3", "--device", "cpu",
                                      "--no-coarse-to-fine"])
    assert result.exit_code == 0, result.output
    labels = [["content"], *(["red", f"preserve_colors={mode.value}"] for mode in PreserveColors)]
    width, height = preview.cell_size([np.zeros((24, 32, 3), np.uint8)], labels)
    assert io.read_image(output).shape == (height + 2 * preview.GAP, 4 * (width + preview.GAP) + preview.GAP, 3)
    assert "estimate for the full run" in result.output and "3 on the first frame" in result.output
    assert "with --engine network" not in result.output  # an image


def test_cli_preview_of_a_video_gives_both_engines(tmp_path, styles, preset, monkeypatch):
    monkeypatch.setattr(preview, "PREVIEW_PRESET", preset)
    clip = tmp_path / "shots.mkv"
    _shots_clip(clip)
    result = CliRunner().invoke(app, ["preview", str(clip), "-s", str(styles[0]), "-o", str(tmp_path / "sheet.png"),
                                      "--max-side", "32", "--device", "cpu", "--no-coarse-to-fine"])
    assert result.exit_code == 0, result.output
    assert "estimate for the full run (8 frame(s) at 32x24 on cpu" in result.output
    assert "with --engine network: about " in result.output and f"x {Config().train_iterations} steps" in result.output


def test_a_full_run_size_too_small_for_vgg_is_one_error_line_before_any_cell(tmp_path):
    wide = tmp_path / "wide.png"
    io.write_image(wide, np.full((16, 64, 3), 100, np.uint8))
    style = tmp_path / "style.png"
    io.write_image(style, np.full((32, 32, 3), 200, np.uint8))
    result = CliRunner().invoke(app, [str(a) for a in (
        "preview", wide, "-s", style, "-o", tmp_path / "sheet.png", "--max-side", 32, "-q")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: {wide}: frames would be 32x8 at --max-side 32, but VGG-19 needs at least 16 px on the short side; "
        "use a larger --max-side"]
    assert not (tmp_path / "sheet.png").exists()
