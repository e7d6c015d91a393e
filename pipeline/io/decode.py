"""Decoding video files through PyAV: probe, then upright RGB frames with their pts.

Convention: frames are uint8 (H, W, 3) RGB arrays, upright, at the fitted size. Timestamps stay in
the input's units: `pts` is an int counted in `time_base` (a Fraction of a second), never a float.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import InputError
from .image import fit_size

# PyAV's errors subclass builtins (FileNotFoundError, ValueError...), and some checks raise those.
AV_ERRORS = (av.FFmpegError, OSError, ValueError)
FALLBACK_RATE = Fraction(25)  # frames/s, only to invent pts for frames that come without one
SD_MAX_HEIGHT = 576  # lines: PAL, the tallest standard-definition picture; taller untagged video is HD
_UNTAGGED = (2, 3)  # AVCOL_SPC_UNSPECIFIED and _RESERVED: a stream that does not name its matrix

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


def probe_video(path: Path) -> VideoInfo:
    """Read the first video stream's size, rotation, frame count and timing, and whether there is audio.

    Decodes at most one frame, for the rotation the display matrix attaches to frames.

    Raises:
        InputError: the file is missing, not a video PyAV can open, or has no video stream.
    """
    with open_input(path) as container:
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
        with open_input(path) as container:
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
                self._read_failed, self._problem = True, av_problem(error)
                return
            try:
                frames = packet.decode()
            except AV_ERRORS as error:
                self._n_damaged += 1
                self._problem = av_problem(error)
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
    `fit_size(width, height, max_side, even=True)` so yuv420p can encode them. Colours are converted
    by the stream's matrix and range tags; an untagged stream is BT.709 when taller than 576 lines
    and BT.601 otherwise, as players assume (`_source_matrix`). Each frame keeps its
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


def open_input(path: Path) -> av.container.InputContainer:
    """`av.open(path)` for reading (the decoder, and the encoder's audio source).

    Raises:
        InputError: naming `path`: missing, a folder, unreadable, or not a file PyAV can open.
    """
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
        raise InputError(f"{path}: not a video file ({av_problem(error)})") from error


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


def _source_matrix(frame: av.VideoFrame) -> str | None:
    """The Y'CbCr -> RGB matrix to decode `frame` with, as a swscale name; None for the frame's own tag.

    An untagged frame taller than `SD_MAX_HEIGHT` lines is taken as BT.709 (HD) and any other as
    BT.601 (SD), the guess players make (ffplay through SDL 2, whose threshold is 576 lines; mpv
    also takes 1280-wide video as HD). swscale alone takes BT.601 at every size: an untagged
    BT.709 clip's (200, 40, 40) red came out as (185, 23, 41). RGB and grey frames have no matrix,
    so the name does not change them.
    """
    if frame.colorspace not in _UNTAGGED:
        return None
    return "ITU709" if frame.height > SD_MAX_HEIGHT else "ITU601"


def _to_rgb(frame: av.VideoFrame, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """Decoded frame -> upright uint8 (H, W, 3) RGB at `size` (width, height)."""
    # PyAV converts with the frame's own colour range, so full-range (JPEG) video is not squashed,
    # and with its tagged matrix; an untagged one gets the matrix its height implies.
    rgb = frame.reformat(format="rgb24", src_colorspace=_source_matrix(frame)).to_ndarray()  # (H, W, 3)
    image = upright(rgb, rotation)  # (H, W, 3)
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


def av_problem(error: BaseException) -> str:
    """The reason in an FFmpeg/OS error, without the path it often repeats (for the decoder's and
    the encoder's messages)."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
