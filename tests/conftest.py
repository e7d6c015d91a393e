"""Synthetic media for the tests: tiny clips with a moving blob, sine-wave audio and odd images.

Every factory writes under the test's `tmp_path` and returns what the reader should find, so tests
compare against known frames instead of stored files (pytorchvideo's lossless moving-blob video).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

NTSC = Fraction(30000, 1001)  # frames/s
SAMPLE_RATE = 44100  # Hz


@dataclass(frozen=True)
class Clip:
    """A generated clip and what decoding it should give back."""

    path: Path
    frames: list[np.ndarray]  # uint8 (H, W, 3) RGB as encoded (before any display rotation)
    pts: list[int]  # in time_base units
    time_base: Fraction  # the one asked of the muxer; it may store another (check times, not units)
    rate: Fraction | None


def blob_frames(size: tuple[int, int], n_frames: int) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames: a white 8x8 square moving right by 4 px per frame over a dark gradient.

    The top-left 4x4 corner is red in every frame, so rotation and flips are visible.
    """
    width, height = size
    background = np.zeros((height, width, 3), np.uint8)
    background[..., 2] = np.linspace(0, 96, width, dtype=np.uint8)  # (W,) broadcast over rows
    frames = []
    for index in range(n_frames):
        frame = background.copy()
        left = (4 * index) % max(1, width - 8)
        frame[height // 2 - 4 : height // 2 + 4, left : left + 8] = 255
        frame[:4, :4] = (255, 0, 0)
        frames.append(frame)
    return frames


def sine(n_samples: int, *, channels: int = 2, frequency: float = 440.0) -> np.ndarray:
    """float32 (channels, n_samples) sine wave at 0.3 amplitude."""
    t = np.arange(n_samples) / SAMPLE_RATE
    return np.tile((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), (channels, 1))


def make_video(
    path: Path,
    *,
    size: tuple[int, int] = (48, 32),
    n_frames: int = 4,
    rate: Fraction | None = NTSC,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    with_audio: bool = True,
    audio_codec: str = "aac",
    rotation: int = 0,
    full_range: bool = False,
    sar: Fraction | None = None,
    audio_seconds: float | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Clip:
    """Write a moving-blob clip; `pts` (one per frame) gives variable timing and needs `time_base`.

    Lossless codecs ("png" with rgb24, "ffv1" with bgr0) decode to exactly `Clip.frames`;
    libx264 runs at crf 0 but its yuv420p still blurs colour edges a little. `sar` stores
    non-square pixels, `audio_seconds` makes the audio longer or shorter than the video (default:
    as long), `options` go to the video encoder and `container_options` to the muxer.
    """
    frames = blob_frames(size, len(pts) if pts else n_frames)
    time_base = time_base or (1 / rate if rate else Fraction(1, 1000))
    pts = pts or [round(index / rate / time_base) for index in range(len(frames))]
    pix_fmt = pix_fmt or {"png": "rgb24", "ffv1": "bgr0"}.get(codec, "yuv420p")
    options = ({"crf": "0"} if codec == "libx264" else {}) | (options or {})
    with av.open(str(path), "w", options=container_options or {}) as output:
        video = output.add_stream(codec, rate=rate, options=options)
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        video.time_base = video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        if full_range:
            video.codec_context.color_range = 2
        if sar:
            video.codec_context.sample_aspect_ratio = sar
        audio = _add_audio(output, audio_codec) if with_audio else None
        for frame, frame_pts in zip(frames, pts):
            encoded = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if full_range:
                encoded = encoded.reformat(format=pix_fmt, dst_color_range="JPEG")
            encoded.pts, encoded.time_base = frame_pts, time_base
            output.mux(video.encode(encoded))
        output.mux(video.encode(None))
        if audio is not None:
            duration = (pts[-1] * time_base) + (1 / rate if rate else Fraction(1, 10))
            _write_audio(output, audio, round((audio_seconds or duration) * SAMPLE_RATE))
    return Clip(path=path, frames=frames, pts=pts, time_base=time_base, rate=rate)


def make_audio(path: Path, *, codec: str = "aac", seconds: float = 0.2) -> Path:
    """An audio-only file (e.g. `.m4a` with AAC) holding a sine wave."""
    with av.open(str(path), "w") as output:
        _write_audio(output, _add_audio(output, codec), round(seconds * SAMPLE_RATE))
    return path


def _add_audio(output: av.container.OutputContainer, codec: str) -> av.AudioStream:
    # FFmpeg's own Vorbis encoder is marked experimental; the others ignore the flag.
    return output.add_stream(codec, rate=SAMPLE_RATE, layout="stereo", options={"strict": "experimental"})


def _write_audio(output: av.container.OutputContainer, stream: av.AudioStream, n_samples: int) -> None:
    """Encode a sine wave in 1024-sample frames, then flush."""
    audio_format = stream.codec_context.format.name
    samples = sine(n_samples)  # (2, n)
    for start in range(0, n_samples, 1024):
        chunk = samples[:, start : start + 1024]
        if audio_format == "s16":  # packed: (1, n * channels), interleaved
            chunk = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=audio_format, layout="stereo")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


def make_image(
    path: Path, *, size: tuple[int, int] = (32, 24), mode: str = "RGB", **save: object
) -> np.ndarray:
    """Save the first blob frame at `size` converted to Pillow `mode`; return the RGB array saved."""
    array = blob_frames(size, 1)[0]
    Image.fromarray(array, "RGB").convert(mode).save(path, **save)
    return array


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels, followed by a tiny bogus IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def clip(tmp_path: Path) -> Clip:
    """4 frames of 48x32 H.264 at 30000/1001 fps with AAC audio, in .mp4."""
    return make_video(tmp_path / "clip.mp4")


@pytest.fixture
def lossless_clip(tmp_path: Path) -> Clip:
    """4 frames of 48x32 FFV1 (bgr0) video in .mkv, decoding to exactly `Clip.frames`; no audio."""
    return make_video(tmp_path / "lossless.mkv", codec="ffv1", rate=Fraction(25), with_audio=False)


@pytest.fixture
def seeded_rng() -> np.random.Generator:
    return np.random.default_rng(0)


class HostReads(TorchDispatchMode):
    """Records the operations that bring a value to the host (`.item()`, `float()`, `bool()` on a
    tensor) or make a tensor from host data: on a GPU each of them waits for the device."""

    WATCHED = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.lift_fresh.default)

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.WATCHED:
            self.seen.append(func)
        return func(*args, **(kwargs or {}))


