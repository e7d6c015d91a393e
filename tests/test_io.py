"""Tests for stylereel.pipeline.io: converters, images, frame folders, video decode and encode.

Order per function (kornia): smoke, cardinality, exception, feature. Media are made by the
factories in conftest.py, tiny and under tmp_path.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import NTSC, Clip, blob_frames, make_audio, make_image, make_video, png_header
from PIL import Image
from stylereel.pipeline.errors import InputError, OutputError
from stylereel.pipeline.io import (
    FORMATS,
    IMAGE_SUFFIXES,
    VideoWriter,
    default_output,
    fit_size,
    list_frames,
    natural_key,
    output_format,
    probe_video,
    read_frames,
    read_image,
    read_video,
    to_array,
    to_tensor,
    upright,
    write_image,
)

NTSC_TIMING = {"time_base": Fraction(1, 30000), "rate": NTSC}
PAL_TIMING = {"time_base": Fraction(1, 25), "rate": Fraction(25)}


def times(pts: list[int], time_base: Fraction) -> list[Fraction]:
    return [value * time_base for value in pts]


def read_back(path: Path) -> tuple[list[int], Fraction, list[np.ndarray]]:
    """Decode a file with plain PyAV: video pts, stream time base and RGB frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        images = [frame.to_ndarray(format="rgb24") for frame in frames]
        return [frame.pts for frame in frames], stream.time_base, images


