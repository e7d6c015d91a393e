"""Video files through PyAV: probe, decode upright RGB frames with their pts, encode H.264 with audio.

Convention: frames are uint8 (H, W, 3) RGB arrays, upright, at the fitted size. Timestamps stay in
the input's units: `pts` is an int counted in `time_base` (a Fraction of a second), never a float.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from ..errors import InputError, OutputError
from .image import fit_size, temp_beside

# PyAV's errors subclass builtins (FileNotFoundError, ValueError...), and some checks raise those.
AV_ERRORS = (av.FFmpegError, OSError, ValueError)
AUDIO_MODES = ("copied", "transcoded", "none")
FALLBACK_RATE = Fraction(25)  # frames/s, only to invent pts for frames that come without one
_AAC_LAYOUTS = {1: "mono"}  # anything else is downmixed to stereo
# Audio codecs remuxed as they are; others (PCM, Vorbis...) become AAC. A container's
# `supported_codecs` is no guide: mp4 lists pcm_s16le, and muxes it from a .mov source (as 'sowt'),
# but browsers and most players cannot play that.
COPY_AUDIO_CODECS = ("aac", "mp3", "ac3", "eac3", "opus", "flac", "alac")


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learned about a file; sizes are as displayed, before any resizing."""

    path: Path
    width: int  # px, after rotation and sample aspect ratio
    height: int  # px, after rotation
    n_frames: int | None  # from the container, or estimated from duration x rate; None if unknown
    time_base: Fraction  # seconds per pts unit of the video stream
    average_rate: Fraction | None  # frames/s; None for streams that do not say
    rotation: int  # 0, 90, 180 or 270: counter-clockwise turn that makes decoded frames upright
    has_audio: bool
    audio_codec: str | None  # e.g. "aac"; None without audio
    n_video_streams: int = 1  # stylereel uses the first


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: the picture and when to show it."""

    image: np.ndarray  # uint8 (H, W, 3) RGB, upright, resized
    pts: int  # presentation time in `time_base` units, as decoded
    time_base: Fraction  # seconds per pts unit
    index: int  # 0-based position in decode order


def default_output(path: Path) -> Path:
    """The output path used when none is given: `clip.mp4` -> `clip.stylized.mp4` beside the input."""
    return path.with_name(f"{path.stem}.stylized.mp4")


def probe_video(path: Path) -> VideoInfo:
    """Read the first video stream's size, rotation, frame count and timing, and whether there is audio.

    Decodes at most one frame, for the rotation the display matrix attaches to frames.

    Raises:
        InputError: the file is missing, not a video PyAV can open, or has no video stream.
    """
    with _open_input(path) as container:
        stream = _video_stream(path, container)
        first = _first_frame(container, stream)
        rotation = _normalize_rotation(first.rotation) if first is not None else 0
        width, height = _display_size(stream, first)
        if rotation in (90, 270):
            width, height = height, width
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            n_frames=_estimate_frames(container, stream),
            time_base=stream.time_base,
            average_rate=stream.average_rate,
            rotation=rotation,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            n_video_streams=len(container.streams.video),
        )


class VideoFrames(Iterator[VideoFrame]):
    """Iterator over a video's decoded frames, and what was lost on the way.

    Once it is exhausted, `lost` counts the frames the file declares that never decoded (its frame
    count, else its declared length, tells), and `error` names the file and says why when a packet
    was damaged or reading failed (None otherwise: a file that merely ends early shows in `lost`).
    """

    def __init__(self, path: Path, *, max_side: int | None, max_frames: int | None) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.info = probe_video(path)
        self.size = fit_size(self.info.width, self.info.height, max_side, even=True)  # (width, height)
        self.error: str | None = None
        self.lost = 0
        self._n_damaged = 0  # packets the decoder refused
        self._read_failed = False  # the demuxer gave up before the end of the file
        self._problem: str | None = None  # the last decoding or reading error
        self._frames = self._decode(max_frames)

    def __next__(self) -> VideoFrame:
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding and close the file; iterating to the end does this too."""
        self._frames.close()

    def _decode(self, max_frames: int | None) -> Iterator[VideoFrame]:
        path = self.info.path
        with _open_input(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index, pts, shown_until = -1, None, None
            for index, frame in enumerate(self._decode_around_damage(container, stream)):
                pts = _frame_pts(frame, index, pts, self.info)
                shown_until = _shown_until(frame, self.info)
                image = _to_rgb(frame, self.info.rotation, self.size)
                yield VideoFrame(image=image, pts=pts, time_base=stream.time_base, index=index)
                if index + 1 == max_frames:
                    return
            if index < 0:
                detail = f" ({self._problem})" if self._problem else ""
                raise InputError(f"{path}: no decodable video frames{detail}")
            lost = _count_lost(stream, n_decoded=index + 1, shown_until=shown_until, n_refused=self._n_damaged)
            self.lost = min(lost, max_frames - index - 1) if max_frames else lost
            self.error = self._describe_damage(index + 1)

    def _decode_around_damage(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decode packet by packet: a packet the decoder refuses is skipped, so the frames after the
        damage still come out; a reading error ends the stream."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except AV_ERRORS as error:
                self._read_failed, self._problem = True, _problem(error)
                return
            try:
                frames = packet.decode()
            except AV_ERRORS as error:
                self._n_damaged += 1
                self._problem = _problem(error)
                continue
            yield from frames

    def _describe_damage(self, n_decoded: int) -> str | None:
        """What went wrong while decoding and what it cost, naming the file; None if nothing did."""
        causes = []
        if self._n_damaged:
            causes.append(f"{self._n_damaged} damaged packet(s) could not be decoded")
        if self._read_failed:
            causes.append("reading stopped early")
        if not causes:
            return None
        cost = f"frames: {n_decoded} decoded, {self.lost} lost"
        return f"{self.info.path}: {' and '.join(causes)} ({self._problem}); {cost}"


def read_video(path: Path, *, max_side: int | None, max_frames: int | None = None) -> VideoFrames:
    """Decode the first video stream as upright RGB frames whose longer side is `max_side`.

    Convention: `VideoFrame.image` is uint8 (H, W, 3) RGB; call `to_tensor` to enter the library.

    Frames are rotated by the display matrix, then resized (INTER_AREA) to
    `fit_size(width, height, max_side, even=True)` so yuv420p can encode them. Each keeps its
    decoded pts; a frame without one gets `index / rate`, and one that does not increase gets the
    previous pts plus one tick, so the pts always increase as `VideoWriter` needs. Decoding stops
    after `max_frames` frames. A damaged file gives the frames that decode: a packet the decoder
    refuses is skipped and a reading error ends the stream; the exhausted iterator's `lost` then
    counts the declared frames that never came out, and its `error` says what went wrong.

    Raises:
        InputError: at once if `probe_video` fails; on first use if no frame decodes at all.
        ValueError: `max_frames` is below 1.
    """
    return VideoFrames(path, max_side=max_side, max_frames=max_frames)


class VideoWriter:
    """Encode frames to H.264 (yuv420p, BT.709) in a temp file beside `path`; replace `path` on success.

    Use as a context manager. Each `write(image, pts)` keeps the frame's pts in `time_base`, so a
    variable frame rate survives. The first audio stream of `audio_from` is remuxed as is when the
    output container accepts its codec, and transcoded to AAC otherwise; it is interleaved with the
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
            raise ValueError(f"yuv420p needs even sizes of at least 2, got {width}x{height}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
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
            self._output = av.open(str(self._temp), "w")
            self._stream = _add_video_stream(self._output, self)
        except AV_ERRORS as error:
            self._abort()
            raise OutputError(f"{self.path}: cannot create video ({_problem(error)})") from error
        try:
            self._audio = _AudioTrack.open(self.audio_from, self._output) if self.audio_from else None
        except AV_ERRORS as error:
            self._abort()
            problem = f"cannot add audio from {self.audio_from} ({_problem(error)})"
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
        frame = _to_video_frame(image, pts, self.time_base)
        self._times = [*self._times[-1:], time]
        try:
            self._output.mux(self._stream.encode(frame))
            if self._audio is not None:
                self._audio.mux_until(time)
        except AV_ERRORS as error:
            raise OutputError(f"{self.path}: cannot write video ({_problem(error)})") from error
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
            raise OutputError(f"{self.path}: cannot write video ({_problem(error)})") from error

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
    """The first audio stream of a file, remuxed or transcoded to AAC into an output, in time order."""

    def __init__(
        self, source: av.container.InputContainer, output: av.container.OutputContainer, *, copy: bool
    ) -> None:
        self.mode = "copied" if copy else "transcoded"
        self._input = source
        self._source = source.streams.audio[0]
        self._output = output
        self._resampler: av.AudioResampler | None = None
        if copy:
            self._stream = output.add_stream_from_template(self._source)
        else:
            self._stream, self._resampler = _add_aac_stream(output, self._source)
        self._packets = source.demux(self._source)
        self._pending = self._next_packet()

    @classmethod
    def open(cls, path: Path, output: av.container.OutputContainer) -> _AudioTrack | None:
        """Open `path`'s first audio stream for `output`; None if it has none."""
        source = _open_input(path)
        if not source.streams.audio:
            source.close()
            return None
        try:
            codec = source.streams.audio[0].codec_context.name
            copy = codec in COPY_AUDIO_CODECS and _can_copy(path, output.format.name)
            return cls(source, output, copy=copy)
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


def _open_input(path: Path) -> av.container.InputContainer:
    """`av.open` for reading, with its errors turned into InputError naming the path."""
    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except EOFError:  # a header, then nothing: e.g. a video track that never got a frame
        raise InputError(f"{path}: ends before its first video frame") from None
    except AV_ERRORS as error:
        raise InputError(f"{path}: not a video file ({_problem(error)})") from error


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    if not container.streams.video:
        raise InputError(f"{path}: no video stream")
    return container.streams.video[0]


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame | None:
    """The first decodable frame, or None; decoding problems are left for `read_video` to report."""
    try:
        return next(container.decode(stream), None)
    except AV_ERRORS:
        return None


def _display_size(stream: av.VideoStream, frame: av.VideoFrame | None) -> tuple[int, int]:
    """Coded size (from the first frame if any) with non-square pixels stretched to square ones."""
    width, height = (frame.width, frame.height) if frame is not None else (stream.width, stream.height)
    ratio = stream.sample_aspect_ratio
    if ratio and ratio != 1:
        width = max(1, round(width * ratio))
    return width, height


def _estimate_frames(container: av.container.InputContainer, stream: av.VideoStream) -> int | None:
    """The declared frame count, else the stream's declared length x rate, else the file's."""
    declared = _declared_frames(stream)
    if declared:
        return declared
    rate = stream.average_rate or stream.guessed_rate
    end = _declared_end(stream)
    if rate and end:
        return round((end - (stream.start_time or 0) * stream.time_base) * rate)
    if rate and container.duration:
        return round(Fraction(container.duration, av.time_base) * rate)
    return None


def _declared_frames(stream: av.VideoStream) -> int | None:
    """The frame count the file states: the stream header's, or the statistics tag mkvmerge writes."""
    tag = _track_tag(stream, "NUMBER_OF_FRAMES")
    return stream.frames or (int(tag) if tag.isdecimal() else None)


def _declared_end(stream: av.VideoStream) -> Fraction | None:
    """When the stream's last frame stops showing, in seconds, as the file states; None if it does not.

    Matroska keeps no stream duration, but its muxers tag each track with DURATION, which for
    FFmpeg's is the end time (Matroska times start at 0). The file's own duration is no substitute:
    it also counts a longer audio track.
    """
    if stream.duration:
        return ((stream.start_time or 0) + stream.duration) * stream.time_base
    hours, _, rest = _track_tag(stream, "DURATION").partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        return Fraction(hours) * 3600 + Fraction(minutes) * 60 + Fraction(seconds)
    except ValueError:
        return None


def _track_tag(stream: av.VideoStream, name: str) -> str:
    """A Matroska track tag, or ""; FFmpeg appends the tag's language, as mkvmerge's "DURATION-eng"."""
    return stream.metadata.get(name) or stream.metadata.get(f"{name}-eng", "")


def _count_lost(stream: av.VideoStream, *, n_decoded: int, shown_until: Fraction | None, n_refused: int) -> int:
    """Frames that did not decode: short of the declared count, else the refused packets or the
    frames that would fill the time between the last decoded frame and the declared end."""
    declared = _declared_frames(stream)
    if declared:
        return max(0, declared - n_decoded)
    rate = stream.average_rate or stream.guessed_rate
    end = _declared_end(stream)
    missing = (end - shown_until) * rate if rate and end and shown_until is not None else 0
    return max(n_refused, round(missing) if missing >= 1 else 0)


def _normalize_rotation(degrees: float) -> int:
    """A display-matrix angle snapped to 0, 90, 180 or 270 (counter-clockwise)."""
    return round(degrees / 90) % 4 * 90


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded (H, W, 3) image counter-clockwise by `rotation` degrees (a multiple of 90).

    FFmpeg's display matrix angle is the counter-clockwise turn to apply for display (PyAV's
    `VideoFrame.rotation`; ffmpeg's autorotate does the same); phones store -90 for portrait.
    """
    return np.ascontiguousarray(np.rot90(image, k=_normalize_rotation(rotation) // 90))  # (W, H, 3) if 90/270


def _to_rgb(frame: av.VideoFrame, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """Decoded frame -> upright uint8 (H, W, 3) RGB at `size` (width, height)."""
    # PyAV converts with the frame's own colour range and matrix, so full-range (JPEG) video is not
    # squashed, and tagged BT.709 is honoured.
    image = upright(frame.to_ndarray(format="rgb24"), rotation)  # (H, W, 3)
    if (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # (h, w, 3)
    return image


def _frame_pts(frame: av.VideoFrame, index: int, previous: int | None, info: VideoInfo) -> int:
    """The decoded pts; `index / rate` if missing; one tick after `previous` if it does not increase."""
    pts = frame.pts
    if pts is None:
        pts = round(index / (info.average_rate or FALLBACK_RATE) / info.time_base)
    # Damaged files can repeat a pts; an encoder refuses that, so nudge rather than drop the frame.
    return pts if previous is None or pts > previous else previous + 1


def _shown_until(frame: av.VideoFrame, info: VideoInfo) -> Fraction | None:
    """When a decoded frame stops showing, in seconds: its time plus its duration (or one frame)."""
    if frame.pts is None or frame.time_base is None:
        return None
    duration = frame.duration * frame.time_base if frame.duration else 1 / (info.average_rate or FALLBACK_RATE)
    return frame.pts * frame.time_base + duration


def _add_video_stream(output: av.container.OutputContainer, writer: VideoWriter) -> av.VideoStream:
    """An H.264 stream whose time base is the input's, so pts can be copied unchanged."""
    # cpu-independent: without it x264's SIMD macroblock-tree gives other bytes (and pixels) on
    # every run, so the same seed would not reproduce the same video.
    options = {"crf": str(writer.crf), "x264-params": "cpu-independent=1"}
    stream = output.add_stream("libx264", rate=writer.rate, options=options)
    stream.width, stream.height, stream.pix_fmt = writer.width, writer.height, "yuv420p"
    stream.time_base = writer.time_base
    context = stream.codec_context
    context.time_base = writer.time_base
    # Tag what `_to_video_frame` produces: limited range BT.709, which players assume for HD anyway.
    context.color_range, context.colorspace, context.color_primaries, context.color_trc = 1, 1, 1, 1
    return stream


def _to_video_frame(image: np.ndarray, pts: int, time_base: Fraction) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
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


def _add_aac_stream(
    output: av.container.OutputContainer, source: av.AudioStream
) -> tuple[av.AudioStream, av.AudioResampler]:
    """An AAC stream at the source's rate (48 kHz if AAC lacks it), mono or stereo, and its resampler."""
    context = source.codec_context
    rate = context.sample_rate if context.sample_rate in av.Codec("aac", "w").audio_rates else 48000
    layout = _AAC_LAYOUTS.get(context.channels, "stereo")
    stream = output.add_stream("aac", rate=rate, layout=layout)
    return stream, av.AudioResampler(format="fltp", layout=layout, rate=rate)


def _problem(error: BaseException) -> str:
    """The reason in an FFmpeg/OS error, without the path it often repeats."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
