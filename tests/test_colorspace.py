"""Colour matrices of video: untagged inputs decode as players show them, outputs say what they hold.

An untagged Y'CbCr stream is BT.709 when taller than 576 lines (HD) and BT.601 otherwise (SD), as
players assume; tagged streams are decoded by their tags. Clips here are written from Y'CbCr
planes computed with the matrix's own equations (not by swscale, the code under test), lossless
(FFV1) and without colour tags, so a shifted matrix shows as shifted patches.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from stylereel.pipeline import io, run
from stylereel.pipeline.config import Config, Init

# RGB patches in a 2x2 grid: top-left, top-right, bottom-left, bottom-right.
PATCHES = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128)], np.uint8)
LUMA_WEIGHTS = {"BT.709": (0.2126, 0.0722), "BT.601": (0.299, 0.114)}  # (Kr, Kb) of each matrix
AVCOL_SPC = {"BT.709": 1, "BT.601": 6}  # the tag FFmpeg writes for each (AVCOL_SPC_BT709, _SMPTE170M)
UNTAGGED = 2  # AVCOL_SPC_UNSPECIFIED
TOLERANCE = 3  # levels, after one Y'CbCr -> RGB: 8-bit Y'CbCr rounding (~1) and swscale's fast conversion (~2)
# levels, after decode, encode (lossy: H.264 crf 18, VP9 crf 31) and decode; a wrong matrix is 10-27 off
ROUND_TRIP_TOLERANCE = 6
AVCOL_SPC_RGB = 0  # the tag of RGB streams, which have no matrix
# Colour matrix and range tags (AVCOL_SPC_*, AVCOL_RANGE_*) -> swscale's names, for `decode_as_tagged`.
SWS_MATRIX = {1: "ITU709", 5: "ITU601", 6: "SMPTE170M"}
SWS_RANGE = {1: "MPEG", 2: "JPEG"}
# Style weight 0 from the content keeps the content: the output's colours are the input's.
KEEP_CONTENT = Config(max_side=64, first_iterations=4, iterations=2, device="cpu", settle=False, style_weight=0.0,
                      tv_weight=0.0, init=Init.content, coarse_to_fine=False, max_frames=2)


def patch_image(width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB: the four `PATCHES` in a 2x2 grid split at even coordinates."""
    left, top = width // 4 * 2, height // 4 * 2  # even, so each 2x2 chroma block is inside one patch
    image = np.empty((height, width, 3), np.uint8)
    image[:top, :left], image[:top, left:], image[top:, :left], image[top:, left:] = PATCHES
    return image


