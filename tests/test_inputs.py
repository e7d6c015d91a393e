"""Every kind of input a user may bring, generated here: handled, or refused in one clear line.

Decoding kinds go through io as `stylize_video` uses it (decode, encode, read back), which is where
they differ; a handful run the whole command. A success keeps every frame, its size, its time, its
picture and the audio. A failure exits 2 with one "error:" line naming the file and the problem,
and leaves no output and no temp file. Inputs live in their own folder, which must come out
byte-for-byte as it went in, and every command runs under a deadline, so a hang fails the test.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import make_audio, make_image, make_video, png_header
from PIL import Image, ImageFile
from stylereel.cli.main import app
from stylereel.pipeline import io, run
from typer.testing import CliRunner

IMAGE_FAST = ["--max-side", "32", "--first-iterations", "2", "--device", "cpu"]
FAST = [*IMAGE_FAST, "--iterations", "1", "--flow", "dis"]
PATIENCE = 30  # s; a command still running after this is taken to hang (a run here takes about 1 s)
AAC_FRAME = 1024 / 44100  # s of audio in one AAC packet


# --- helpers --------------------------------------------------------------------------------------


class Hung(Exception):
    """Raised by the deadline's alarm; deliberately not an OSError, which io would catch."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli(*args: object, seconds: int = PATIENCE):
    with deadline(seconds):
        result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert not isinstance(result.exception, Hung), f"hung: {args}"
    return result


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def untouched(folder: Path) -> Iterator[None]:
    """The inputs' folder comes out exactly as it went in: same files, same bytes, nothing added."""
    before = digest(folder)
    yield
    assert digest(folder) == before


def temp_files(folder: Path) -> list[str]:
    """Files a writer left under a temporary name (`.name.tmp-…`, `*.tmp`)."""
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def succeeded(result) -> str:
    """The output with its lines joined (Rich wraps notices at 80 columns); fails on a non-zero exit."""
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return " ".join(result.output.split())


