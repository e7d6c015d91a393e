"""Frame folders: a folder of numbered images read in natural order as one clip.

Convention: frames come out as uint8 (H, W, 3) RGB arrays, all the size of the first one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .image import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sort key that orders "frame2.png" before "frame10.png", ignoring case (then by exact name)."""
    parts = _DIGITS.split(path.name.casefold())
    # Tag each part so numbers and text never meet in a comparison: (0, number) or (1, text).
    tagged = tuple((0, int(part)) if part.isdecimal() else (1, part) for part in parts if part)
    return tagged, path.name


def list_frames(folder: Path) -> tuple[list[Path], list[Path]]:
    """List the image files in `folder` in natural order, and the other files that were skipped.

    Only files directly inside the folder count; sub-folders and hidden files are ignored, not skipped.

    Raises:
        InputError: the folder is missing, not a folder, or holds no image with a suffix in
            `IMAGE_SUFFIXES`.
    """
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    # Hidden files are left out entirely: ".DS_Store" is noise and macOS "._frame1.png" is no image.
    visible = (entry for entry in folder.iterdir() if entry.is_file() and not entry.name.startswith("."))
    files = sorted(visible, key=natural_key)
    frames = [entry for entry in files if entry.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [entry for entry in files if entry.suffix.lower() not in IMAGE_SUFFIXES]
    if not frames:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames, skipped


class FolderFrames(Iterator[np.ndarray]):
    """Iterator over a frame folder's images; `resized` lists the files whose size had to be changed."""

    def __init__(self, paths: list[Path], *, max_side: int | None) -> None:
        self.resized: list[Path] = []
        self._paths = iter(paths)
        self._max_side = max_side
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame, fitted

    def __next__(self) -> np.ndarray:
        path = next(self._paths)
        frame = read_image(path, max_side=self._max_side)  # (H, W, 3)
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
        elif size != self._size:
            self.resized.append(path)
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)  # (H0, W0, 3)
        return frame


def read_frames(paths: list[Path], *, max_side: int | None) -> FolderFrames:
    """Read each image as a uint8 (H, W, 3) RGB array, all at the first frame's fitted size.

    Convention: frames are uint8 (H, W, 3) RGB; call `to_tensor` to enter the library.

    A frame of another size is resized (INTER_AREA) to match and yielded anyway; its path is then
    appended to the returned iterator's `resized` list, so the caller can warn.

    Raises:
        InputError: a file cannot be read (see `read_image`), raised when that frame is reached.
    """
    return FolderFrames(paths, max_side=max_side)
