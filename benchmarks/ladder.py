"""Ladder benchmark (issue 12): a shot's first frame with the coarse-to-fine ladder against starting at full size.

    OMP_NUM_THREADS=1 python benchmarks/ladder.py CLIP -s STYLE --sizes 512 1024 --repeats 2
    OMP_NUM_THREADS=1 python benchmarks/ladder.py CLIP -s STYLE --iteration 1920x1080

Takes frame `--frame` of CLIP, fitted to each long side of `--sizes`, and stylizes it as a shot's
first frame (`sequence.start_shot`) twice per repeat: with the ladder (the preset's coarse-to-fine)
and from the content at full size (`coarse_to_fine = false`; `--full-iterations` gives it its own
budget, for a comparison at equal work), in alternating order so both see the same machine load. Prints, per run, the seconds of `start_shot` (style Grams and model loading not
included), the iterations of each rung and the final weighted style and total loss at full size,
which both variants measure against the same targets.

`--trace N` also prints, every N iterations at full size, the losses of the image a stop there
would deliver (the best point so far, clamped to [0, 1]): how the result changes along the run.

`--iteration WxH` instead times single iterations of a first frame at that size (the content
frame resized to it) and prints the peak resident memory (ru_maxrss) after loading the model and
after the iterations.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stylereel.pipeline import io, optimize, sequence
from stylereel.pipeline.config import load_config
from stylereel.pipeline.optimize import Targets, content_targets, iteration_step


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def content_frame(clip: Path, index: int) -> np.ndarray:
    for frame in io.read_video(clip, max_side=None, max_frames=index + 1):
        image = frame.image
    return image


def traced(every: int, width: int) -> contextlib.AbstractContextManager:
    """While active, print every `every` iterations at full size (frame width `width`) the losses of
    the image a stop there would deliver: the best point so far, clamped to [0, 1] (the optimiser
    itself sees the unclamped loss). Its forward passes add to the timed seconds: time without it."""
    step, count = optimize.Optimisation.step, [0]

    def step_and_report(self):
        loss = step(self)
        if self.image.shape[-1] == width:
            count[0] += 1
            if count[0] % every == 0:
                with torch.no_grad():
                    losses = optimize.frame_losses(self.model, self.best_image.clamp(0, 1), self.targets, self.config)
                print(f"    full size, iteration {count[0]}: delivered style loss {float(losses['style']):.4g}, "
                      f"total loss {float(losses['total']):.4g}", flush=True)
        return loss

    @contextlib.contextmanager
    def patched():
        optimize.Optimisation.step = step_and_report
        try:
            yield
        finally:
            optimize.Optimisation.step = step
    return patched()


def first_frame(session: sequence.Session, content: np.ndarray) -> dict:
    """Stylize `content` as a shot's first frame; seconds, iterations per rung and final losses."""
    rungs = []
    original = sequence.stylize_frame

    def spy(model, init, targets, **kwargs):
        start = time.perf_counter()
        result = original(model, init, targets, **kwargs)
        rungs.append((tuple(init.shape[-2:]), result.iterations))
        print(f"  rung {max(init.shape[-2:])} px: {result.iterations} iterations, {time.perf_counter() - start:.1f} s",
              flush=True)
        return result

    sequence.stylize_frame = spy
    try:
        tensor = io.to_tensor(content).to(session.device)
        start = time.perf_counter()
        targets = Targets(content_targets(session.model, tensor, session.config), session.grams)
        result = sequence.start_shot(session, tensor, targets, 0, lambda event: None)
        seconds = time.perf_counter() - start
    finally:
        sequence.stylize_frame = original
    return {"seconds": seconds, "rungs": rungs, "style": result.losses["style"], "total": result.losses["total"]}


def compare(args: argparse.Namespace) -> None:
    config = load_config(args.config, device="cpu", first_iterations=args.first_iterations,
                         rung_iterations=args.rung_iterations)
    frame = content_frame(args.clip, args.frame)
    for side in args.sizes:
        width, height = io.fit_size(frame.shape[1], frame.shape[0], side, even=True)
        content = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        full_budget = args.full_iterations or config.first_iterations
        variants = {"ladder": config,
                    "full size": dataclasses.replace(config, coarse_to_fine=False, first_iterations=full_budget)}
        sessions = {name: sequence.prepare_session(value, args.style, size=(height, width))
                    for name, value in variants.items()}
        for repeat in range(args.repeats):
            order = list(sessions) if repeat % 2 == 0 else list(sessions)[::-1]
            for name in order:
                with traced(args.trace, width) if args.trace else contextlib.nullcontext():
                    row = first_frame(sessions[name], content)
                rungs = " + ".join(f"{max(size)}px:{n}" for size, n in row["rungs"])
                print(f"{width}x{height} {name:9s} repeat {repeat}: {row['seconds']:.1f} s, iterations {rungs}, "
                      f"style loss {row['style']:.4g}, total loss {row['total']:.4g}", flush=True)


def iteration(args: argparse.Namespace) -> None:
    config = load_config(args.config, device="cpu")
    width, height = (int(side) for side in args.iteration.split("x"))
    content = cv2.resize(content_frame(args.clip, args.frame), (width, height), interpolation=cv2.INTER_CUBIC)
    session = sequence.prepare_session(dataclasses.replace(config, coarse_to_fine=False), args.style,
                                       size=(height, width))
    print(f"peak RSS after loading the model and style Grams: {peak_rss_mib():.0f} MiB", flush=True)
    tensor = io.to_tensor(content)
    targets = Targets(content_targets(session.model, tensor, config), session.grams)
    step = iteration_step(session.model, tensor, targets, config)
    for number in range(1, args.steps + 1):
        start = time.perf_counter()
        float(step().detach())
        print(f"{width}x{height} iteration {number}: {time.perf_counter() - start:.1f} s, "
              f"peak RSS {peak_rss_mib():.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("-c", "--config", type=Path, default=None)
    parser.add_argument("--frame", type=int, default=0, help="which frame of the clip (0-based)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--first-iterations", type=int, default=None, help="most iterations per rung")
    parser.add_argument("--rung-iterations", type=int, default=None, help="most iterations per rung above the first")
    parser.add_argument("--full-iterations", type=int, default=None,
                        help="most iterations of the full-size variant (default: --first-iterations); e.g. the "
                             "ladder's work in full-size iterations, for a comparison at equal work")
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="print the delivered (clamped) losses every N iterations at full size")
    parser.add_argument("--iteration", default=None, metavar="WxH", help="time single iterations at this size")
    parser.add_argument("--steps", type=int, default=2, help="iterations timed with --iteration")
    args = parser.parse_args()
    iteration(args) if args.iteration else compare(args)


if __name__ == "__main__":
    main()
