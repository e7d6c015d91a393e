"""Real-world inputs, generated here: every container, codec and oddity a user may bring.

Each success case is stylized end to end (tiny size, two iterations) and the output checked for
frame count, size and timestamps; each failure must give one error line and leave nothing behind.
Inputs are hashed before and after: the tool never changes them.
"""

import hashlib
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_image, make_video
from stylereel.cli.main import app
from stylereel.pipeline import io, run
from stylereel.pipeline.config import Config
from stylereel.pipeline.errors import OutputError

TINY = replace(Config(), max_side=32, first_iterations=2, iterations=1, device="cpu")
FAST = ["--max-side", "32", "--first-iterations", "2", "--iterations", "1", "--device", "cpu"]


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    io.write_image(path, (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    return path


def encode(path: Path, codec: str, pix_fmt: str, *, size=(48, 32), n_frames=3, rate=Fraction(25),
           pts=None, options=None, sar=None) -> Path:
    """A clip whose frames brighten and whose white square moves, in any codec PyAV can write."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        if sar:
            stream.codec_context.sample_aspect_ratio = sar
        for index in range(n_frames):
            array = np.full((size[1], size[0], 3), 60 + 20 * (index % 8), np.uint8)
            array[4:12, 4 + 2 * index: 12 + 2 * index] = 255
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = (pts[index] if pts else index), 1 / rate
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def _digest(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _output_frames(path: Path) -> tuple[list[tuple[int, int]], list[float], list[str]]:
    with av.open(str(path)) as container:
        frames = [((f.width, f.height), float(f.pts * f.time_base)) for f in container.decode(video=0)]
        kinds = [s.type for s in container.streams]
    return [s for s, _ in frames], [t for _, t in frames], kinds


def _needs(codec: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build cannot encode {codec}")


VIDEO_KINDS = {
    # name: (file name, codec, pix_fmt, size, extra keyword arguments, expected output size)
    "odd size 4:2:0": ("odd.mkv", "ffv1", "yuv420p", (161, 121), {}, (32, 24)),
    "odd size 4:4:4": ("odd444.mp4", "libx264", "yuv444p", (161, 121), {}, (32, 24)),
    "10-bit": ("ten.mp4", "libx264", "yuv420p10le", (48, 32), {}, (32, 22)),
    "webm vp8": ("vp8.webm", "libvpx", "yuv420p", (48, 32), {}, (32, 22)),
    "webm vp9": ("vp9.webm", "libvpx-vp9", "yuv420p", (48, 32), {}, (32, 22)),
    "webm av1": ("av1.webm", "libsvtav1", "yuv420p", (64, 64), {}, (32, 32)),
    "mov prores": ("prores.mov", "prores_ks", "yuv422p10le", (48, 32), {}, (32, 22)),
    "avi mjpeg full range": ("mjpeg.avi", "mjpeg", "yuvj420p", (48, 32), {}, (32, 22)),
    "mpeg-ts": ("clip.ts", "mpeg2video", "yuv420p", (48, 32), {"n_frames": 6}, (32, 22)),
    "120 fps": ("fast.mp4", "libx264", "yuv420p", (48, 32), {"rate": Fraction(120)}, (32, 22)),
    "1 fps": ("slow.mp4", "libx264", "yuv420p", (48, 32), {"rate": Fraction(1)}, (32, 22)),
    "starts late": ("late.mkv", "ffv1", "yuv420p", (48, 32), {"pts": [50, 51, 52]}, (32, 22)),
    "gif": ("anim.gif", "gif", "rgb8", (48, 32), {}, (32, 22)),
}


@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_video_kind_is_stylized_with_every_frame_and_its_time(tmp_path, style, kind):
    name, codec, pix_fmt, size, extra, expected_size = VIDEO_KINDS[kind]
    _needs(codec)
    source = encode(tmp_path / name, codec, pix_fmt, size=size, **extra)
    with av.open(str(source)) as container:
        expected_times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    before = _digest([source, style])
    output = tmp_path / "out.mp4"
    summary = run.stylize_video(source, [style], output, TINY)
    sizes, times, _ = _output_frames(output)
    assert summary.n_frames == len(sizes) == len(expected_times)
    assert set(sizes) == {expected_size}
    assert times == pytest.approx(expected_times, abs=2e-3)
    assert _digest([source, style]) == before


def test_non_square_pixels_are_made_square(tmp_path, style):
    source = encode(tmp_path / "sar.mp4", "libx264", "yuv420p", sar=Fraction(2, 1))  # shows as 96x32
    run.stylize_video(source, [style], tmp_path / "out.mp4", replace(TINY, max_side=64))
    assert set(_output_frames(tmp_path / "out.mp4")[0]) == {(64, 22)}
    result = _cli("video", source, "-s", style, "-o", tmp_path / "small.mp4", *FAST)  # 32x10: too small
    _one_error_line(result, "needs at least 16 px on the short side")
    assert not (tmp_path / "small.mp4").exists()


def test_full_range_mjpeg_keeps_its_levels(tmp_path):
    source = encode(tmp_path / "mjpeg.avi", "mjpeg", "yuvj420p", n_frames=1)
    image = next(iter(io.read_video(source, max_side=None))).image
    assert abs(float(image[20:, 20:].mean()) - 60) < 4  # a washed-out decode would read about 80


def test_two_video_streams_use_the_first(tmp_path, style):
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as output:
        first, second = (output.add_stream("ffv1", rate=25) for _ in range(2))
        for stream, size in ((first, (48, 32)), (second, (64, 64))):
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(2):
            for stream in (first, second):
                frame = av.VideoFrame.from_ndarray(np.zeros((stream.height, stream.width, 3), np.uint8), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, 25)
                output.mux(stream.encode(frame.reformat(format="yuv420p")))
        for stream in (first, second):
            output.mux(stream.encode(None))
    events = []
    summary = run.stylize_video(path, [style], tmp_path / "out.mp4", TINY, callback=events.append)
    assert summary.n_frames == 2 and (summary.width, summary.height) == (32, 22)
    assert any(isinstance(e, run.Notice) and "2 video streams; using the first" in e.text for e in events)


def _remux_with_audio(source: Path, target: Path, codec: str, *, seconds: float) -> Path:
    """Copy `source`'s video packets into `target` beside `seconds` of silence encoded as `codec`."""
    with av.open(str(source)) as original, av.open(str(target), "w") as output:
        video = output.add_stream_from_template(original.streams.video[0])
        audio = output.add_stream(codec, rate=44100, layout="stereo", options={"strict": "experimental"})
        for packet in original.demux(original.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                output.mux(packet)
        n_samples = round(seconds * 44100)
        for start in range(0, n_samples, 1024):
            count = min(1024, n_samples - start)
            frame = av.AudioFrame(format=audio.codec_context.format.name, layout="stereo", samples=count)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = 44100, start
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))
    return target


@pytest.mark.parametrize("codec, container", [("pcm_s16le", "mkv"), ("vorbis", "mkv"), ("pcm_s16le", "mov")])
def test_audio_that_mp4_cannot_hold_is_transcoded(tmp_path, style, codec, container):
    _needs(codec)
    video = make_video(tmp_path / "video.mkv", with_audio=False).path  # H.264, which mov and mkv both hold
    source = _remux_with_audio(video, tmp_path / f"clip.{container}", codec, seconds=0.15)
    events = []
    run.stylize_video(source, [style], tmp_path / "out.mp4", TINY, callback=events.append)
    assert any(isinstance(e, run.Notice) and "transcoded to AAC" in e.text for e in events)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"


def test_audio_longer_than_the_video_is_cut_at_its_end(tmp_path, style):
    video = make_video(tmp_path / "video.mp4", n_frames=2, with_audio=False).path  # 0.067 s of video
    longer = _remux_with_audio(video, tmp_path / "long.mp4", "aac", seconds=1.0)
    run.stylize_video(longer, [style], tmp_path / "out.mp4", TINY)
    with av.open(str(tmp_path / "out.mp4")) as container:
        audio = container.streams.audio[0]
        end = max(float((p.pts + p.duration) * p.time_base) for p in container.demux(audio) if p.pts is not None)
    assert end < 0.2  # the second of audio was cut near the end of the last frame


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(result, words: str) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.output
    assert "Traceback" not in result.output


def test_garbage_in_the_middle_never_hangs_nor_claims_every_frame(tmp_path, style):
    source = encode(tmp_path / "clip.mkv", "ffv1", "yuv420p", n_frames=8)
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 400] = np.random.default_rng(1).bytes(400)
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    result = _cli("video", damaged, "-s", style, "-o", tmp_path / "out.mp4", *FAST)
    if result.exit_code == 0:
        sizes, _, _ = _output_frames(tmp_path / "out.mp4")
        assert len(sizes) <= 8
        assert len(sizes) == 8 or f"{8 - len(sizes)} lost" in result.output
    else:
        _one_error_line(result, "damaged.mkv")
        assert not (tmp_path / "out.mp4").exists()


