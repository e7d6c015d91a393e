"""Long-term consistency benchmark (issue 9): does a background come back as it was?

    python benchmarks/long_term.py PHOTO -s samples/styles/swirl.png --clip CLIP --clip-start 110

Occluder shot: PHOTO at a long side of 128 px, still, with a dark bar 6 px wide crossing it left
to right at 3 px per frame (36 frames, lossless PNGs, the `frames` command's library call). For
each frame t >= 4 it compares stylized frames t and t-4 over two sets of pixels: *revealed* (the
same content at t and t-4, covered by the bar in between) and *static* (never covered between
t-4 and t), as mean squared differences in [0, 1] units. A chain without long-term memory paints
the revealed background anew, a wake behind the bar; with it, the background comes back as it was.

With `--clip`, also the warp error between stylized frames t and t-4 of a real clip (flow computed
directly between them, as `stylereel evaluate --stride 4`), beside the consecutive-frame one.

Each row: `--set KEY=VALUE` pairs separated by `;` in `--row` (default: short-term only, and
`long_term=[1,2,4]`). All rows at 60 first / 20 later iterations on the preview preset, seed 2.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from stylereel.pipeline import io, run
from stylereel.pipeline.config import Config, load_config
from stylereel.pipeline.evaluate import warp_error

SIDE, BAR, SPEED, N_FRAMES, STRIDE = 128, 6, 3, 36, 4


def occluder_shot(photo: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of a dark bar crossing a still photo, and per frame a bool (H, W) map of the bar."""
    image = io.read_image(photo)
    still = cv2.resize(image, io.fit_size(image.shape[1], image.shape[0], SIDE, even=False), interpolation=cv2.INTER_AREA)
    frames, covered = [], []
    for t in range(N_FRAMES):
        bar = np.zeros(still.shape[:2], bool)
        bar[:, max(0, SPEED * t - BAR) : max(0, SPEED * t)] = True
        frame = still.copy()
        frame[bar] = 20
        frames.append(frame)
        covered.append(bar)
    return frames, covered


def revealed_and_static(out: list[np.ndarray], covered: list[np.ndarray]) -> tuple[float, float]:
    """Mean squared difference of stylized frames t and t-STRIDE over revealed and static pixels."""
    revealed, static = [], []
    for t in range(STRIDE, len(out)):
        between = np.any(covered[t - STRIDE + 1 : t], axis=0)
        ends = covered[t] | covered[t - STRIDE]
        squared = ((out[t].astype(np.float64) - out[t - STRIDE]) / 255).__pow__(2).mean(-1)  # (H, W)
        if (between & ~ends).any():
            revealed.append(squared[between & ~ends].mean())
        static.append(squared[~between & ~ends].mean())
    return float(np.mean(revealed)), float(np.mean(static))


def stylize(frames: list[np.ndarray], styles: list[Path], config: Config, folder: Path) -> tuple[list[np.ndarray], object, float]:
    """Stylize `frames` as a frame folder in a new subfolder of `folder`; the outputs, summary, s/frame."""
    work = Path(tempfile.mkdtemp(dir=folder))
    source, output = work / "in", work / "out"
    source.mkdir()
    for index, frame in enumerate(frames):
        io.write_image(source / f"{index:04d}.png", frame)
    start = time.perf_counter()
    summary = run.stylize_frames(source, styles, output, config, overwrite=True)
    seconds = (time.perf_counter() - start) / summary.n_frames
    return [io.read_image(path) for path in sorted(output.glob("*.png"))], summary, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--clip-start", type=int, default=110)
    parser.add_argument("--clip-frames", type=int, default=16)
    parser.add_argument("--row", action="append", default=None, help='e.g. "long_term=[1,2,4]"; "" for the defaults')
    args = parser.parse_args()
    rows = args.row if args.row is not None else ["", "long_term=[1,2,4]"]
    base = load_config(Path("configs/preview.toml"), first_iterations=60, iterations=20, seed=2, device="cpu")
    frames, covered = occluder_shot(args.photo)
    clip = None
    if args.clip is not None:
        decoded = io.read_video(args.clip, max_side=SIDE, max_frames=args.clip_start + args.clip_frames)
        clip = [frame.image for index, frame in enumerate(decoded) if index >= args.clip_start]
    print("| row | revealed MSE | static MSE | revealed / static | mean style loss | s/frame (occluder) |"
          + (" clip warp error t-1 | clip warp error t-4 | clip s/frame |" if clip else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|" if clip else ""))
    with tempfile.TemporaryDirectory() as temp:
        for row in rows:
            overrides = dict(_pair(item) for item in row.split(";") if item.strip())
            config = replace(base, **overrides)
            out, summary, seconds = stylize(frames, args.style, config, Path(temp))
            revealed, static = revealed_and_static(out, covered)
            style = np.mean([record.losses["style"] for record in summary.frames[1:]])
            line = (f"| {row or 'short-term only'} | {revealed:.6f} | {static:.6f} | {revealed / static:.2f} | "
                    f"{style:.4g} | {seconds:.2f} |")
            if clip:
                stylized, _, clip_seconds = stylize(clip, args.style, config, Path(temp))
                line += (f" {warp_error(stylized, clip):.6f} | {warp_error(stylized, clip, stride=STRIDE):.6f} | "
                         f"{clip_seconds:.2f} |")
            print(line, flush=True)


def _pair(item: str) -> tuple[str, object]:
    key, value = item.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value.strip()


if __name__ == "__main__":
    main()
