"""Make docs/before-after.gif: the bundled clip and its stylized version, side by side, animated.

    python samples/make_before_after.py [--style samples/styles/swirl.png] [--config preview]
                                        [--every 2] [--scale 2] [--output docs/before-after.gif]

Stylizes samples/clip.mp4 as the Quick start does (the preview preset) into a lossless temporary
video, then writes every `--every`-th frame pair (content | stylized, at the working size, scaled
by `--scale`) as a looping GIF at the clip's pace. Refuses to write a GIF over 2 MB.
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from stylereel.pipeline import io, run
from stylereel.pipeline.config import load_config

SAMPLES = Path(__file__).resolve().parent
LIMIT = 2 * 1024 * 1024  # bytes: the README's animation stays small
GAP = 4  # px of white between the two halves, before scaling


def pairs(content: Path, stylized: Path, side: int) -> list[np.ndarray]:
    """Each content frame beside its stylized frame, uint8 (H, 2W + GAP, 3), at `side` px long side."""
    frames = []
    for before, after in zip(io.read_video(content, max_side=side), io.read_video(stylized, max_side=None)):
        height, width = after.image.shape[:2]
        row = np.full((height, 2 * width + GAP, 3), 255, np.uint8)
        row[:, :width], row[:, width + GAP :] = before.image[:height, :width], after.image
        frames.append(row)
    return frames


def write_gif(frames: list[np.ndarray], path: Path, *, seconds_per_frame: float, scale: int) -> int:
    """Write `frames` as a looping GIF with one shared palette (no colour flicker between frames);
    returns its size in bytes."""
    images = [Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.LANCZOS)
              for frame in frames]
    palette = images[len(images) // 2].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    indexed[0].save(path, save_all=True, append_images=indexed[1:], loop=0, optimize=True,
                    duration=round(seconds_per_frame * 1000))
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLES / "clip.mp4")
    parser.add_argument("--style", type=Path, default=SAMPLES / "styles" / "swirl.png")
    parser.add_argument("--config", default="preview", help="a preset's name or a TOML file")
    parser.add_argument("--every", type=int, default=2, help="keep every N-th frame")
    parser.add_argument("--scale", type=int, default=2, help="enlarge the frames this many times")
    parser.add_argument("--output", type=Path, default=SAMPLES.parent / "docs" / "before-after.gif")
    args = parser.parse_args()
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as folder:
        stylized = Path(folder) / "stylized.mkv"
        summary = run.stylize_video(args.clip, [args.style], stylized, config)
        frames = pairs(args.clip, stylized, max(summary.width, summary.height))[:: args.every]
    rate = io.probe_video(args.clip).average_rate or Fraction(24)
    temp = args.output.with_name(args.output.name + ".tmp.gif")
    size = write_gif(frames, temp, seconds_per_frame=float(args.every / rate), scale=args.scale)
    if size > LIMIT:
        temp.unlink()
        raise SystemExit(f"{args.output}: would be {size / 2**20:.1f} MB, over 2 MB; use a larger --every or "
                         "a smaller --scale")
    temp.replace(args.output)
    print(f"wrote {args.output}: {len(frames)} frames, {size / 2**20:.2f} MB")


if __name__ == "__main__":
    main()