def refused(result, *words: str) -> str:
    """Exit 2 and exactly one line, an "error:" line holding `words`; returns that line."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert all(word in lines[0] for word in words), (words, lines[0])
    return lines[0]


@dataclass(frozen=True)
class Watched:
    """A video as plain PyAV decodes it."""

    images: list[np.ndarray]  # uint8 (H, W, 3) RGB, as stored (no rotation applied)
    times: list[float]  # s
    audio: str | None  # codec of the first audio stream
    audio_end: float | None  # s, end of the last audio packet

    @property
    def sizes(self) -> set[tuple[int, int]]:
        return {(image.shape[1], image.shape[0]) for image in self.images}


def watch(path: Path) -> Watched:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    with av.open(str(path)) as container:
        audio, audio_end = None, None
        if container.streams.audio:
            stream = container.streams.audio[0]
            audio = stream.codec_context.name
            ends = [(p.pts + p.duration) * p.time_base for p in container.demux(stream) if p.pts is not None]
            audio_end = float(max(ends)) if ends else None
    images = [frame.to_ndarray(format="rgb24") for frame in frames]
    return Watched(images, [float(frame.pts * frame.time_base) for frame in frames], audio, audio_end)


def picture_error(image: np.ndarray, source: np.ndarray, rotation: int = 0) -> float:
    """Mean absolute difference from `source` turned upright and resized to `image`'s size (0-255)."""
    expected = np.ascontiguousarray(np.rot90(source, k=rotation // 90))
    expected = cv2.resize(expected, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.abs(image.astype(np.int16) - expected.astype(np.int16)).mean())


def needs(*codecs: str) -> None:
    missing = [codec for codec in codecs if codec not in av.codecs_available]
    if missing:
        pytest.skip(f"this FFmpeg build has no {', '.join(missing)} encoder")


def round_trip(source: Path, target: Path) -> tuple[io.VideoFrames, io.VideoWriter]:
    """Decode at 32 px and encode with the audio, as `stylize_video` does, minus the stylizing."""
    frames = io.read_video(source, max_side=32)
    width, height = frames.size
    info = frames.info
    with io.VideoWriter(target, width=width, height=height, time_base=info.time_base, rate=info.average_rate,
                        audio_from=source) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts)
    return frames, writer


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


@pytest.fixture
def style(inputs: Path) -> Path:
    path = inputs / "style.png"
    io.write_image(path, (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    return path


# --- video kinds, through io ----------------------------------------------------------------------

PAL = Fraction(25)
KINDS = {
    # name: (file name, make_video arguments, size after fitting the long side to 32 px)
    "odd size 4:2:0": ("odd.mkv", {"codec": "ffv1", "pix_fmt": "yuv420p", "size": (161, 121)}, (32, 24)),
    "odd size 4:4:4": ("odd444.mp4", {"pix_fmt": "yuv444p", "size": (161, 121)}, (32, 24)),
    "rotation 90": ("portrait.mp4", {"rotation": 90}, (22, 32)),
    "rotation 180": ("upside.mp4", {"rotation": 180}, (32, 22)),
    "rotation 270": ("portrait270.mov", {"rotation": 270}, (22, 32)),
    "non-square pixels": ("anamorphic.mp4", {"size": (48, 48), "sar": Fraction(2)}, (32, 16)),  # shows 96x48
    "first pts not 0, mkv": ("late.mkv", {"codec": "ffv1", "rate": PAL, "pts": [50, 51, 52]}, (32, 22)),
    "first pts not 0, mp4": ("late.mp4", {"pts": [9000, 12003, 15006], "time_base": Fraction(1, 90000)}, (32, 22)),
    "120 fps": ("fast.mp4", {"rate": Fraction(120)}, (32, 22)),
    "1 fps": ("slow.mp4", {"rate": Fraction(1)}, (32, 22)),
    "10-bit 4:2:0": ("ten.mp4", {"pix_fmt": "yuv420p10le"}, (32, 22)),
    "10-bit 4:4:4": ("ten444.mp4", {"pix_fmt": "yuv444p10le"}, (32, 22)),
    "mkv ffv1": ("clip.mkv", {"codec": "ffv1", "rate": PAL}, (32, 22)),
    "webm vp8": ("vp8.webm", {"codec": "libvpx", "rate": PAL}, (32, 22)),
    "webm vp9": ("vp9.webm", {"codec": "libvpx-vp9", "rate": PAL}, (32, 22)),
    "webm av1": ("av1.webm", {"codec": "libsvtav1", "rate": PAL}, (32, 22)),
    "mov prores": ("prores.mov", {"codec": "prores_ks", "pix_fmt": "yuv422p10le", "rate": PAL}, (32, 22)),
    "avi mjpeg full range": ("mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p", "full_range": True, "rate": PAL},
                             (32, 22)),
    "mpeg-ts": ("clip.ts", {"rate": PAL}, (32, 22)),
    "gif": ("anim.gif", {"codec": "gif", "pix_fmt": "rgb8", "rate": PAL}, (32, 22)),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_video_kind_keeps_every_frame_its_time_and_its_picture(inputs, outputs, kind):
    name, arguments, size = KINDS[kind]
    needs(arguments.get("codec", "libx264"))
    clip = make_video(inputs / name, n_frames=3, with_audio=False, **arguments)
    source = watch(clip.path)
    assert len(source.times) == 3
    with untouched(inputs):
        frames, writer = round_trip(clip.path, outputs / "out.mp4")
    result = watch(outputs / "out.mp4")
    assert frames.info.n_frames == 3 and frames.lost == 0 and frames.error is None
    assert len(result.images) == 3 and result.sizes == {size}
    assert result.times == pytest.approx(source.times, abs=1e-3)
    assert writer.audio_mode == "none" and result.audio is None
    rotation = arguments.get("rotation", 0)
    # Upright and at the right levels: a wrong turn, a squashed range or a wrong colour matrix is far off.
    errors = [picture_error(image, original, rotation) for image, original in zip(result.images, clip.frames)]
    assert max(errors) < 6, errors
    if rotation:
        assert picture_error(result.images[0], clip.frames[0], rotation + 180) > 3 * max(errors)
    assert temp_files(outputs) == []


@pytest.fixture(scope="module")
def shared_model():
    """One VGG for the module's stylizing runs: loading it is most of a tiny run's time."""
    return {}


# The kinds that reach the optimisation through another decoding path; the others differ from these
# only in what the round trip above already checks.
STYLIZED_KINDS = ["odd size 4:4:4", "10-bit 4:2:0", "webm vp9", "mov prores", "mpeg-ts", "gif", "120 fps",
                  "non-square pixels"]


@pytest.mark.parametrize("kind", STYLIZED_KINDS)
def test_video_kind_is_stylized_end_to_end(inputs, outputs, style, kind, shared_model, monkeypatch):
    from dataclasses import replace

    from stylereel.pipeline import sequence
    from stylereel.pipeline.config import Config

    name, arguments, size = KINDS[kind]
    needs(arguments.get("codec", "libx264"))
    real_load = sequence.load_model

    def load_once(config, device):
        if "vgg" not in shared_model:
            shared_model["vgg"] = real_load(config, device)
        return shared_model["vgg"]

    monkeypatch.setattr(sequence, "load_model", load_once)
    clip = make_video(inputs / name, n_frames=3, with_audio=False, **arguments)  # a 2-frame MPEG-TS will not open
    source = watch(clip.path)
    config = replace(Config(), max_side=32, first_iterations=2, iterations=2, device="cpu", coarse_to_fine=False)
    with untouched(inputs):
        summary = run.stylize_video(clip.path, [style], outputs / "out.mp4", config)
    result = watch(outputs / "out.mp4")
    assert summary.n_frames == len(result.images) == 3 and result.sizes == {size}
    assert result.times == pytest.approx(source.times, abs=1e-3)
    assert temp_files(outputs) == [] and not (outputs / "out.mp4.parts").exists()


def test_full_range_mjpeg_keeps_its_brightness(inputs, outputs):
    clip = make_video(inputs / "mjpeg.avi", codec="mjpeg", pix_fmt="yuvj420p", full_range=True, rate=PAL,
                      n_frames=2, with_audio=False)
    with untouched(inputs):
        round_trip(clip.path, outputs / "out.mp4")
    source = np.mean([frame.mean() for frame in clip.frames])
    decoded = [frame.image for frame in io.read_video(clip.path, max_side=None)]
    for images in (decoded, watch(outputs / "out.mp4").images):
        # Read as limited range, the dark blob frames would come out about 12 levels brighter.
        assert abs(np.mean([image.mean() for image in images]) - source) < 3


def test_variable_frame_rate_in_matroska_keeps_times_and_loses_nothing(inputs, outputs):
    clip = make_video(inputs / "vfr.mkv", codec="ffv1", rate=None, pts=[0, 40, 100, 250, 1000],
                      time_base=Fraction(1, 1000), with_audio=False)
    with untouched(inputs):
        frames, _ = round_trip(clip.path, outputs / "out.mp4")
    assert watch(outputs / "out.mp4").times == pytest.approx([0, 0.04, 0.1, 0.25, 1.0], abs=1e-3)
    assert frames.lost == 0 and frames.error is None


# --- audio ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["long.mp4", "long.mkv"])
def test_audio_longer_than_the_video_is_cut_and_counts_no_frame(inputs, outputs, name):
    codec = "ffv1" if name.endswith("mkv") else "libx264"
    clip = make_video(inputs / name, codec=codec, rate=PAL, n_frames=3, audio_seconds=1.0)  # video: 0.12 s
    with untouched(inputs):
        frames, writer = round_trip(clip.path, outputs / "out.mp4")
    result = watch(outputs / "out.mp4")
    assert frames.info.n_frames == 3 and frames.lost == 0  # the audio does not stretch the frame count
    assert writer.audio_mode == "copied" and result.audio == "aac"
    assert result.audio_end <= 0.12 + 2 * AAC_FRAME


@pytest.mark.parametrize("name", ["vorbis.mkv", "vorbis.webm"])
def test_vorbis_audio_is_transcoded_to_aac(inputs, outputs, name):
    needs("vorbis")
    codec = "ffv1" if name.endswith("mkv") else "libvpx-vp9"
    clip = make_video(inputs / name, codec=codec, rate=PAL, n_frames=3, audio_codec="vorbis")
    with untouched(inputs):
        _, writer = round_trip(clip.path, outputs / "out.mp4")
    result = watch(outputs / "out.mp4")
    assert writer.audio_mode == "transcoded" and result.audio == "aac"
    assert 0.12 - 2 * AAC_FRAME <= result.audio_end <= 0.12 + 2 * AAC_FRAME


# --- whole runs of `stylereel video` --------------------------------------------------------------


def test_cli_rotated_phone_clip_is_stylized_upright_with_its_audio(inputs, outputs, style):
    clip = make_video(inputs / "phone.mp4", rotation=90)  # 48x32 stored, 32x48 shown
    with untouched(inputs):
        text = succeeded(cli("video", clip.path, "-s", style, "-o", outputs / "out.mp4", *FAST))
    result = watch(outputs / "out.mp4")
    assert len(result.images) == 4 and result.sizes == {(22, 32)}
    assert result.times == pytest.approx(watch(clip.path).times, abs=1e-3)
    upright, upside_down = (picture_error(result.images[0], clip.frames[0], turn) for turn in (90, 270))
    assert upright < upside_down / 3
    assert result.audio == "aac" and "audio: aac stream copied" in text
    assert os.listdir(outputs) == ["out.mp4"]


def test_cli_pcm_audio_is_transcoded_and_says_so(inputs, outputs, style):
    clip = make_video(inputs / "camera.mov", codec="png", n_frames=3, audio_codec="pcm_s16le")
    with untouched(inputs):
        text = succeeded(cli("video", clip.path, "-s", style, "-o", outputs / "out.mp4", *FAST))
    result = watch(outputs / "out.mp4")
    assert len(result.images) == 3 and result.sizes == {(32, 22)}
    assert result.audio == "aac" and "audio: pcm_s16le cannot be stored in MP4, transcoded to AAC" in text


def test_cli_audio_longer_than_the_video_is_cut_without_a_false_loss_warning(inputs, outputs, style):
    clip = make_video(inputs / "talk.mkv", codec="ffv1", rate=PAL, n_frames=3, audio_seconds=1.0)
    with untouched(inputs):
        text = succeeded(cli("video", clip.path, "-s", style, "-o", outputs / "out.mp4", *FAST))
    result = watch(outputs / "out.mp4")
    assert len(result.images) == 3 and result.audio == "aac" and result.audio_end <= 0.12 + 2 * AAC_FRAME
    assert "lost" not in text and "3/3" in text  # a 1 s file is not taken for 25 frames


def two_stream_video(path: Path) -> Path:
    """A Matroska file with a 48x32 and a 64x64 FFV1 stream, two frames each."""
    with av.open(str(path), "w") as output:
        streams = [output.add_stream("ffv1", rate=PAL) for _ in range(2)]
        for stream, (width, height) in zip(streams, [(48, 32), (64, 64)]):
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(2):
            for stream in streams:
                frame = av.VideoFrame.from_ndarray(np.full((stream.height, stream.width, 3), 60, np.uint8), "rgb24")
                frame.pts, frame.time_base = index, 1 / PAL
                output.mux(stream.encode(frame))
        for stream in streams:
            output.mux(stream.encode(None))
    return path


def test_cli_two_video_streams_use_the_first_and_say_so(inputs, outputs, style):
    path = two_stream_video(inputs / "two.mkv")
    with untouched(inputs):
        text = succeeded(cli("video", path, "-s", style, "-o", outputs / "out.mp4", *FAST))
    result = watch(outputs / "out.mp4")
    assert len(result.images) == 2 and result.sizes == {(32, 22)}  # the first stream's 48x32
    assert "two.mkv: has 2 video streams; using the first" in text


def test_cli_frames_too_small_for_vgg_are_refused_and_the_advice_works(inputs, outputs, style):
    clip = make_video(inputs / "anamorphic.mp4", size=(48, 32), sar=Fraction(2), n_frames=2)  # shows 96x32
    output = outputs / "out.mp4"
    with untouched(inputs):
        line = refused(cli("video", clip.path, "-s", style, "-o", output, *FAST), f"{output}: frames would be 32x10")
        assert "VGG-19 needs at least 16 px on the short side; use a larger --max-side" in line
        assert os.listdir(outputs) == []
        succeeded(cli("video", clip.path, "-s", style, "-o", output, *FAST, "--max-side", "64"))
    assert watch(output).sizes == {(64, 22)}


def test_cli_variable_frame_rate_keeps_times_without_a_false_loss_warning(inputs, outputs, style):
    clip = make_video(inputs / "screen.mkv", codec="ffv1", rate=None, pts=[0, 40, 100, 250],
                      time_base=Fraction(1, 1000), with_audio=False)
    with untouched(inputs):
        text = succeeded(cli("video", clip.path, "-s", style, "-o", outputs / "out.mp4", *FAST))
    assert watch(outputs / "out.mp4").times == pytest.approx([0, 0.04, 0.1, 0.25], abs=1e-3)
    assert "lost" not in text


# --- damaged video --------------------------------------------------------------------------------


def packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet."""
    with av.open(str(path)) as container:
        return [(packet.pos, packet.size) for packet in container.demux(video=0) if packet.size]


def damage(path: Path, how: str) -> Path:
    """Cut the file in the middle of its 5th packet, at half its length, or write noise over packets 4-5."""
    data, spans = bytearray(path.read_bytes()), packet_spans(path)
    if how == "cut in packet 5":
        data = data[: spans[4][0] + spans[4][1] // 2]
    elif how == "cut in half":
        data = data[: len(data) // 2]
    else:
        start = spans[3][0] + spans[3][1] // 2
        end = spans[4][0] + spans[4][1]
        data[start:end] = np.random.default_rng(1).bytes(end - start)
    damaged = path.with_name(f"damaged{path.suffix}")
    damaged.write_bytes(bytes(data))
    path.unlink()
    return damaged


DAMAGE = {
    # name: (file name, make_video arguments, damage, frames expected out of 8; None: refused)
    "truncated mkv": ("clip.mkv", {"codec": "ffv1"}, "cut in packet 5", 4),
    "truncated mp4, index first": ("clip.mp4", {"container_options": {"movflags": "faststart"}}, "cut in packet 5", 4),
    "truncated mp4, index last": ("clip.mp4", {}, "cut in half", None),
    "noise in mp4": ("clip.mp4", {"options": {"g": "2"}}, "noise", 7),
    "noise in mkv": ("clip.mkv", {"codec": "ffv1"}, "noise", 3),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_video_keeps_what_decodes_and_counts_the_rest(inputs, outputs, style, kind):
    name, arguments, how, expected = DAMAGE[kind]
    clip = make_video(inputs / name, n_frames=8, rate=PAL, with_audio=False, **arguments)
    damaged = damage(clip.path, how)
    output = outputs / "out.mp4"
    with untouched(inputs):
        result = cli("video", damaged, "-s", style, "-o", output, *FAST)
    if expected is None:
        refused(result, str(damaged), "not a video file")
        assert os.listdir(outputs) == []
        return
    text = succeeded(result)
    images = watch(output).images
    assert len(images) == expected
    assert re.search(rf"\b{8 - expected}\b[^;]* lost", text), text  # never pretends every frame was there
    assert os.listdir(outputs) == ["out.mp4"]


def test_damage_is_counted_by_io(inputs):
    clip = make_video(inputs / "clip.mp4", n_frames=8, rate=PAL, with_audio=False, options={"g": "2"})
    damaged = damage(clip.path, "noise")
    with untouched(inputs):
        frames = io.read_video(damaged, max_side=None)
        assert len(list(frames)) == 7 and frames.lost == 1  # decoding goes on after the damaged packet
    assert frames.error == (f"{damaged}: 1 damaged packet(s) could not be decoded (Invalid data found when "
                            "processing input); frames: 7 decoded, 1 lost")


@pytest.mark.parametrize(("max_frames", "lost"), [(None, 4), (6, 2), (3, 0)])
def test_lost_frames_are_counted_up_to_max_frames(inputs, max_frames, lost):
    clip = make_video(inputs / "clip.mkv", codec="ffv1", n_frames=8, rate=PAL, with_audio=False)
    frames = io.read_video(damage(clip.path, "cut in packet 5"), max_side=None, max_frames=max_frames)
    assert len(list(frames)) == min(4, max_frames or 8) and frames.lost == lost
    assert frames.error is None  # nothing was damaged: the file just ends early


# --- not a video ----------------------------------------------------------------------------------


def zero_frame_video(path: Path) -> Path:
    """A header declaring one video stream, and no packets."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("ffv1" if path.suffix == ".mkv" else "libx264", rate=PAL)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        output.start_encoding()  # writes the header, which muxing a first packet would do
    return path


NOT_VIDEOS = {
    # name: (file name, how to make it, words of the error)
    "empty file": ("empty.mp4", lambda path: path.write_bytes(b""), "not a video file"),
    "random bytes": ("noise.mov", lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096)), "not a video"),
    "text named .mp4": ("notes.mp4", lambda path: path.write_text("meeting notes\n" * 40), "not a video file"),
    "audio only": ("song.m4a", make_audio, "no video stream"),
    "video track without frames, mkv": ("hollow.mkv", zero_frame_video, "ends before its first video frame"),
    "video track without frames, mp4": ("hollow.mp4", zero_frame_video, "no video stream"),  # FFmpeg drops it
}


@pytest.mark.parametrize("kind", list(NOT_VIDEOS))
def test_not_a_video_is_refused_in_one_line(inputs, outputs, style, kind):
    name, make, words = NOT_VIDEOS[kind]
    make(inputs / name)
    with untouched(inputs):
        refused(cli("video", inputs / name, "-s", style, "-o", outputs / "out.mp4", *FAST), f"{inputs / name}:", words)
    assert os.listdir(outputs) == []


# --- style images ---------------------------------------------------------------------------------


def style_kinds(folder: Path) -> list[Path]:
    """One style image of each awkward kind (test_io checks each one's pixels)."""
    make_image(folder / "grey.png", size=(40, 40), mode="L")
    make_image(folder / "palette.gif", size=(40, 40), mode="P")
    make_image(folder / "cmyk.jpg", size=(40, 40), mode="CMYK")
    make_image(folder / "photo.webp", size=(40, 40))
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(np.linspace(0, 65535, 40 * 40).astype(np.uint16).reshape(40, 40)).save(folder / "deep.png")
    colours = [Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    colours[0].save(folder / "anim.gif", save_all=True, append_images=colours[1:], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    make_image(folder / "phone.jpg", size=(40, 24), exif=exif)
    huge_jpeg(folder / "huge.jpg")
    return sorted(path for path in folder.iterdir() if path.name != "content.png")


def huge_jpeg(path: Path) -> Path:
    """A 6000x4000 JPEG: 72 MB of pixels if decoded at full size."""
    Image.new("RGB", (6000, 4000), (200, 120, 40)).save(path, quality=70)
    return path


def test_cli_image_takes_every_style_kind_at_once(inputs, outputs):
    styles = style_kinds(inputs)
    make_image(inputs / "content.png", size=(48, 32))
    blend = [arg for path in styles for arg in ("-s", path)]
    with untouched(inputs):
        succeeded(cli("image", inputs / "content.png", *blend, "-o", outputs / "out.png", *IMAGE_FAST))
    assert io.read_image(outputs / "out.png").shape == (21, 32, 3)
    assert os.listdir(outputs) == ["out.png"]


def test_huge_jpeg_is_reduced_while_decoding(inputs, monkeypatch):
    path = huge_jpeg(inputs / "huge.jpg")
    decoded, load = [], ImageFile.ImageFile.load

    def spy(image: ImageFile.ImageFile):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with untouched(inputs):
        assert io.read_image(path, max_side=32).shape == (21, 32, 3)
    assert decoded and max(width * height for width, height in decoded) <= 750 * 500  # DCT scaling: 1/8


def test_webp_style_reads_its_pixels(inputs):
    expected = make_image(inputs / "lossless.webp", size=(32, 24), lossless=True)
    assert np.array_equal(io.read_image(inputs / "lossless.webp"), expected)


def bad_styles(folder: Path) -> dict[str, tuple[Path, str]]:
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    (folder / "bomb.png").write_bytes(png_header(40000, 40000))
    make_image(folder / "full.jpg", size=(64, 64))
    (folder / "cut.jpg").write_bytes((folder / "full.jpg").read_bytes()[:400])
    (folder / "full.jpg").unlink()
    (folder / "readme.png").write_text("not an image")
    return {
        "1x1": (folder / "dot.png", "too small (1x1 px"),
        "40000x40000 header": (folder / "bomb.png", "too large"),
        "truncated jpeg": (folder / "cut.jpg", "not a readable image"),
        "text named .png": (folder / "readme.png", "not a readable image"),
    }


@pytest.mark.parametrize("kind", ["1x1", "40000x40000 header", "truncated jpeg", "text named .png"])
def test_bad_style_is_refused_quickly_in_one_line(inputs, outputs, kind):
    clip = make_video(inputs / "clip.mp4", n_frames=2)
    path, words = bad_styles(inputs)[kind]
    with untouched(inputs):
        result = cli("video", clip.path, "-s", path, "-o", outputs / "out.mp4", *FAST, seconds=20)
    refused(result, f"{path}:", words)
    assert os.listdir(outputs) == []  # no video, no temp file, no work folder


# --- frame folders --------------------------------------------------------------------------------


def test_cli_frame_folder_in_natural_order_with_mixed_sizes_kinds_and_stray_files(inputs, outputs, style,
                                                                                  monkeypatch):
    folder = inputs / "shots"
    folder.mkdir()
    make_image(folder / "1.png", size=(48, 32))
    make_image(folder / "2.jpg", size=(48, 32))
    make_image(folder / "10.bmp", size=(60, 30))  # another size: resized to the first frame's
    (folder / "notes.txt").write_text("shot list")
    (folder / "Thumbs.db").write_bytes(b"\0" * 16)
    order, read_image = [], io.frames.read_image
    monkeypatch.setattr(io.frames, "read_image", lambda path, **kw: order.append(path.name) or read_image(path, **kw))
    with untouched(inputs):
        text = succeeded(cli("frames", folder, "-s", style, "-o", outputs / "styled", *FAST))
    assert order == ["1.png", "2.jpg", "10.bmp"] * 2  # all decoded once before the work, then stylized
    assert sorted(os.listdir(outputs / "styled")) == ["1.png", "10.png", "2.png"]
    assert {io.read_image(path).shape for path in (outputs / "styled").iterdir()} == {(21, 32, 3)}
    assert "warning: 1 frame(s) differ in size from the first and will be resized to match: 10.bmp" in text
    assert "skipped 2 non-image file(s)" in text and "notes.txt" in text and "Thumbs.db" in text


@pytest.mark.parametrize("kind", ["empty", "no images", "same output name", "missing", "damaged frame"])
def test_bad_frame_folder_is_refused_in_one_line(inputs, outputs, style, kind):
    folder = inputs / "shots"
    if kind != "missing":
        folder.mkdir()
    if kind == "no images":
        (folder / "notes.txt").write_text("shot list")
    if kind == "same output name":
        make_image(folder / "1.png")
        make_image(folder / "1.jpg")
    if kind == "damaged frame":  # found by the check before the work, after a progress bar
        for index in range(1, 6):
            make_image(folder / f"{index}.png")
        (folder / "3.png").write_bytes((folder / "3.png").read_bytes()[:60])
    words = {"empty": "no images", "no images": "no images", "same output name": "1.png",
             "missing": "no such folder", "damaged frame": "3.png"}[kind]
    with untouched(inputs):
        refused(cli("frames", folder, "-s", style, "-o", outputs / "styled", *FAST), f"{folder}", words)
    assert os.listdir(outputs) == []


# --- awkward paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["with spaces.mp4", "café clip ✓.mp4", "it's $HOME & co; \"really\".mp4"])
def test_awkward_names_are_taken_as_they_are(inputs, outputs, name):
    clip = make_video(inputs / name, n_frames=2)
    style = inputs / f"style {name}.png"
    make_image(style, size=(32, 32))
    output = outputs / f"out {name}"
    with untouched(inputs):
        succeeded(cli("video", clip.path, "-s", style, "-o", output, *FAST))
    assert len(watch(output).images) == 2 and os.listdir(outputs) == [output.name]


def test_names_with_square_brackets_are_printed_as_they_are(inputs, style):
    refused(cli("video", inputs / "Holiday [final].mp4", "-s", style), "Holiday [final].mp4: no such file")
    refused(cli("video", inputs / "a [/] b.mp4", "-s", style), "a [/] b.mp4: no such file")


@pytest.mark.parametrize("how", ["./-clip.mp4", "after --"])
def test_leading_dash_needs_dot_slash_or_double_dash(inputs, outputs, style, monkeypatch, how):
    make_video(inputs / "-clip.mp4", n_frames=2)
    monkeypatch.chdir(inputs)
    output = outputs / "-out.mp4"
    with untouched(inputs):
        if how == "after --":
            result = cli("video", "-s", style, "-o", output, *FAST, "--", "-clip.mp4")
        else:
            result = cli("video", "./-clip.mp4", "-s", style, "-o", output, *FAST)
        succeeded(result)
        # Given bare, Click reads "-clip.mp4" as "-c lip.mp4" (--config): a usage error, and no output.
        assert cli("video", "-clip.mp4", "-s", style, "-o", outputs / "bare.mp4", *FAST).exit_code == 2
    assert os.listdir(outputs) == ["-out.mp4"]


# --- outputs --------------------------------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run gets as far as decoding frames or loading the model."""
    for name in ("read_video", "read_frames"):
        monkeypatch.setattr(io, name, lambda *a, **k: pytest.fail("decoding started"))
    monkeypatch.setattr(run, "prepare_session", lambda *a, **k: pytest.fail("the model was loaded"))


@pytest.mark.parametrize("command", ["video", "frames", "image"])
def test_existing_output_is_refused_before_any_work(inputs, outputs, style, no_work, command):
    if command == "video":
        content, output = make_video(inputs / "clip.mp4", n_frames=2).path, outputs / "taken.mp4"
    elif command == "frames":
        content, output = inputs / "shots", outputs / "styled"
        content.mkdir()
        make_image(content / "1.png")
        output.mkdir()
    else:
        content, output = inputs / "photo.png", outputs / "taken.png"
        make_image(content)
    taken = output / "1.png" if command == "frames" else output
    taken.write_bytes(b"precious")
    with untouched(inputs), untouched(outputs):
        options = IMAGE_FAST if command == "image" else FAST
        refused(cli(command, content, "-s", style, "-o", output, *options), f"{taken}: already exists", "--overwrite")


@pytest.mark.parametrize("where", ["under a file", "missing folder", "read-only folder"])
def test_output_that_cannot_be_written_is_refused_before_any_work(inputs, outputs, style, no_work, where):
    clip = make_video(inputs / "clip.mp4", n_frames=2)
    folder = {"under a file": outputs / "notes.txt", "missing folder": outputs / "missing",
              "read-only folder": outputs / "locked"}[where]
    words = "output folder is not writable" if where == "read-only folder" else "output folder does not exist"
    if where == "under a file":
        folder.write_text("x")
    if where == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder.mkdir(mode=0o500)
    with untouched(inputs), untouched(outputs):
        refused(cli("video", clip.path, "-s", style, "-o", folder / "out.mp4", *FAST), f"{folder}:", words)


class FillingDisk:
    """An output container whose second write of encoded data fails as a full disk does."""

    def __init__(self, container: av.container.OutputContainer) -> None:
        self._container = container
        self._writes = 0

    def __getattr__(self, name: str):
        return getattr(self._container, name)

    def __enter__(self) -> FillingDisk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._container.__exit__(*exc_info)

    def mux(self, packets) -> None:
        if any(packet.size for packet in (packets if isinstance(packets, list) else [packets])):
            self._writes += 1
            if self._writes == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._container.mux(packets)


def test_disk_full_while_writing_video_leaves_no_output_and_one_error(inputs, outputs, style, monkeypatch):
    clip = make_video(inputs / "clip.mp4", n_frames=3)
    real_open = av.open

    def open_filling(file, mode="r", **kwargs):
        container = real_open(file, mode, **kwargs)
        return FillingDisk(container) if mode == "w" and isinstance(file, str) else container

    monkeypatch.setattr(av, "open", open_filling)
    output = outputs / "out.mp4"
    with untouched(inputs):
        result = cli("video", clip.path, "-s", style, "-o", output, *FAST)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert errors == [f"error: {output}: cannot write video (No space left on device)"]
    assert "1/3" in result.output  # the first frame was done: the disk filled up mid-run
    assert not output.exists() and temp_files(outputs) == []


def test_disk_full_while_writing_frames_keeps_whole_frames_only(inputs, outputs, style, monkeypatch):
    folder = inputs / "shots"
    folder.mkdir()
    for index in (1, 2, 3):
        make_image(folder / f"{index}.png", size=(48, 32))
    styled, save, writes = outputs / "styled", Image.Image.save, []
    parts = outputs / "styled.parts"  # finished frames collect here until all are done

    def filling_save(image: Image.Image, fp, *args, **kwargs) -> None:
        if Path(fp).parent == parts:
            writes.append(fp)
            if len(writes) == 2:
                Path(fp).write_bytes(b"\x89PNG half")  # what a full disk leaves behind
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", filling_save)
    with untouched(inputs):
        result = cli("frames", folder, "-s", style, "-o", styled, *FAST)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert errors == [f"error: {parts / '000001.png'}: cannot write image (No space left on device)"]
    assert not styled.exists()  # nothing under the output's name
    assert sorted(p.name for p in parts.glob("*.png")) == ["000000.png"]  # the whole frame, kept for --resume
    assert io.read_image(parts / "000000.png").shape == (21, 32, 3)
    assert temp_files(parts) == []
