"""What a run tells its user besides its frames, in the same words on the local path and on Ray.

Each function returns `Notice` events for the caller to emit; none prints.
"""

from __future__ import annotations

from pathlib import Path

from . import io
from .events import Notice


def streams_notice(content: Path, info: io.VideoInfo) -> list[Notice]:
    """A video with several video streams is stylized from its first; say so."""
    if info.n_video_streams <= 1:
        return []
    return [Notice(f"{content}: has {info.n_video_streams} video streams; using the first")]


def decoder_notices(content: Path, error: str | None, lost: int, n_stylized: int) -> list[Notice]:
    """What the decoder met (`io.VideoFrames.error` and `.lost`, once it is exhausted): a damaged
    file, a video shorter than declared."""
    if error:
        return [Notice(f"warning: {error}; {n_stylized} frame(s) were stylized")]
    if lost:
        return [Notice(f"warning: {content}: the video ends before its declared length; "
                       f"frames: {n_stylized} stylized, {lost} lost")]
    return []


def audio_notice(mode: str, codec: str | None, chosen: io.OutputFormat) -> Notice:
    """What happened to the audio (`io.VideoWriter.audio_mode`)."""
    return Notice({
        "copied": f"audio: {codec} stream copied without re-encoding",
        "transcoded": f"audio: {codec} cannot be stored in {chosen.name}, transcoded to {chosen.audio_name}",
    }.get(mode, "audio: the input has no audio stream"))


def folder_notices(folder: Path, skipped: list[Path], resized: list[Path]) -> list[Notice]:
    """What a user should know about a frame folder: files that are not frames, frames resized."""
    notices = [Notice(f"skipped {len(skipped)} non-image file(s) in {folder}: "
                      + ", ".join(p.name for p in skipped[:5]))] if skipped else []
    if resized:
        notices.append(Notice(f"warning: {len(resized)} frame(s) differ in size from the first and will be "
                              f"resized to match: {', '.join(p.name for p in resized[:5])}"))
    return notices
