"""Encoding video files through PyAV: the output's suffix picks the codec, with the input's audio.

Convention: `VideoWriter.write` takes uint8 (H, W, 3) RGB arrays and pts in the input's `time_base`.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ..errors import OutputError
from .decode import AV_ERRORS, av_problem, open_input
from .image import temp_beside

AUDIO_MODES = ("copied", "transcoded", "none")
# Y'CbCr outputs of every size are converted with BT.709 at limited range and tagged so, from these
# two values, so the tags cannot drift from the conversion: players decode by the tags, and BT.709
# is also what they assume for untagged HD. swscale numbers its matrices as the tags do
# (ITU709 = AVCOL_SPC_BT709 = 1), so one value serves both.
YUV_MATRIX, YUV_RANGE = Colorspace.ITU709, ColorRange.MPEG
_STEREO_OR_MONO = {1: "mono"}  # a transcoded track with more channels is downmixed to stereo


@dataclass(frozen=True)
class OutputFormat:
    """How a video is written for one output suffix."""

    name: str  # the container, as messages say it
    container: str  # FFmpeg muxer
    codec_name: str  # the video codec, as messages say it
    codec: str  # video encoder
    pix_fmt: str  # pixel format the RGB frames are converted to
    options: dict[str, str]  # video encoder options; "{crf}" becomes the run's crf
    audio_name: str  # the audio codec below, as messages say it
    audio_codec: str  # audio encoder for a source codec the container does not take
    copy_audio: tuple[str, ...]  # source audio codecs remuxed as they are, if a trial mux accepts them


# The output's suffix picks the format, as editors expect. Copy lists are not the containers'
# `supported_codecs`, which are no guide: mp4 lists pcm_s16le and muxes it from a .mov source (as
# 'sowt'), but browsers and most players cannot play that.
FORMATS = {
    # cpu-independent: without it x264's SIMD macroblock-tree gives other bytes (and pixels) on every
    # run, so the same seed would not reproduce the same video.
    ".mp4": OutputFormat("MP4", "mp4", "H.264", "libx264", "yuv420p",
                         {"crf": "{crf}", "x264-params": "cpu-independent=1"}, "AAC", "aac",
                         ("aac", "mp3", "ac3", "eac3", "opus", "flac", "alac")),
    # ProRes 422 HQ (profile 3), 10-bit 4:2:2; PCM is the audio editors expect beside it.
    ".mov": OutputFormat("MOV", "mov", "ProRes 422 HQ", "prores_ks", "yuv422p10le", {"profile": "3", "vendor": "apl0"},
                         "PCM", "pcm_s16le", ("pcm_s16le", "pcm_s24le", "aac", "alac", "mp3", "ac3")),
    # FFV1 in RGB (bgr0): the decoded pixels are the stylized ones, bit for bit. FLAC keeps the audio lossless too.
    ".mkv": OutputFormat("MKV", "matroska", "FFV1", "ffv1", "bgr0", {"level": "3", "g": "1"}, "FLAC", "flac",
                         ("aac", "mp3", "ac3", "eac3", "opus", "vorbis", "flac", "alac", "pcm_s16le", "pcm_s24le")),
    # Constant quality (crf 31 with no bitrate cap, libvpx's suggestion for HD); WebM takes only Opus and Vorbis.
    ".webm": OutputFormat("WebM", "webm", "VP9", "libvpx-vp9", "yuv420p", {"crf": "31", "b": "0", "row-mt": "1"},
                          "Opus", "libopus", ("opus", "vorbis")),
}


def output_format(path: Path) -> OutputFormat:
    """The `FORMATS` entry for `path`'s suffix (any case).

    Raises:
        OutputError: the suffix is not in `FORMATS`, or this PyAV build lacks its encoder.
    """
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{key} ({value.codec_name})" for key, value in FORMATS.items())
        raise OutputError(f"{path}: cannot write '{path.suffix}' videos; the suffix picks the format: {known}")
    chosen = FORMATS[suffix]
    missing = [codec for codec in (chosen.codec, chosen.audio_codec) if codec not in av.codecs_available]
    if missing:
        raise OutputError(f"{path}: this PyAV build has no {missing[0]} encoder for {suffix} outputs; use another suffix")
    return chosen


def default_output(path: Path) -> Path:
    """The output path used when none is given: `clip.mp4` -> `clip.stylized.mp4` beside the input."""
    return path.with_name(f"{path.stem}.stylized.mp4")


class VideoWriter:
    """Encode frames in the format `path`'s suffix picks (`FORMATS`: .mp4 H.264, .mov ProRes 422 HQ,
    .mkv FFV1, .webm VP9) to a temp file beside `path`; replace `path` on success.

    Use as a context manager. Each `write(image, pts)` keeps the frame's pts in `time_base`, so a
    variable frame rate survives (Matroska and WebM store milliseconds: times are kept to 1 ms).
    `crf` applies to H.264 only. The first audio stream of `audio_from` is remuxed as is when the
    output container accepts its codec, and transcoded to the format's audio codec otherwise
    (`format.audio_codec`: AAC, PCM, FLAC or Opus); it is interleaved with the
    video and cut at the end of the last frame. `audio_mode` then reads "copied", "transcoded" or
    "none". On an exception (Ctrl-C included) the temp file is deleted and `path` is left untouched.

    Convention: `write` takes uint8 (height, width, 3) RGB; `to_array` makes one from a tensor.

    Raises:
        OutputError: the file cannot be created or written (folder missing, not writable, unknown
            suffix, disk full), or no frame was written.
        InputError: `audio_from` cannot be opened.
        ValueError: a bad size, crf, image shape or non-increasing pts.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | None,
        crf: int = 18,
        audio_from: Path | None = None,
    ) -> None:
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(f"video needs even sizes of at least 2 (4:2:0, 4:2:2), got {width}x{height}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.format = output_format(path)
        self.path = path
        self.width, self.height = width, height
        self.time_base, self.rate, self.crf = time_base, rate, crf
        self.audio_from = audio_from
        self.audio_mode = "none"
        self.n_written = 0
        self._temp: Path | None = None
        self._output: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._audio: _AudioTrack | None = None
        self._times: list[Fraction] = []  # the last two frame times, in seconds

    def __enter__(self) -> VideoWriter:
        try:
            self._temp = temp_beside(self.path)
            self._output = av.open(str(self._temp), "w", format=self.format.container)
            self._stream = _add_video_stream(self._output, self)
        except AV_ERRORS as error:
            self._abort()
            raise OutputError(f"{self.path}: cannot create video ({av_problem(error)})") from error
        try:
            self._audio = _AudioTrack.open(self.audio_from, self._output, self.format) if self.audio_from else None
        except AV_ERRORS as error:
            self._abort()
            problem = f"cannot add audio from {self.audio_from} ({av_problem(error)})"
            raise OutputError(f"{self.path}: {problem}") from error
        except BaseException:
            self._abort()
            raise
        self.audio_mode = self._audio.mode if self._audio is not None else "none"
        return self

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one uint8 (H, W, 3) RGB frame shown at `pts` (in `time_base` units, increasing)."""
        if self._output is None or self._stream is None:
            raise RuntimeError("VideoWriter.write() needs an open writer: use it in a `with` block")
        if image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            expected = (self.height, self.width, 3)
            raise ValueError(f"expected uint8 {expected}, got {image.dtype} {image.shape}")
        pts = operator.index(pts)  # numpy ints are fine, floats are not
        time = pts * self.time_base
        if self._times and time <= self._times[-1]:
            raise ValueError(f"pts must increase: {pts} after {self._times[-1] / self.time_base}")
        frame = _to_video_frame(image, pts, self.time_base, self.format.pix_fmt)
        self._times = [*self._times[-1:], time]
        try:
            self._output.mux(self._stream.encode(frame))
            if self._audio is not None:
                self._audio.mux_until(time)
        except AV_ERRORS as error:
            raise OutputError(f"{self.path}: cannot write video ({av_problem(error)})") from error
        self.n_written += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _finish(self) -> None:
        """Flush the encoder, add the remaining audio, close the file and move it into place."""
        if self.n_written == 0:
            raise OutputError(f"{self.path}: no frames were written")
        try:
            self._output.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(self._end_time())
            self._output.close()
            os.replace(self._temp, self.path)
        except AV_ERRORS as error:
            raise OutputError(f"{self.path}: cannot write video ({av_problem(error)})") from error

    def _abort(self) -> None:
        """Close everything without raising and delete the temp file."""
        for closeable in (self._audio, self._output):
            if closeable is not None:
                with contextlib.suppress(Exception):
                    closeable.close()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)

    def _end_time(self) -> Fraction:
        """When the last frame stops showing, in seconds: its time plus one frame duration."""
        if self.rate:
            return self._times[-1] + 1 / self.rate
        return self._times[-1] + (self._times[-1] - self._times[0])


class _AudioTrack:
    """The first audio stream of a file, remuxed or transcoded into an output, in time order."""

    def __init__(
        self, source: av.container.InputContainer, output: av.container.OutputContainer, *, transcode_to: str | None
    ) -> None:
        self.mode = "transcoded" if transcode_to else "copied"
        self._input = source
        self._source = source.streams.audio[0]
        self._output = output
        self._resampler: av.AudioResampler | None = None
        if transcode_to is None:
            self._stream = output.add_stream_from_template(self._source)
        else:
            self._stream, self._resampler = _add_audio_stream(output, self._source, transcode_to)
        self._packets = source.demux(self._source)
        self._pending = self._next_packet()

    @classmethod
    def open(cls, path: Path, output: av.container.OutputContainer, chosen: OutputFormat) -> _AudioTrack | None:
        """Open `path`'s first audio stream for `output` in the `chosen` format; None if it has none."""
        source = open_input(path)
        if not source.streams.audio:
            source.close()
            return None
        try:
            codec = source.streams.audio[0].codec_context.name
            copy = codec in chosen.copy_audio and _can_copy(path, chosen.container)
            return cls(source, output, transcode_to=None if copy else chosen.audio_codec)
        except BaseException:
            source.close()
            raise

    def mux_until(self, end: Fraction) -> None:
        """Mux the audio packets that start before `end` seconds."""
        while self._pending is not None and self._pending.pts * self._pending.time_base < end:
            if self._resampler is None:
                self._pending.stream = self._stream
                self._output.mux(self._pending)
            else:
                self._transcode(self._source.decode(self._pending))
            self._pending = self._next_packet()

    def finish(self, end: Fraction) -> None:
        """Mux the audio up to `end` seconds, flush the encoder and close the source."""
        self.mux_until(end)
        if self._resampler is not None:
            self._transcode([*self._source.decode(None), None])
            self._output.mux(self._stream.encode(None))
        self.close()

    def close(self) -> None:
        self._input.close()

    def _next_packet(self) -> av.Packet | None:
        # The demuxer ends with an empty flush packet and may yield packets without timestamps;
        # a muxer cannot place those, so skip them (PyAV's remux example does the same).
        for packet in self._packets:
            if packet.dts is not None and packet.pts is not None:
                return packet
        return None

    def _transcode(self, frames: list[av.AudioFrame | None]) -> None:
        """Resample and encode decoded frames; a None frame flushes the resampler."""
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                self._output.mux(self._stream.encode(resampled))


def _add_video_stream(output: av.container.OutputContainer, writer: VideoWriter) -> av.VideoStream:
    """The format's video stream, with the input's time base so pts can be copied unchanged (a
    Matroska muxer then rescales them to its milliseconds)."""
    chosen = writer.format
    options = {name: value.format(crf=writer.crf) for name, value in chosen.options.items()}
    stream = output.add_stream(chosen.codec, rate=writer.rate, options=options)
    stream.width, stream.height, stream.pix_fmt = writer.width, writer.height, chosen.pix_fmt
    stream.time_base = writer.time_base
    context = stream.codec_context
    context.time_base = writer.time_base
    # Tag what `_to_video_frame` produces: for RGB full range, no matrix, sRGB transfer; else
    # `YUV_RANGE` and `YUV_MATRIX`, BT.709 transfer. Primaries are BT.709 either way.
    if _is_rgb(chosen.pix_fmt):
        context.color_range, context.colorspace, context.color_primaries, context.color_trc = 2, 0, 1, 13
    else:
        context.color_range, context.colorspace = YUV_RANGE, YUV_MATRIX
        context.color_primaries, context.color_trc = 1, 1
    return stream


def _is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("bgr", "rgb", "gbr"))


