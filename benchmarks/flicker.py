"""Flicker benchmark (issue 3): warping error and losses of four ways to chain frames.

    python benchmarks/flicker.py CLIP -s samples/styles/swirl.png --start 100 --frames 16 --max-side 160

Cuts `--frames` frames from CLIP starting at frame `--start`, stores them losslessly, stylizes them
once per row with the same seed and the same iterations per frame, and prints a Markdown table:
warp error (E_warp), the content's own warp error, mean style and content loss, seconds per frame.
Outputs are encoded with CRF 0 so the codec does not add flicker of its own. `--static IMAGE` also
runs the drift check: one image repeated 30 frames. `--set KEY=VALUE` overrides a config key in
every row (e.g. `--set passes=2` for the multi-pass table).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from stylereel.pipeline import io, run
from stylereel.pipeline.config import Config, Init, load_config
from stylereel.pipeline.evaluate import evaluate_video

ROWS = {
    "independent (--init content --temporal-weight 0)": {"init": Init.content, "temporal_weight": 0.0},
    "--init prev --temporal-weight 0": {"init": Init.prev, "temporal_weight": 0.0},
    "--init prev-warped --temporal-weight 0": {"init": Init.prev_warped, "temporal_weight": 0.0},
    "default (prev-warped + temporal loss)": {},
}


def cut_clip(source: Path, target: Path, *, start: int, n_frames: int, max_side: int) -> None:
    """Write frames [start, start + n_frames) of `source`, resized, as lossless FFV1 at 25 fps."""
    frames = io.read_video(source, max_side=max_side)
    images = [frame.image for index, frame in zip(range(start + n_frames), frames) if index >= start]
    height, width = images[0].shape[:2]
    with av.open(str(target), "w") as output:
        stream = output.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def measure(clip: Path, styles: list[Path], config: Config, folder: Path, name: str) -> dict[str, float]:
    output = folder / f"{name}.mp4"
    start = time.perf_counter()
    summary = run.stylize_video(clip, styles, output, replace(config, crf=0), overwrite=True)
    seconds = (time.perf_counter() - start) / summary.n_frames
    result = evaluate_video(clip, output, styles, config)
    cuts = sum(frame.scene_cut for frame in summary.frames)
    return {"warp": result.warp_error, "floor": result.content_warp_error, "style": result.style_loss,
            "content": result.content_loss, "seconds": seconds, "cuts": cuts}


def static_drift(image: Path, styles: list[Path], config: Config, folder: Path) -> tuple[float, float]:
    """Stylize one image repeated 30 times as a frame folder; return (luminance drift, max mean |diff|)."""
    frames = folder / "static"
    frames.mkdir()
    array = io.read_image(image, max_side=config.max_side)
    for index in range(30):
        io.write_image(frames / f"{index:03d}.png", array)
    run.stylize_frames(frames, styles, folder / "static_out", config, overwrite=True)
    out = [io.read_image(path).astype(np.float64) for path in sorted((folder / "static_out").glob("*.png"))]
    luminance = [float((o @ np.array([0.299, 0.587, 0.114])).mean()) for o in out]
    steps = [float(np.abs(b - a).mean()) for a, b in zip(out[2:], out[3:])]
    return abs(luminance[-1] - luminance[0]) / luminance[0], max(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("-c", "--config", type=Path, default=None)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=160)
    parser.add_argument("--first-iterations", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--temporal-weight", type=float, default=None)
    parser.add_argument("--rows", default="0,1,2,3", help="which rows to run, by index")
    parser.add_argument("--static", type=Path, default=None, help="image for the drift check")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every row, e.g. passes=2 (value read as JSON)")
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    # Fixed iteration counts (no early stop, no coarse pass), so every row gets the same work.
    config = load_config(args.config, max_side=args.max_side, first_iterations=args.first_iterations,
                         iterations=args.iterations, temporal_weight=args.temporal_weight, device="cpu",
                         stop_tolerance=0.0, coarse_to_fine=False)
    config = replace(config, **overrides)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        clip = folder / "clip.mkv"
        cut_clip(args.clip, clip, start=args.start, n_frames=args.frames, max_side=args.max_side)
        print(f"clip: {args.clip} frames {args.start}..{args.start + args.frames - 1} at long side "
              f"{args.max_side}; {args.first_iterations} first / {args.iterations} later iterations; "
              f"temporal_weight {config.temporal_weight:g}; overrides {overrides or 'none'}\n")
        print("| row | warp error | content warp error | ratio | mean style loss | mean content loss | s/frame | cuts |")
        print("|---|---|---|---|---|---|---|---|")
        chosen = [list(ROWS.items())[int(i)] for i in args.rows.split(",")]
        for index, (name, row) in enumerate(chosen):
            m = measure(clip, args.style, replace(config, **row), folder, f"row{index}")
            print(f"| {name} | {m['warp']:.6f} | {m['floor']:.6f} | {m['warp'] / m['floor']:.2f} | "
                  f"{m['style']:.4g} | {m['content']:.4g} | {m['seconds']:.2f} | {m['cuts']} |", flush=True)
        if args.static:
            drift, step = static_drift(args.static, args.style, config, folder)
            print(f"\nstatic clip (30 x {args.static.name}): last-vs-first luminance drift {drift:.3%}, "
                  f"largest mean |frame t - frame t-1| after frame 2: {step * 1:.3f}/255")


if __name__ == "__main__":
    main()
