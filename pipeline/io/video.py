"""Video files through PyAV: kept so `stylereel.pipeline.io.video` imports still work.

Decoding lives in `decode.py` and encoding (the suffix -> codec table) in `encode.py`.
"""

from __future__ import annotations

from .decode import AV_ERRORS, FALLBACK_RATE, VideoFrame, VideoFrames, VideoInfo, probe_video, read_video, upright
from .encode import AUDIO_MODES, FORMATS, OutputFormat, VideoWriter, default_output, output_format

__all__ = [
    "AUDIO_MODES", "AV_ERRORS", "FALLBACK_RATE", "FORMATS", "OutputFormat", "VideoFrame", "VideoFrames", "VideoInfo",
    "VideoWriter", "default_output", "output_format", "probe_video", "read_video", "upright",
]