def audio_samples(path: Path) -> tuple[str, int]:
    """Codec name and number of decoded samples of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.codec_context.name, sum(frame.samples for frame in container.decode(stream))


def pixel(image: np.ndarray, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(value) for value in image[y, x])


def mean_error(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


def folder_listing(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir())


# --- to_tensor / to_array -------------------------------------------------------------------------


def test_to_tensor_shape_dtype_range(seeded_rng: np.random.Generator) -> None:
    array = seeded_rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    tensor = to_tensor(array)
    assert tensor.shape == (1, 3, 6, 10)
    assert tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    assert tensor.min() >= 0 and tensor.max() <= 1
    assert tensor[0, 1, 2, 3] == pytest.approx(array[2, 3, 1] / 255)  # channel 1 is green


def test_to_array_round_trip(seeded_rng: np.random.Generator) -> None:
    array = seeded_rng.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    assert np.array_equal(to_array(to_tensor(array)), array)
    assert np.array_equal(to_array(to_tensor(array)[0]), array)  # (3, H, W) works too


def test_to_array_clamps_and_rounds() -> None:
    tensor = torch.tensor([-0.5, 0.5 / 255, 1.4 / 255, 2.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert to_array(tensor)[..., 0].tolist() == [[0, 0], [1, 255]]  # 0.5 rounds to even, 1.4 to 1


@pytest.mark.parametrize("shape", [(6, 10), (6, 10, 4), (1, 6, 10, 3)])
def test_to_tensor_rejects_bad_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        to_tensor(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(np.zeros((6, 10, 3), np.float32))


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (4, 4), (1, 1, 4, 4)])
def test_to_array_rejects_bad_tensors(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="3, H, W"):
        to_array(torch.zeros(shape))


# --- fit_size -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "even", "expected"),
    [
        ((48, 32), None, False, (48, 32)),
        ((48, 32), 24, True, (24, 16)),
        ((32, 48), 24, True, (16, 24)),
        ((100, 50), 15, False, (15, 8)),  # 7.5 rounds half up
        ((100, 50), 15, True, (16, 8)),  # even sides win over the exact longer side
        ((33, 17), None, True, (34, 18)),  # odd sizes round up to even
        ((1000, 3), 10, True, (10, 2)),  # never below 2 for yuv420p
        ((1000, 3), 10, False, (10, 1)),
        ((20, 10), 40, False, (40, 20)),  # upscales too
    ],
)
def test_fit_size(size: tuple[int, int], max_side: int | None, even: bool, expected: tuple[int, int]) -> None:
    assert fit_size(*size, max_side, even=even) == expected


def test_fit_size_rejects_nonpositive() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_size(0, 10, None, even=False)
    with pytest.raises(ValueError, match="max_side=0"):
        fit_size(10, 10, 0, even=False)


# --- read_image -----------------------------------------------------------------------------------


def test_read_image_png_exact(tmp_path: Path) -> None:
    expected = make_image(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    assert np.array_equal(image, expected)


def test_read_image_max_side(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png", size=(64, 32))
    assert read_image(tmp_path / "a.png", max_side=16).shape == (8, 16, 3)
    assert read_image(tmp_path / "a.png", max_side=128).shape == (64, 128, 3)


def test_read_image_jpeg_draft_keeps_exact_size(tmp_path: Path) -> None:
    halves = np.zeros((200, 400, 3), np.uint8)
    halves[:, :200] = (255, 0, 0)
    halves[:, 200:] = (0, 0, 255)
    Image.fromarray(halves).save(tmp_path / "big.jpg", quality=95)
    image = read_image(tmp_path / "big.jpg", max_side=50)  # decoded at 1/4 scale, then resized
    assert image.shape == (25, 50, 3)
    assert pixel(image, 12, 5) == pytest.approx((255, 0, 0), abs=12)
    assert pixel(image, 12, 45) == pytest.approx((0, 0, 255), abs=12)


def test_read_image_grayscale_and_palette(tmp_path: Path) -> None:
    make_image(tmp_path / "grey.png", mode="L")
    make_image(tmp_path / "palette.gif", mode="P")
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (24, 32, 3)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert read_image(tmp_path / "palette.gif").shape == (24, 32, 3)


def test_read_image_rgba_over_mid_grey(tmp_path: Path) -> None:
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # opaque red
    rgba[:, 4:8] = (0, 0, 255, 0)  # fully transparent
    rgba[:, 8:] = (255, 255, 255, 128)  # half-transparent white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    image = read_image(tmp_path / "alpha.png")
    assert pixel(image, 0, 0) == (255, 0, 0)
    assert pixel(image, 0, 5) == (128, 128, 128)
    assert pixel(image, 0, 9) == pytest.approx((192, 192, 192), abs=1)  # 128 + 127 * 128/255


def test_read_image_16bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 128 * 257, 65535, 1000]], np.uint16).repeat(8, axis=0).repeat(2, axis=1)  # (8, 8)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as saved:
        assert saved.mode.startswith("I")  # Pillow's 16-bit grey, which convert("L") would clip
    image = read_image(tmp_path / "deep.png")
    assert image[0, ::2, 0].tolist() == [0, 128, 255, 4]  # 1000 / 257 = 3.9


def test_read_image_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    make_image(tmp_path / "phone.jpg", size=(32, 16), quality=95, exif=exif)
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (32, 16, 3)
    assert pixel(image, 1, -2) == pytest.approx((255, 0, 0), abs=40)  # red corner moved to top-right


def test_read_image_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg", quality=95)
    image = read_image(tmp_path / "print.jpg")
    assert image.shape == (16, 16, 3)
    assert pixel(image, 8, 8) == pytest.approx((255, 0, 0), abs=8)


def test_read_image_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert pixel(read_image(tmp_path / "anim.gif"), 8, 8) == (255, 0, 0)


def test_read_image_too_small(tmp_path: Path) -> None:
    make_image(tmp_path / "tiny.png", size=(16, 5))
    with pytest.raises(InputError, match=r"tiny\.png: too small \(16x5 px"):
        read_image(tmp_path / "tiny.png")
    make_image(tmp_path / "wide.png", size=(200, 10))
    with pytest.raises(InputError, match=r"too small \(20x1 px"):
        read_image(tmp_path / "wide.png", max_side=20)


def test_read_image_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^.*nope\.png: no such file$"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(InputError, match=r"folder\.png: is a directory$"):
        read_image(tmp_path / "folder.png")


def test_read_image_text_file(tmp_path: Path) -> None:
    path = tmp_path / "style.png"
    path.write_text("not an image")
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert str(caught.value) == f"{path}: not a readable image (cannot identify image file)"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_read_image_truncated(tmp_path: Path, suffix: str) -> None:
    make_image(tmp_path / f"full{suffix}", size=(64, 64))
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"(?i)cut\{suffix}: not a readable image \(.*truncated"):
        read_image(tmp_path / f"cut{suffix}")


@pytest.mark.parametrize(("width", "height"), [(40000, 40000), (10000, 6000)])
def test_read_image_refuses_giant_header(tmp_path: Path, width: int, height: int) -> None:
    # 40000^2 trips Pillow's own bomb check; 60 MP is under Pillow's but over ours.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(InputError, match=r"bomb\.png: too large"):
        read_image(path)


# --- write_image ----------------------------------------------------------------------------------


def test_write_image_round_trip_leaves_no_temp(tmp_path: Path) -> None:
    array = blob_frames((32, 24), 1)[0]
    write_image(tmp_path / "out.png", array)
    assert folder_listing(tmp_path) == ["out.png"]
    assert np.array_equal(read_image(tmp_path / "out.png"), array)
    write_image(tmp_path / "out.jpg", array)
    assert read_image(tmp_path / "out.jpg").shape == (24, 32, 3)


def test_write_image_errors_leave_nothing(tmp_path: Path) -> None:
    array = blob_frames((32, 24), 1)[0]
    with pytest.raises(OutputError, match=r"out\.xyz: cannot write image"):
        write_image(tmp_path / "out.xyz", array)
    with pytest.raises(OutputError, match=r"missing/out\.png: cannot create file \(folder does not exist\)"):
        write_image(tmp_path / "missing" / "out.png", array)
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "out.png", array.astype(np.float32))
    assert folder_listing(tmp_path) == []


def test_write_image_interrupt_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out.png").write_bytes(b"old")

    def interrupted_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.png", blob_frames((32, 24), 1)[0])
    assert folder_listing(tmp_path) == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"old"


# --- frame folders --------------------------------------------------------------------------------


def test_natural_key_orders_numbers_and_ignores_case() -> None:
    names = ["10.png", "2.png", "Frame_10.png", "frame_2.PNG", "1.png", "b.png", "A.png"]
    ordered = sorted((Path(name) for name in names), key=natural_key)
    expected = ["1.png", "2.png", "10.png", "A.png", "b.png", "frame_2.PNG", "Frame_10.png"]
    assert [path.name for path in ordered] == expected


def test_list_frames_skips_non_images(tmp_path: Path) -> None:
    for name in ("10.png", "2.JPG", "1.webp"):
        make_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "sub").mkdir()
    frames, skipped = list_frames(tmp_path)
    assert [path.name for path in frames] == ["1.webp", "2.JPG", "10.png"]
    assert [path.name for path in skipped] == ["notes.txt"]


def test_list_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope: no such folder"):
        list_frames(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"file\.png: not a folder"):
        list_frames(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("")
    with pytest.raises(InputError, match=r"empty: no images \(\.png"):
        list_frames(tmp_path / "empty")
    assert ".gif" in IMAGE_SUFFIXES


def test_read_frames_match_first_size(tmp_path: Path) -> None:
    make_image(tmp_path / "1.png", size=(32, 24))
    make_image(tmp_path / "2.png", size=(32, 24))
    make_image(tmp_path / "3.png", size=(40, 20))
    paths, _ = list_frames(tmp_path)
    frames = read_frames(paths, max_side=16)
    shapes = [frame.shape for frame in frames]
    assert shapes == [(12, 16, 3)] * 3
    assert frames.resized == [tmp_path / "3.png"]


# --- probe_video ----------------------------------------------------------------------------------


def test_probe_video(clip: Clip) -> None:
    info = probe_video(clip.path)
    assert (info.width, info.height, info.n_frames, info.rotation) == (48, 32, 4, 0)
    assert info.time_base == Fraction(1, 30000) and info.average_rate == NTSC
    assert info.has_audio and info.audio_codec == "aac"


def test_probe_video_estimates_frames_without_count(lossless_clip: Clip) -> None:
    info = probe_video(lossless_clip.path)  # Matroska stores no frame count
    assert info.n_frames == 4 and not info.has_audio and info.audio_codec is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"", "not a video file (Invalid data found when processing input)"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a video file ("),
        (b"this is a text file, honest\n" * 20, "not a video file ("),
    ],
)
def test_probe_video_bad_files(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        probe_video(path)
    assert str(caught.value).startswith(f"{path}: {problem}")


def test_probe_video_directory_and_audio_only(tmp_path: Path) -> None:
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(InputError, match=r"dir\.mp4: is a directory$"):
        probe_video(tmp_path / "dir.mp4")
    path = make_audio(tmp_path / "song.m4a")
    with pytest.raises(InputError) as caught:
        probe_video(path)
    assert str(caught.value) == f"{path}: no video stream"


def test_default_output() -> None:
    assert default_output(Path("in/clip.mov")) == Path("in/clip.stylized.mp4")


# --- read_video -----------------------------------------------------------------------------------


def test_read_video_lossless_frames_exact(lossless_clip: Clip) -> None:
    frames = read_video(lossless_clip.path, max_side=None)
    decoded = list(frames)
    assert len(decoded) == 4 and frames.error is None
    assert [frame.index for frame in decoded] == [0, 1, 2, 3]
    pairs = zip(decoded, lossless_clip.frames)
    assert all(np.array_equal(frame.image, expected) for frame, expected in pairs)
    decoded_times = times([frame.pts for frame in decoded], decoded[0].time_base)
    assert decoded_times == times(lossless_clip.pts, lossless_clip.time_base)


def test_read_video_h264_count_size_pts(clip: Clip) -> None:
    decoded = list(read_video(clip.path, max_side=None))
    assert [frame.pts for frame in decoded] == [0, 1001, 2002, 3003]
    assert decoded[0].time_base == Fraction(1, 30000)
    assert all(mean_error(frame.image, expected) < 2 for frame, expected in zip(decoded, clip.frames))


def test_read_video_resizes_to_even_size(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "c.mp4", size=(64, 36), with_audio=False)
    decoded = list(read_video(clip.path, max_side=25))
    assert {frame.image.shape for frame in decoded} == {(14, 26, 3)}  # 25 x 14.06 -> even 26 x 14


def test_read_video_max_frames(clip: Clip) -> None:
    assert len(list(read_video(clip.path, max_side=None, max_frames=2))) == 2
    with pytest.raises(ValueError, match="max_frames"):
        read_video(clip.path, max_side=None, max_frames=0)


def test_read_video_full_range_not_squashed(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "full.mp4", full_range=True, with_audio=False)
    decoded = list(read_video(clip.path, max_side=None))
    assert all(mean_error(frame.image, expected) < 2 for frame, expected in zip(decoded, clip.frames))


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_read_video_applies_display_rotation(tmp_path: Path, rotation: int) -> None:
    clip = make_video(tmp_path / "phone.mov", codec="png", rotation=rotation, with_audio=False)
    info = probe_video(clip.path)
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == ((48, 32) if rotation == 180 else (32, 48))
    decoded = list(read_video(clip.path, max_side=None))
    assert np.array_equal(decoded[0].image, np.rot90(clip.frames[0], k=rotation // 90))


def test_upright_turns_counter_clockwise() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # marker top-left
    assert upright(image, 90)[2, 0, 0] == 255  # counter-clockwise: top-left goes to bottom-left
    assert upright(image, -90)[0, 1, 0] == 255  # phones' portrait: top-left goes to top-right
    assert upright(image, 180)[1, 2, 0] == 255
    assert upright(image, 0) is not None and upright(image, 0)[0, 0, 0] == 255


def cut_at_packet(clip: Clip, index: int) -> Path:
    """A copy of the clip cut 10 bytes into its `index`-th video packet."""
    with av.open(str(clip.path)) as container:
        positions = [packet.pos for packet in container.demux(video=0) if packet.size]
    cut = clip.path.with_name(f"cut{clip.path.suffix}")
    cut.write_bytes(clip.path.read_bytes()[: positions[index] + 10])
    return cut


def test_read_video_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_video(tmp_path / "missing.mp4", max_side=None)
    cut = cut_at_packet(make_video(tmp_path / "c.mkv", with_audio=False), 0)
    frames = read_video(cut, max_side=None)  # probing works: the header is intact
    with pytest.raises(InputError, match=r"cut\.mkv: no decodable video frames"):
        next(frames)


def test_read_video_truncated_file_gives_whole_frames(lossless_clip: Clip) -> None:
    frames = read_video(cut_at_packet(lossless_clip, 2), max_side=None)
    assert len(list(frames)) == 2 and frames.error is None


# --- VideoWriter ----------------------------------------------------------------------------------


def copy_clip(source: Path, target: Path, *, audio: bool = True) -> VideoWriter:
    """Decode `source` and encode it to `target` unchanged, as the stylizer would."""
    info = probe_video(source)
    frames = read_video(source, max_side=None)
    width, height = frames.size
    timing = {"time_base": info.time_base, "rate": info.average_rate}
    audio_from = source if audio else None
    with VideoWriter(target, width=width, height=height, **timing, audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return writer


def test_writer_round_trip_keeps_ntsc_pts(clip: Clip, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    writer = copy_clip(clip.path, target, audio=False)
    assert writer.audio_mode == "none" and writer.n_written == 4
    pts, time_base, frames = read_back(target)
    assert pts == [0, 1001, 2002, 3003] and time_base == Fraction(1, 30000)
    assert probe_video(target).average_rate == NTSC
    assert frames[0].shape == (32, 48, 3)
    assert all(mean_error(frame, expected) < 3 for frame, expected in zip(frames, clip.frames))
    assert folder_listing(tmp_path) == ["clip.mp4", "out.mp4"]


def test_writer_keeps_variable_frame_rate(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "vfr.mkv", rate=None, pts=[0, 33, 80, 100, 250], time_base=Fraction(1, 1000))
    target = tmp_path / "out.mp4"
    copy_clip(clip.path, target, audio=False)
    pts, time_base, _ = read_back(target)
    assert times(pts, time_base) == times(clip.pts, clip.time_base)


def test_writer_keeps_start_offset(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "late.mp4", pts=[9000, 12003, 15006], time_base=Fraction(1, 90000))
    copy_clip(clip.path, tmp_path / "out.mp4", audio=False)
    pts, time_base, _ = read_back(tmp_path / "out.mp4")
    assert times(pts, time_base) == times(clip.pts, clip.time_base)


def test_writer_copies_aac(clip: Clip, tmp_path: Path) -> None:
    writer = copy_clip(clip.path, tmp_path / "out.mp4")
    assert writer.audio_mode == "copied"
    codec, n_samples = audio_samples(tmp_path / "out.mp4")
    source_codec, source_samples = audio_samples(clip.path)
    assert codec == "aac" and n_samples == source_samples  # same packets, so same samples


@pytest.mark.parametrize("name", ["pcm.mkv", "pcm.mov"])
def test_writer_transcodes_pcm_to_aac(tmp_path: Path, name: str) -> None:
    codec = "ffv1" if name.endswith("mkv") else "png"
    clip = make_video(tmp_path / name, codec=codec, audio_codec="pcm_s16le")
    writer = copy_clip(clip.path, tmp_path / "out.mp4")
    assert writer.audio_mode == "transcoded"
    codec, n_samples = audio_samples(tmp_path / "out.mp4")
    duration = Fraction(len(clip.frames)) / NTSC
    assert codec == "aac" and abs(n_samples - duration * 44100) <= 2048  # AAC works in 1024-sample frames


def test_writer_cuts_audio_at_last_frame(clip: Clip, tmp_path: Path) -> None:
    info = probe_video(clip.path)
    timing = {"time_base": info.time_base, "rate": info.average_rate}
    with VideoWriter(tmp_path / "short.mp4", width=48, height=32, **timing, audio_from=clip.path) as writer:
        for frame in read_video(clip.path, max_side=None, max_frames=2):
            writer.write(frame.image, frame.pts)
    _, n_samples = audio_samples(tmp_path / "short.mp4")
    assert n_samples <= round(Fraction(2) / NTSC * 44100) + 2048
    assert n_samples < audio_samples(clip.path)[1]


def test_writer_audio_from_file_without_audio(lossless_clip: Clip, tmp_path: Path) -> None:
    assert copy_clip(lossless_clip.path, tmp_path / "out.mp4").audio_mode == "none"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_writer_exception_leaves_nothing(clip: Clip, tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(error):
        with VideoWriter(target, width=48, height=32, **NTSC_TIMING, audio_from=clip.path) as writer:
            writer.write(clip.frames[0], 0)
            raise error
    assert folder_listing(tmp_path) == ["clip.mp4"]


def test_writer_exception_keeps_existing_output(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING):
            raise RuntimeError
    assert folder_listing(tmp_path) == ["out.mp4"] and (tmp_path / "out.mp4").read_bytes() == b"old"


def test_writer_output_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"missing/out\.mp4: cannot create video"):
        with VideoWriter(tmp_path / "missing" / "out.mp4", width=16, height=16, **PAL_TIMING):
            pass
    with pytest.raises(OutputError, match=r"out\.mp4: no frames were written"):
        with VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING):
            pass
    with pytest.raises(InputError, match=r"nope\.mp4: no such file"):
        audio_from = tmp_path / "nope.mp4"
        with VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING, audio_from=audio_from):
            pass
    assert folder_listing(tmp_path) == []


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "out.mp4", width=15, height=16, time_base=Fraction(1, 25), rate=None)
    with pytest.raises(ValueError, match="crf"):
        VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING, crf=60)
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="pts must increase"):
        with VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING) as writer:
            writer.write(frame, 1)
            writer.write(frame, 1)
    with pytest.raises(ValueError, match=r"expected uint8 \(16, 16, 3\)"):
        with VideoWriter(tmp_path / "out.mp4", width=16, height=16, **PAL_TIMING) as writer:
            writer.write(np.zeros((8, 8, 3), np.uint8), 0)
    assert folder_listing(tmp_path) == []


# --- output formats by suffix ---------------------------------------------------------------------


def stream_facts(path: Path) -> tuple[str, str, str | None, str | None]:
    """Video codec, pixel format and profile, and the audio codec (None without audio)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return video.name, video.pix_fmt, video.profile, audio


