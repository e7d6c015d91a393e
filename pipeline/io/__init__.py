"""Everything that touches media files: video through PyAV, frame folders and still images.

Convention: the rest of the library sees (1, 3, H, W) float32 RGB tensors in [0, 1]; uint8 (H, W, 3)
RGB arrays, pts and time bases stay here. `to_tensor` and `to_array` are the only bridge.
"""

from __future__ import annotations

from .frames import IMAGE_SUFFIXES, FolderFrames, list_frames, natural_key, read_frames
from .image import check_image_suffix, fit_size, image_size, read_image, temp_beside, to_array, to_tensor, write_image
from .decode import VideoFrame, VideoFrames, VideoInfo, probe_video, read_video, upright
from .encode import AUDIO_MODES, FORMATS, OutputFormat, VideoWriter, default_output, output_format

__all__ = [
    "AUDIO_MODES",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "FolderFrames",
    "OutputFormat",
    "VideoFrame",
    "VideoFrames",
    "VideoInfo",
    "VideoWriter",
    "check_image_suffix",
    "default_output",
    "fit_size",
    "image_size",
    "list_frames",
    "natural_key",
    "output_format",
    "probe_video",
    "read_frames",
    "read_image",
    "read_video",
    "temp_beside",
    "to_array",
    "to_tensor",
    "upright",
    "write_image",
]