def test_video_stream_without_frames_is_refused(tmp_path, style):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as output:
        stream = output.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    result = _cli("video", path, "-s", style, "-o", tmp_path / "out.mp4", *FAST)
    _one_error_line(result, "empty.mkv")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name", ["with spaces.mp4", "café clip ✓.mp4", "-dash.mp4", "a$b&c;'d\".mp4"])
def test_awkward_paths(tmp_path, style, name):
    clip = make_video(tmp_path / name, n_frames=2)
    output = tmp_path / ("out " + name)
    result = _cli("video", clip.path, "-s", style, "-o", output, *FAST)  # absolute, so "-" is not first
    assert result.exit_code == 0, result.output
    assert output.exists()


@pytest.mark.parametrize("kind", ["webp", "1x1", "huge header", "text"])
def test_style_image_kinds_through_the_cli(tmp_path, kind):
    content = tmp_path / "content.png"
    make_image(content)
    style = tmp_path / {"webp": "style.webp", "1x1": "dot.png", "huge header": "huge.png", "text": "notes.png"}[kind]
    if kind == "webp":
        make_image(style, size=(40, 40))
    elif kind == "1x1":
        Image.new("RGB", (1, 1)).save(style)
    elif kind == "huge header":
        from conftest import png_header
        style.write_bytes(png_header(40000, 40000))
    else:
        style.write_text("not an image")
    result = _cli("image", content, "-s", style, "-o", tmp_path / "out.png", *FAST)
    if kind == "webp":
        assert result.exit_code == 0, result.output
    else:
        _one_error_line(result, style.name)
        assert not (tmp_path / "out.png").exists()


