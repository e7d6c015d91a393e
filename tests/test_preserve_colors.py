"""--preserve-colors end to end: images, frame folders, videos, several styles, shots and resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import interrupt_on_call, make_video
from stylereel.pipeline import color, io, run, sequence
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import ConfigError, Interrupted

TINY = replace(Config(), max_side=32, first_iterations=4, iterations=2, device="cpu", style_weight=1e-2)
# The bound docs/quality.md states for luminance mode (mean a*b* difference to the content, CIELAB units).
LUMINANCE_BOUND = 3.0


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """Muted, smoothly varying colours: a content whose colours a saturated style moves away from."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [0.45 + 0.2 * np.sin(6 * x + 3 * y + phase) + 0.05 * rng.random((h, w)) for phase in (0, 2, 4)]
    return (np.stack(channels, -1) * 255).astype(np.uint8)


@pytest.fixture
def styles(tmp_path: Path) -> list[Path]:
    """Two strongly coloured styles: red/green stripes and a blue/yellow checkerboard."""
    y, x = np.mgrid[0:48, 0:48]
    stripes = np.stack([(np.sin(x / 2.0) > 0) * 255, (np.sin(x / 2.0) <= 0) * 220, np.full_like(x, 20)], -1)
    checks = ((x // 6 + y // 6) % 2)[..., None] * np.array([240, 220, 0]) + (1 - (x // 6 + y // 6) % 2)[..., None] * np.array([0, 40, 255])
    paths = [tmp_path / "stripes.png", tmp_path / "checks.png"]
    for path, array in zip(paths, (stripes, checks)):
        io.write_image(path, array.astype(np.uint8))
    return paths


def _difference(output: np.ndarray, content: np.ndarray) -> float:
    return float(color.chroma_difference(io.to_tensor(output), io.to_tensor(content)))


def test_luminance_keeps_the_content_colours_of_an_image(tmp_path, styles):
    content = tmp_path / "content.png"
    io.write_image(content, _texture(24, 32, 0))
    differences = {}
    for mode in ("none", "luminance"):
        output = tmp_path / f"{mode}.png"
        # 12 iterations: from this content L-BFGS keeps no curvature pair for the first few, and its
        # steps stay short until it does (colour difference without the mode: 0.28 after 4, 12.2 after 12).
        run.stylize_image(content, styles[:1], output, replace(TINY, preserve_colors=mode, first_iterations=12))
        differences[mode] = _difference(io.read_image(output), io.read_image(content))
    assert differences["luminance"] <= LUMINANCE_BOUND
    assert differences["luminance"] <= 0.3 * differences["none"]


def test_histogram_grams_come_from_the_style_mapped_to_the_first_frame_of_each_shot(tmp_path, styles, monkeypatch):
    seen = []
    original = color.style_for
    monkeypatch.setattr(color, "style_for", lambda mode, style, content: seen.append(content.clone()) or original(mode, style, content))
    folder = tmp_path / "shots"
    folder.mkdir()
    first, cut = _texture(24, 32, 1), np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for name, frame in (("1", first), ("2", first), ("3", cut), ("4", cut)):
        io.write_image(folder / f"{name}.png", frame)
    summary = run.stylize_frames(folder, styles, tmp_path / "out", replace(TINY, preserve_colors="histogram", passes=2))
    assert [f.scene_cut for f in summary.frames] == [False, False, True, False]
    # Per pass, two shots x two styles x the ladder's sizes, each mapped to its shot's first frame
    # only; the second pass runs backward, so it meets the second shot first.
    per_shot = 2 * len(sequence.ladder((24, 32), TINY))
    assert len(seen) == 4 * per_shot
    order = [first, cut, cut, first]
    for number, shot in enumerate(order):
        assert all(torch.equal(c, io.to_tensor(shot)) for c in seen[per_shot * number : per_shot * (number + 1)])


def test_histogram_shot_session_matches_grams_of_the_recoloured_style(styles):
    config = replace(TINY, preserve_colors="histogram", coarse_to_fine=False)
    session = sequence.prepare_session(config, styles, size=(24, 32))
    frame = io.to_tensor(_texture(24, 32, 3))
    shot = sequence.shot_session(session, frame)
    expected = sequence.style_grams(session.model, [color.match_colors(s, frame).clamp(0, 1) for s in session.styles],
                                    (), config)
    for name in config.style_layers:
        assert torch.allclose(shot.grams[name], expected[name])
        assert not torch.allclose(shot.grams[name], session.grams[name])
    plain = replace(session, config=TINY)
    assert sequence.shot_session(plain, frame) is plain  # none: the session itself, no Grams recomputed


def test_luminance_video_with_two_styles_and_two_passes_keeps_colours_timing_and_audio(tmp_path, styles):
    clip = make_video(tmp_path / "clip.mp4", n_frames=3)
    output = tmp_path / "out.mp4"
    run.stylize_video(clip.path, styles, output, replace(TINY, preserve_colors="luminance", passes=2))
    with av.open(str(output)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        kinds = [s.type for s in container.streams]
    assert len(frames) == 3 and kinds == ["video", "audio"]
    contents = [frame.image for frame in io.read_video(clip.path, max_side=32)]
    for stylized, content in zip(frames, contents):
        # H.264 4:2:0 subsampling blurs the colours of this 32 px clip a little.
        assert _difference(stylized, content) <= LUMINANCE_BOUND + 2



@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_resume_checks_the_mode_and_continues_to_the_same_frames(tmp_path, styles, monkeypatch, mode):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(4):
        io.write_image(folder / f"{index + 1}.png", np.roll(_texture(24, 32, 4), 2 * index, axis=1))
    config = replace(TINY, preserve_colors=mode)
    run.stylize_frames(folder, styles, tmp_path / "whole", config)
    interrupt_on_call(monkeypatch, 3)  # frame 3 stops: the resume is inside the first shot
    with pytest.raises(Interrupted, match=r"after 2 frame\(s\)"):
        run.stylize_frames(folder, styles, tmp_path / "parts", config)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="preserve_colors differ"):
        run.stylize_frames(folder, styles, tmp_path / "parts", TINY, resume=True)
    run.stylize_frames(folder, styles, tmp_path / "parts", config, resume=True)
    for index in range(4):  # the resumed chain uses the same shot Grams and colours
        name = f"{index + 1}.png"
        assert np.array_equal(io.read_image(tmp_path / "parts" / name), io.read_image(tmp_path / "whole" / name))