@pytest.mark.parametrize("suffix, codec, pix_fmt, audio, mode", [
    (".mp4", "h264", "yuv420p", "aac", "copied"),
    (".mov", "prores", "yuv422p10le", "aac", "copied"),
    (".mkv", "ffv1", "bgr0", "aac", "copied"),
    (".webm", "vp9", "yuv420p", "opus", "transcoded"),  # WebM takes no AAC
])
def test_writer_suffix_picks_codec_pixel_format_and_audio(
    clip: Clip, tmp_path: Path, suffix: str, codec: str, pix_fmt: str, audio: str, mode: str
) -> None:
    target = tmp_path / f"out{suffix}"
    writer = copy_clip(clip.path, target)
    assert writer.audio_mode == mode and writer.n_written == 4
    assert stream_facts(target)[0:2] == (codec, pix_fmt) and stream_facts(target)[3] == audio
    pts, time_base, frames = read_back(target)
    # Matroska and WebM keep milliseconds; MP4 and MOV the input's 1/30000 s. Matroska cannot store
    # the negative start of copied AAC (its 1024-sample encoder delay), so its muxer shifts every
    # stream by that much: the frames keep their spacing and their place against the sound.
    shift = times(pts, time_base)[0] - times(clip.pts, clip.time_base)[0]
    assert shift == (Fraction(23, 1000) if suffix == ".mkv" else 0)  # 1024 / 44100 s, in ms
    shown = [float(time - shift) for time in times(pts, time_base)]
    assert shown == pytest.approx([float(time) for time in times(clip.pts, clip.time_base)], abs=1e-3)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    decoded = list(read_video(clip.path, max_side=None))
    assert all(mean_error(frame, source.image) < 3 for frame, source in zip(frames, decoded))
    duration = Fraction(4) / NTSC
    assert abs(audio_samples(target)[1] - duration * 44100) <= 2048 + 1024 * (mode == "copied")
    assert folder_listing(tmp_path) == ["clip.mp4", f"out{suffix}"]