def yuv420_planes(image: np.ndarray, matrix: str) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> yuv420p planes stacked as (H * 3 // 2, W), limited range, by `matrix`.

    The equations of BT.601/BT.709 with 8-bit studio levels (Y' 16-235, Cb/Cr 16-240); chroma is
    taken from each 2x2 block's top-left pixel, exact for the 2x2-aligned patches of `patch_image`.
    """
    kr, kb = LUMA_WEIGHTS[matrix]
    red, green, blue = np.moveaxis(image / 255, -1, 0)  # each (H, W)
    luma = kr * red + (1 - kr - kb) * green + kb * blue
    cb, cr = (blue - luma) / (2 * (1 - kb)), (red - luma) / (2 * (1 - kr))
    planes = [16 + 219 * luma, 128 + 224 * cb[::2, ::2], 128 + 224 * cr[::2, ::2]]  # (H, W), 2 x (H/2, W/2)
    return np.concatenate([plane.ravel() for plane in planes]).round().astype(np.uint8).reshape(-1, image.shape[1])


def write_patch_clip(path: Path, width: int, height: int, matrix: str, *, tagged: bool = False) -> Path:
    """A 3-frame lossless FFV1 .mkv of `patch_image` coded with `matrix`; colour tags only if `tagged`."""
    planes = yuv420_planes(patch_image(width, height), matrix)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if tagged:
            stream.codec_context.colorspace, stream.codec_context.color_range = AVCOL_SPC[matrix], 1
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def colour_tag(path: Path) -> int:
    """The first frame's matrix tag (AVCOL_SPC_*) as FFmpeg decodes it."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).colorspace


def decode_as_tagged(path: Path) -> list[np.ndarray]:
    """uint8 (H, W, 3) RGB frames decoded with the matrix and range the stream's tags name.

    Raises KeyError for a Y'CbCr stream without a matrix or range tag: an output must say what it holds.
    """
    with av.open(str(path)) as container:
        return [_rgb_as_tagged(frame) for frame in container.decode(video=0)]


def _rgb_as_tagged(frame: av.VideoFrame) -> np.ndarray:
    if frame.colorspace == AVCOL_SPC_RGB:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(format="rgb24", src_colorspace=SWS_MATRIX[frame.colorspace],
                          src_color_range=SWS_RANGE[frame.color_range]).to_ndarray()


def patch_errors(image: np.ndarray) -> np.ndarray:
    """Largest difference in levels per patch and channel (4, 3) over each patch's central half,
    away from the edges that chroma subsampling and resizing blur."""
    height, width = image.shape[:2]
    left, top = width // 4 * 2, height // 4 * 2
    errors = []
    quadrants = [(rows, columns) for rows in ((0, top), (top, height)) for columns in ((0, left), (left, width))]
    for index, ((y0, y1), (x0, x1)) in enumerate(quadrants):
        margin_y, margin_x = (y1 - y0) // 4, (x1 - x0) // 4
        centre = image[y0 + margin_y : y1 - margin_y, x0 + margin_x : x1 - margin_x].astype(int)  # (h, w, 3)
        errors.append(np.abs(centre - PATCHES[index]).max(axis=(0, 1)))  # (3,)
    return np.stack(errors)  # (4, 3)


@pytest.mark.parametrize(
    ("width", "height", "matrix"),
    [(1280, 720, "BT.709"), (64, 578, "BT.709"), (64, 576, "BT.601"), (640, 480, "BT.601")],
    ids=["720p", "578-lines", "576-lines", "480p"],
)
def test_untagged_clip_decodes_with_the_matrix_its_height_implies(tmp_path, width, height, matrix) -> None:
    clip = write_patch_clip(tmp_path / "untagged.mkv", width, height, matrix)
    assert colour_tag(clip) == UNTAGGED
    frames = list(io.read_video(clip, max_side=None))
    assert len(frames) == 3
    for frame in frames:
        assert frame.image.shape == (height, width, 3)
        assert patch_errors(frame.image).max() <= TOLERANCE, patch_errors(frame.image)


@pytest.mark.parametrize(
    ("width", "height", "matrix"), [(64, 720, "BT.601"), (64, 480, "BT.709")], ids=["HD-601", "SD-709"]
)
def test_tagged_clip_decodes_with_its_tagged_matrix_whatever_its_height(tmp_path, width, height, matrix) -> None:
    clip = write_patch_clip(tmp_path / "tagged.mkv", width, height, matrix, tagged=True)
    assert colour_tag(clip) == AVCOL_SPC[matrix]
    image = next(io.read_video(clip, max_side=None)).image
    assert patch_errors(image).max() <= TOLERANCE, patch_errors(image)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".mkv"])
@pytest.mark.parametrize(("width", "height"), [(32, 32), (32, 592)], ids=["SD", "HD"])
def test_written_video_decodes_as_its_tags_say(tmp_path, suffix, width, height) -> None:
    output = tmp_path / f"patches{suffix}"
    with io.VideoWriter(output, width=width, height=height, time_base=Fraction(1, 25), rate=Fraction(25)) as writer:
        for pts in range(2):
            writer.write(patch_image(width, height), pts)
    assert colour_tag(output) == (AVCOL_SPC_RGB if suffix == ".mkv" else AVCOL_SPC["BT.709"])
    for image in decode_as_tagged(output):
        assert patch_errors(image).max() <= ROUND_TRIP_TOLERANCE, patch_errors(image)


@pytest.mark.parametrize(("width", "height", "matrix"), [(1280, 720, "BT.709"), (640, 480, "BT.601")], ids=["HD", "SD"])
def test_stylized_untagged_clip_keeps_its_colours(tmp_path, style, width, height, matrix) -> None:
    # Style weight 0 from the content: the output, decoded as its tags say, shows the input's patches.
    clip = write_patch_clip(tmp_path / "untagged.mkv", width, height, matrix)
    output = tmp_path / "stylized.mp4"
    run.stylize_video(clip, [style], output, KEEP_CONTENT)
    frames = decode_as_tagged(output)
    assert len(frames) == 2
    for image in frames:
        assert patch_errors(image).max() <= ROUND_TRIP_TOLERANCE, patch_errors(image)