def _to_video_frame(image: np.ndarray, pts: int, time_base: Fraction, pix_fmt: str) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    if _is_rgb(pix_fmt):
        frame = frame.reformat(format=pix_fmt)  # the same values, repacked
    else:
        frame = frame.reformat(format=pix_fmt, dst_colorspace=YUV_MATRIX, dst_color_range=YUV_RANGE)
    frame.pts, frame.time_base = pts, time_base
    return frame


def _can_copy(path: Path, format_name: str) -> bool:
    """Whether `path`'s first audio stream can be remuxed into `format_name`, tried in memory.

    Muxing the first few packets into a throwaway container catches what a codec list cannot
    (codec tags, missing extradata); e.g. pcm_s16le from Matroska into mp4 fails with EINVAL.
    """
    try:
        with av.open(str(path)) as source, av.open(io.BytesIO(), "w", format=format_name) as trial:
            stream = trial.add_stream_from_template(source.streams.audio[0])
            for count, packet in enumerate(source.demux(source.streams.audio[0])):
                if packet.dts is not None:
                    packet.stream = stream
                    trial.mux(packet)
                if count >= 4:
                    break
        return True
    except AV_ERRORS:
        return False


def _add_audio_stream(
    output: av.container.OutputContainer, source: av.AudioStream, codec: str
) -> tuple[av.AudioStream, av.AudioResampler]:
    """A `codec` stream at the source's rate (48 kHz if the encoder lacks it: Opus), mono or stereo,
    in the encoder's first sample format, and the resampler that feeds it."""
    context = source.codec_context
    encoder = av.Codec(codec, "w")
    rates = encoder.audio_rates
    rate = context.sample_rate if not rates or context.sample_rate in rates else 48000
    layout = _STEREO_OR_MONO.get(context.channels, "stereo")
    stream = output.add_stream(codec, rate=rate, layout=layout)
    return stream, av.AudioResampler(format=encoder.audio_formats[0].name, layout=layout, rate=rate)
