"""Still images: read any Pillow format as upright RGB, write atomically, convert to and from tensors.

Convention: io hands the rest of the library (1, 3, H, W) float32 RGB tensors in [0, 1]; uint8
(H, W, 3) RGB arrays exist only inside io and at its boundary.
"""

from __future__ import annotations

import os
import secrets
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError

MAX_PIXELS = 50_000_000  # refuse larger images before decoding them (a 40000x40000 PNG is 4.8 GB)
MIN_SIDE = 8  # px; smaller images have no texture to take a style from
GREY = (128, 128, 128)  # transparent pixels are composited over this neutral mid-grey

# Pillow raises these for damaged files; PIL.UnidentifiedImageError is an OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
_SAVE_OPTIONS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"quality": 95}}


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """Turn a uint8 (H, W, 3) RGB array into a (1, 3, H, W) float32 tensor in [0, 1] on the CPU.

    Convention: the input is RGB, not BGR; values 0..255 map linearly onto 0..1.

    Raises:
        ValueError: the array is not uint8 with shape (H, W, 3).
    """
    _check_array(array)
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)  # (3, H, W)
    return tensor.unsqueeze(0).float().div(255)  # (1, 3, H, W)


def to_array(tensor: torch.Tensor) -> np.ndarray:
    """Turn a (1, 3, H, W) or (3, H, W) RGB tensor in [0, 1] on any device into a uint8 (H, W, 3) array.

    Convention: the tensor is RGB in [0, 1]; values outside are clamped, then x255 rounded to nearest.

    Raises:
        ValueError: the tensor is not (3, H, W) or (1, 3, H, W).
    """
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]  # (3, H, W)
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) tensor, got {tuple(tensor.shape)}")
    scaled = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return scaled.permute(1, 2, 0).cpu().numpy()  # (H, W, 3)


def fit_size(width: int, height: int, max_side: int | None, *, even: bool) -> tuple[int, int]:
    """Scale (width, height) so the longer side is `max_side` (None keeps the size), keeping the aspect.

    Sides are rounded half up to the nearest integer, or to the nearest even integer (at least 2) when
    `even` is set, as yuv420p video needs.

    Raises:
        ValueError: a side or `max_side` is below 1.
    """
    if width < 1 or height < 1 or (max_side is not None and max_side < 1):
        raise ValueError(f"sizes must be positive, got {width}x{height} with max_side={max_side}")
    longest = max(width, height)
    target = longest if max_side is None else max_side
    step = 2 if even else 1

    def scale(side: int) -> int:
        # round_half_up(side * target / longest / step) * step, in integers so it is exact
        return max(step, step * ((2 * side * target + step * longest) // (2 * step * longest)))

    return scale(width), scale(height)


def read_image(path: Path, *, max_side: int | None = None) -> np.ndarray:
    """Read an image file as an upright uint8 (H, W, 3) RGB array, its longer side scaled to `max_side`.

    EXIF orientation is applied, an animated file gives its first frame, transparency is composited
    over mid-grey and 16-bit greyscale is scaled to 8 bits. JPEGs are decoded at a reduced scale when
    `max_side` allows, so memory stays bounded.

    Convention: the result is uint8 (H, W, 3) RGB; call `to_tensor` to enter the library.

    Raises:
        InputError: the file is missing, not an image, damaged, larger than 50 megapixels or smaller
            than 8 px on a side. The message starts with the path.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return _decode(path, image, max_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
    except _DECODE_ERRORS as error:
        raise InputError(f"{path}: {_read_problem(error)}") from error


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, as stored (before EXIF rotation), without decoding.

    Raises:
        InputError: as `read_image` does for a file it cannot open.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: too large (more than {MAX_PIXELS // 1_000_000} megapixels)") from None
    except _DECODE_ERRORS as error:
        raise InputError(f"{path}: {_read_problem(error)}") from error


def write_image(path: Path, array: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) RGB array to `path` atomically; the suffix picks the format.

    The image goes to a temp file beside `path` that replaces it only once complete, and is removed
    on any failure, Ctrl-C included. JPEG and WebP are saved at quality 95.

    Convention: pass `to_array(tensor)`.

    Raises:
        ValueError: the array is not uint8 with shape (H, W, 3).
        OutputError: the file cannot be written (folder missing, not writable, unknown suffix).
    """
    _check_array(array)
    options = _SAVE_OPTIONS.get(path.suffix.lower(), {})
    try:
        temp = temp_beside(path)
    except OSError as error:
        raise OutputError(f"{path}: cannot create file ({_write_problem(error)})") from error
    try:
        Image.fromarray(array, "RGB").save(temp, **options)
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, (OSError, ValueError, KeyError)):
            raise OutputError(f"{path}: cannot write image ({_write_problem(error)})") from error
        raise


def check_image_suffix(path: Path) -> None:
    """Refuse, before any work, an output name whose suffix names no image format Pillow can write.

    Raises:
        OutputError: the suffix is missing or unknown (the message lists the common ones).
    """
    Image.init()
    known = Image.registered_extensions().get(path.suffix.lower())
    if known is None or known not in Image.SAVE:
        shown = f"'{path.suffix}'" if path.suffix else "none"
        raise OutputError(f"{path}: unknown image suffix ({shown}); use .png, .jpg, .webp, .tif or .bmp")


def temp_beside(path: Path) -> Path:
    """Create an empty, uniquely named file `.{stem}.tmp-XXXXXXXX{suffix}` beside `path` and return it.

    The suffix is kept so writers that guess the format from the name still work, and the file gets
    the usual permissions (umask), unlike `tempfile.mkstemp`'s 0600.

    Raises:
        OSError: the folder is missing or not writable.
    """
    temp = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
    os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return temp


def _decode(path: Path, image: Image.Image, max_side: int | None) -> np.ndarray:
    """Check the header size, then decode (reduced if possible), orient, convert to RGB and resize."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        limit = MAX_PIXELS // 1_000_000
        raise InputError(f"{path}: too large ({width}x{height} px; the limit is {limit} megapixels)")
    _check_min_side(path, width, height)
    if max_side is not None:
        image.draft(None, fit_size(width, height, max_side, even=False))  # JPEG DCT scaling; no-op elsewhere
    image.load()
    rgb = _to_rgb(ImageOps.exif_transpose(image))
    size = fit_size(rgb.width, rgb.height, max_side, even=False)
    _check_min_side(path, *size)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.array(rgb, dtype=np.uint8)  # (H, W, 3), writable


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: 16/32-bit integer grey by /257, alpha over mid-grey."""
    if image.mode.startswith("I"):
        # Pillow's convert("L") clips 16-bit values at 255, turning mid-grey white; scale instead.
        values = np.asarray(image, dtype=np.float64) / 257
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)  # (H, W)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*GREY, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _check_min_side(path: Path, width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise InputError(f"{path}: too small ({width}x{height} px; need at least {MIN_SIDE} px on each side)")


def _check_array(array: np.ndarray) -> None:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {array.dtype} {array.shape}")


def _read_problem(error: BaseException) -> str:
    """Why Pillow could not read a file, without the path the caller already names."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image (cannot identify image file)"
    return f"not a readable image ({error or type(error).__name__})"


def _write_problem(error: BaseException) -> str:
    """Why a file could not be written, without the path the caller already names."""
    if isinstance(error, FileNotFoundError):
        return "folder does not exist"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