def test_writer_mov_is_prores_hq_and_mkv_is_lossless(clip: Clip, tmp_path: Path) -> None:
    copy_clip(clip.path, tmp_path / "out.mov", audio=False)
    assert stream_facts(tmp_path / "out.mov")[2] == "HQ"
    copy_clip(clip.path, tmp_path / "out.mkv", audio=False)
    decoded = [frame.image for frame in read_video(clip.path, max_side=None)]
    assert all(np.array_equal(frame, source) for frame, source in zip(read_back(tmp_path / "out.mkv")[2], decoded))


@pytest.mark.parametrize("suffix, audio", [(".mov", "pcm_s16le"), (".mkv", "pcm_s16le"), (".webm", "opus"),
                                           (".mp4", "aac")])
def test_writer_pcm_source_audio_per_container(tmp_path: Path, suffix: str, audio: str) -> None:
    clip = make_video(tmp_path / "camera.mov", codec="png", audio_codec="pcm_s16le")
    writer = copy_clip(clip.path, tmp_path / f"out{suffix}")
    assert writer.audio_mode == ("copied" if audio == "pcm_s16le" else "transcoded")
    codec, n_samples = audio_samples(tmp_path / f"out{suffix}")
    duration = Fraction(len(clip.frames)) / NTSC
    assert codec == audio and abs(n_samples - duration * 44100 * (48000 / 44100 if audio == "opus" else 1)) <= 2048


@pytest.mark.parametrize("name", ["out.avi", "out.MP4.gif", "out"])
def test_writer_refuses_an_unsupported_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match=r"cannot write '.*' videos; the suffix picks the format: \.mp4 \(H\.264\)"):
        VideoWriter(tmp_path / name, width=16, height=16, **PAL_TIMING)
    assert folder_listing(tmp_path) == []


def test_output_suffix_is_case_blind_and_every_encoder_is_available() -> None:
    assert output_format(Path("a.MOV")) == FORMATS[".mov"]
    for chosen in FORMATS.values():
        assert chosen.codec in av.codecs_available and chosen.audio_codec in av.codecs_available


def test_a_missing_encoder_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(av, "codecs_available", av.codecs_available - {"prores_ks"})
    with pytest.raises(OutputError, match=r"out\.mov: this PyAV build has no prores_ks encoder for \.mov outputs"):
        output_format(tmp_path / "out.mov")
    assert output_format(tmp_path / "out.mp4") == FORMATS[".mp4"]