def shot_frames(lengths: tuple[int, ...], size: tuple[int, int] = (48, 32), seed: int = 0) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames of `len(lengths)` shots: each a smooth random texture of its own that
    pans right by 1 px per frame, so the flow links the frames of a shot and nothing across a cut."""
    import cv2

    width, height = size
    rng = np.random.default_rng(seed)
    frames = []
    for length in lengths:
        texture = cv2.GaussianBlur((rng.random((height, width + length, 3)) * 255).astype(np.uint8), (0, 0), 2.0)
        texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
        frames += [np.ascontiguousarray(texture[:, length - index : length - index + width]) for index in range(length)]
    return frames


def make_shots_clip(path: Path, lengths: tuple[int, ...], *, size: tuple[int, int] = (48, 32)) -> Clip:
    """A lossless clip (FFV1 in MKV, 24 fps) of `shot_frames` with an AAC track as long as the video."""
    frames = shot_frames(lengths, size)
    rate = Fraction(24)
    with av.open(str(path), "w") as output:
        video = output.add_stream("ffv1", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "bgr0"
        audio = _add_audio(output, "aac")
        for index, frame in enumerate(frames):
            encoded = av.VideoFrame.from_ndarray(frame, format="rgb24")
            encoded.pts, encoded.time_base = index, 1 / rate
            output.mux(video.encode(encoded))
        output.mux(video.encode(None))
        _write_audio(output, audio, round(len(frames) / rate * SAMPLE_RATE))
    return Clip(path=path, frames=frames, pts=list(range(len(frames))), time_base=1 / rate, rate=rate)


def write_lossless_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """Write uint8 (H, W, 3) RGB `frames` as lossless FFV1 (RGB) at 25 fps, pts 0, 1, 2 ...; returns `path`."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


@pytest.fixture
def style(tmp_path: Path) -> Path:
    """A 48x48 stripy, saturated image: a style far from the test clips' statistics."""
    y, x = np.mgrid[0:48, 0:48]
    array = np.stack([(np.sin(x / 2.0) > 0) * 255, (np.sin((x + y) / 3.0) > 0) * 200, (y % 8 < 4) * 90], -1)
    path = tmp_path / "style.png"
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def interrupt_on_call(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the n-th `sequence.stylize_frame` call raise KeyboardInterrupt, as Ctrl-C would."""
    from stylereel.pipeline import sequence

    original, calls = sequence.stylize_frame, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(sequence, "stylize_frame", interrupted)


BAD_MODELS = ("not safetensors", "cut short", "foreign", "another architecture", "another version", "damaged tensors")


def write_bad_model(path: Path, kind: str) -> Path:
    """A model file stylereel must refuse, of one of `BAD_MODELS` kinds ("another version" is 99)."""
    import json

    from safetensors.torch import save_file
    from stylereel.pipeline.network import MODEL_KEY, TransformNet

    def described(**changes) -> dict[str, str]:
        description = {"architecture": "stylereel-transform", "version": 1, "width": 4, "n_residual": 2,
                       "trained_for": {}}
        return {MODEL_KEY: json.dumps(description | changes)}

    tensors = {name: value.contiguous() for name, value in TransformNet(width=4, n_residual=2).state_dict().items()}
    if kind == "not safetensors":
        path.write_bytes(b"\x00" * 64)
    elif kind == "cut short":
        save_file(tensors, str(path), metadata=described())
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "foreign":
        save_file(tensors, str(path), metadata={"format": "pt"})
    elif kind == "another architecture":
        save_file(tensors, str(path), metadata=described(architecture="esrgan"))
    elif kind == "another version":
        save_file(tensors, str(path), metadata=described(version=99))
    elif kind == "damaged tensors":
        save_file({name: value[..., :1].contiguous() for name, value in tensors.items()}, str(path),
                  metadata=described())
    else:
        raise ValueError(f"no bad model of kind {kind!r}")
    return path
