"""What the final clamp costs: a first frame's pixels outside [0, 1], with and without the range term.

    OMP_NUM_THREADS=1 python benchmarks/range.py CLIP -s STYLE --frame 60 --side 256 --iterations 100 \
        --range-weight 0 --range-weight 1e8

Takes frame `--frame` of CLIP at a long side of `--side`, runs `--iterations` iterations of the
optimiser from the content at full size (no ladder, no early stopping) once per `--range-weight`,
and prints, for the optimiser's best point before the clamp: the share of values outside [0, 1]
and the largest excess; then the total loss there (without the range term) and the weighted
losses of the clamped result, the image a user gets. `--save DIR` writes each result as a PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import cv2

from stylereel.pipeline import io, sequence
from stylereel.pipeline.config import load_config
from stylereel.pipeline.optimize import Optimisation, Targets, content_targets, final_losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("--frame", type=int, default=0, help="which frame of the clip (0-based)")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--range-weight", type=float, action="append")
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()
    config = load_config(None, device="cpu", coarse_to_fine=False, stop_tolerance=0.0)
    frame = [frame.image for frame in io.read_video(args.clip, max_side=None, max_frames=args.frame + 1)][-1]
    width, height = io.fit_size(frame.shape[1], frame.shape[0], args.side, even=True)
    content = io.to_tensor(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    session = sequence.prepare_session(config, args.style, size=(height, width))
    targets = Targets(content_targets(session.model, content, config), session.grams)
    for weight in args.range_weight or [0.0, 1e8]:
        settings = dataclasses.replace(config, range_weight=weight)
        start = time.perf_counter()
        optimisation = Optimisation(session.model, content, targets, settings)
        for _ in range(args.iterations):
            optimisation.step()
        clamped = optimisation.result()
        raw = optimisation.best_image
        outside = float(((raw < 0) | (raw > 1)).float().mean())
        excess = float((raw - raw.clamp(0, 1)).abs().max())
        before = final_losses(session.model, raw, targets, config)  # no range term: the same measure for all
        after = final_losses(session.model, clamped, targets, config)
        print(f"{width}x{height}, {args.iterations} iterations, range_weight {weight:g}: {outside:.1%} of values "
              f"outside [0, 1], largest excess {excess:.3f}; total loss {before['total']:.4g} before the clamp, "
              f"{after['total']:.4g} after (style {after['style']:.4g}, content {after['content']:.4g}); "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        if args.save:
            io.write_image(args.save / f"range-{weight:g}.png", io.to_array(clamped))


if __name__ == "__main__":
    main()
