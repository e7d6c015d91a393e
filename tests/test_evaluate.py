"""The flicker metric on clips whose answer is known, and the evaluate command."""

import json

import cv2
import numpy as np
import pytest
from conftest import write_lossless_clip
from stylereel.cli.main import app
from stylereel.pipeline.evaluate import evaluate_video, warp_error
from typer.testing import CliRunner


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 200 + 20).astype(np.uint8)



def test_static_clip_gives_zero():
    frame = _texture(32, 48, 0)
    assert warp_error([frame] * 4, [frame] * 4) == pytest.approx(0.0, abs=1e-9)


def test_a_pan_explained_by_the_flow_gives_almost_zero_and_flicker_does_not():
    wide = _texture(40, 80, 1)
    pan = [np.ascontiguousarray(wide[:, 2 * t: 2 * t + 48]) for t in range(4)]  # 2 px per frame
    steady = warp_error(pan, pan)
    rng = np.random.default_rng(2)
    flicker = [np.clip(f.astype(int) + rng.integers(-40, 40, f.shape), 0, 255).astype(np.uint8) for f in pan]
    assert steady < 1e-3
    assert warp_error(flicker, pan) > 10 * steady


def test_evaluate_video_and_cli(tmp_path):
    frame = _texture(32, 48, 3)
    content = write_lossless_clip(tmp_path / "content.mkv", [frame] * 3)
    stylized = write_lossless_clip(tmp_path / "stylized.mkv", [255 - frame] * 3)
    result = evaluate_video(content, stylized)
    assert result.n_frames == 3 and (result.width, result.height) == (48, 32)
    assert result.warp_error == pytest.approx(0.0, abs=1e-9)
    assert result.style_loss is None
    style = tmp_path / "style.png"
    cv2.imwrite(str(style), _texture(32, 32, 4))
    output = CliRunner().invoke(app, ["evaluate", str(content), str(stylized), "-s", str(style), "--json"])
    assert output.exit_code == 0, output.output
    data = json.loads(output.stdout)
    assert data["warp_error"] == pytest.approx(0.0, abs=1e-9) and data["style_loss"] > 0


def test_evaluate_refuses_a_missing_video(tmp_path):
    output = CliRunner().invoke(app, ["evaluate", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")])
    assert output.exit_code == 2 and "a.mp4" in output.output


def test_evaluate_a_known_pan_and_the_content_loss(tmp_path):
    wide = _texture(32, 72, 5)
    pan = [np.ascontiguousarray(wide[:, 12 - 3 * t: 60 - 3 * t]) for t in range(4)]  # content moves 3 px right
    content = write_lossless_clip(tmp_path / "content.mkv", pan)
    style = tmp_path / "style.png"
    cv2.imwrite(str(style), _texture(32, 32, 4))
    # A result that moves with the content is as steady as the content; one that stays put is not.
    follows = write_lossless_clip(tmp_path / "follows.mkv", [255 - frame for frame in pan])
    stays = write_lossless_clip(tmp_path / "stays.mkv", [255 - pan[0]] * 4)
    moving = evaluate_video(content, follows, [style])
    still = evaluate_video(content, stays)
    assert moving.content_warp_error < 1e-3 and moving.warp_error < 2 * moving.content_warp_error + 1e-4
    assert still.warp_error > 10 * moving.warp_error
    # The content loss is zero for the content itself and grows with the distance from it.
    itself = evaluate_video(content, content, [style])
    assert itself.content_loss == 0.0 and moving.content_loss > 0
    assert itself.style_loss > 0