def test_frame_folder_with_mixed_sizes_and_extensions(tmp_path, style):
    folder = tmp_path / "frames"
    folder.mkdir()
    make_image(folder / "1.png", size=(32, 24))
    make_image(folder / "2.jpg", size=(32, 24))
    make_image(folder / "10.bmp", size=(64, 40))  # other size: resized to the first, with a warning
    result = _cli("frames", folder, "-s", style, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert "differ in size" in result.output and "10.bmp" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "10.png", "2.png"]
    assert {io.read_image(p).shape for p in (tmp_path / "out").iterdir()} == {(24, 32, 3)}


def test_output_under_a_file_is_refused_before_work(tmp_path, style):
    clip = make_video(tmp_path / "clip.mp4", n_frames=2)
    (tmp_path / "file.txt").write_text("x")
    result = _cli("video", clip.path, "-s", style, "-o", tmp_path / "file.txt" / "out.mp4", *FAST)
    _one_error_line(result, "does not exist")


def test_disk_full_mid_run_leaves_no_partial_output(tmp_path, style, monkeypatch):
    clip = make_video(tmp_path / "clip.mp4", n_frames=3)
    original, calls = io.VideoWriter.write, []

    def full_disk(self, image, pts):
        calls.append(1)
        if len(calls) == 2:
            raise OutputError(f"{self.path}: cannot write video ({os.strerror(28)})")
        return original(self, image, pts)

    monkeypatch.setattr(io.VideoWriter, "write", full_disk)
    output = tmp_path / "out.mp4"
    result = _cli("video", clip.path, "-s", style, "-o", output, *FAST)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(errors) == 1 and "No space left on device" in errors[0] and "out.mp4" in errors[0]
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (tmp_path / "out.mp4.parts").exists()  # the finished frame is kept for --resume
