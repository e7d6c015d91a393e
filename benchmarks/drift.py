"""Drift benchmark (issue 9): does a shot's look settle at its first frame, whatever the budget?

    python benchmarks/drift.py PHOTO --clip CLIP --clip-start 76 --clip-frames 60 -s samples/styles/swirl.png

Builds three shots at a long side of 128 px, stored losslessly as frame folders: PHOTO repeated
(`static`, 30 frames), a window sliding 1 px per frame across PHOTO (`pan`, 40 frames), and frames
of a real CLIP (`clip`, one shot). Each is stylized with the `frames` command's library call under
each budget (`--budget`: the preview preset, whose first frames run to their stop tolerance; 40 first
/ 8 later iterations on it, the preset before it did; 60 / 20 on it; and the default preset at
128 px) and prints one Markdown row per shot and budget:

- luminance drift: |mean luminance of the last stylized frame - the first's| / the first's, beside
  the same figure for the content (a result cannot be steadier than its footage);
- largest step after frame 2: the mean absolute difference between consecutive stylized frames
  (static: as they are; pan: after undoing the 1 px shift), in 1/255 units;
- warp error (E_warp, as `stylereel evaluate`, x 1e4) and the content's own;
- slopes of the style and content losses of the later frames (frame 2 on), by least squares, per
  100 frames, as a share of their mean: a shot that keeps converging shows a falling style loss;
- iterations per later frame and seconds per frame.

`--reference [K]` also stylizes every later frame (or every K-th) on its own, exactly as the
shot's first frame is (from its content, the first frame's budget and ladder), and prints the
slopes of the chain's later-frame losses *divided by* these, with their standard error (a frame
stylized on its own varies by a few percent from frame to frame) and, in brackets, the mean ratio
over the first and over the last quarter of the frames measured: the content's own changes (a pan
brings in busier texture, people enter) move both alike, so what trends in the ratio is the
chain's own drift away from its first frame's look.

`--set KEY=VALUE` (repeatable) overrides a config key in every run, to compare candidates.
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

SIDE = 128
LUMA = np.array([0.299, 0.587, 0.114])
BUDGETS = {
    "preview (300/8)": ("configs/preview.toml", {}),
    "40/8": ("configs/preview.toml", {"first_iterations": 40}),
    "60/20": ("configs/preview.toml", {"first_iterations": 60, "iterations": 20}),
    "default (300/100)": (None, {"max_side": SIDE}),
}


def make_shots(photo: Path, clip: Path | None, *, start: int, n_frames: int) -> dict[str, list[np.ndarray]]:
    """The three test shots as uint8 (H, W, 3) frames at a long side of SIDE."""
    image = io.read_image(photo)
    still = cv2.resize(image, io.fit_size(image.shape[1], image.shape[0], SIDE, even=False), interpolation=cv2.INTER_AREA)
    height = 72
    wide = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)
    shots = {"static": [still] * 30, "pan": [wide[:, x : x + SIDE] for x in range(min(40, wide.shape[1] - SIDE))]}
    if clip is not None:
        frames = io.read_video(clip, max_side=SIDE, max_frames=start + n_frames)
        shots["clip"] = [frame.image for index, frame in enumerate(frames) if index >= start]
    return shots


def measure(name: str, frames: list[np.ndarray], styles: list[Path], config: Config, folder: Path, *,
            reference: int = 0) -> dict:
    source, output = folder / f"{name}_in", folder / f"{name}_out"
    source.mkdir(exist_ok=True)
    for index, frame in enumerate(frames):
        io.write_image(source / f"{index:04d}.png", frame)
    start = time.perf_counter()
    summary = run.stylize_frames(source, styles, output, config, overwrite=True)
    seconds = (time.perf_counter() - start) / summary.n_frames
    out = [io.read_image(path) for path in sorted(output.glob("*.png"))]
    return {
        "drift": _drift(out), "content_drift": _drift(frames), "step": _largest_step(name, out),
        "warp": warp_error(out, frames), "content_warp": warp_error(frames, frames),
        "style_slope": _slope([r.losses["style"] for r in summary.frames[1:]]),
        "content_slope": _slope([r.losses["content"] for r in summary.frames[1:]]),
        "first_iterations": summary.frames[0].iterations,
        "iterations": float(np.mean([r.iterations for r in summary.frames[1:]])),
        "cuts": sum(r.scene_cut for r in summary.frames), "seconds": seconds,
        **(_against_reference(summary.frames, frames, styles, config, every=reference) if reference else {}),
    }


def _against_reference(records: list, frames: list[np.ndarray], styles: list[Path], config: Config, *,
                       every: int) -> dict:
    """Slopes of the later frames' losses over those of each frame stylized on its own, as an image
    (a shot's first frame) is; with `every` > 1 only every that many later frames (frame 2, 2 + every, ...)."""
    picked = range(1, len(frames), every)
    reference = [run.stylize_array(np.ascontiguousarray(frames[index]), styles, config)[1].frames[0].losses
                 for index in picked]
    ratios = {term: [records[index].losses[term] / ref[term] for index, ref in zip(picked, reference)]
              for term in ("style", "content")}
    fits = {term: _fit(values, step=every) for term, values in ratios.items()}
    return {**{f"{term}_ratio_slope": fit[0] for term, fit in fits.items()},
            **{f"{term}_ratio_error": fit[1] for term, fit in fits.items()},
            **{f"{term}_ratio_ends": _ends(values) for term, values in ratios.items()}}


def _fit(values: list[float], *, step: int = 1) -> tuple[float, float]:
    """`_slope` and its standard error (same units): a frame stylized on its own varies by a few
    percent from one frame to the next, so a ratio's slope over a short shot is uncertain by as much."""
    if len(values) < 4:
        return _slope(values, step=step), float("nan")
    x = np.arange(len(values)) * step
    fit = np.polyfit(x, values, 1)
    residual = np.asarray(values) - np.polyval(fit, x)
    error = np.sqrt(residual.var(ddof=2) / ((x - x.mean()) ** 2).sum())
    return float(fit[0] * 100 / np.mean(values)), float(error * 100 / np.mean(values))


def _ends(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last quarter of `values` (at least one value each)."""
    quarter = max(1, len(values) // 4)
    return float(np.mean(values[:quarter])), float(np.mean(values[-quarter:]))


def _drift(frames: list[np.ndarray]) -> float:
    first, last = (float((frame.astype(np.float64) @ LUMA).mean()) for frame in (frames[0], frames[-1]))
    return abs(last - first) / first


def _largest_step(name: str, frames: list[np.ndarray]) -> float | None:
    """Largest mean |frame t - frame t-1| after frame 2, motion undone where it is known exactly."""
    if name not in ("static", "pan"):
        return None
    shift = 1 if name == "pan" else 0
    steps = [np.abs(b[:, : b.shape[1] - shift].astype(np.float64) - a[:, shift:]).mean()
             for a, b in zip(frames[2:], frames[3:])]
    return float(max(steps))


def _slope(values: list[float], *, step: int = 1) -> float:
    """Least-squares slope per 100 frames of values `step` frames apart, as a share of their mean."""
    if len(values) < 3:
        return float("nan")
    slope = np.polyfit(np.arange(len(values)) * step, values, 1)[0]
    return float(slope * 100 / np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--clip-start", type=int, default=0)
    parser.add_argument("--clip-frames", type=int, default=60)
    parser.add_argument("--budget", action="append", choices=list(BUDGETS), default=None)
    parser.add_argument("--shot", action="append", choices=["static", "pan", "clip"], default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (value read as JSON, else as a string)")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--reference", type=int, nargs="?", const=1, default=0, metavar="EVERY",
                        help="also the loss slopes over each frame (or every EVERY-th) stylized on its own (slower)")
    args = parser.parse_args()
    overrides = {key: _value(value) for key, value in (item.split("=", 1) for item in args.set)}
    shots = make_shots(args.photo, args.clip, start=args.clip_start, n_frames=args.clip_frames)
    print(f"overrides: {overrides or 'none'}; seed {args.seed}; styles {', '.join(p.name for p in args.style)}\n")
    print("| shot | budget | luminance drift (content) | largest step /255 | warp error x1e4 (content) | "
          "style slope /100 fr | content slope /100 fr | style / reference slope | content / reference slope | "
          "first-frame it. | it. per later frame | s/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temp:
        for budget in args.budget or list(BUDGETS):
            preset, budget_overrides = BUDGETS[budget]
            config = load_config(Path(preset) if preset else None, **budget_overrides, seed=args.seed, device="cpu")
            config = replace(config, **overrides)
            for name in args.shot or list(shots):
                if name not in shots:
                    continue
                m = measure(name, shots[name], args.style, config, Path(temp), reference=args.reference)
                ratios = " | ".join(f"{m[f'{term}_ratio_slope']:+.1%} ± {m[f'{term}_ratio_error']:.1%} "
                                    f"({m[f'{term}_ratio_ends'][0]:.3f} to {m[f'{term}_ratio_ends'][1]:.3f})"
                                    if f"{term}_ratio_slope" in m else "-" for term in ("style", "content"))
                step = "-" if m["step"] is None else f"{m['step']:.3f}"
                print(f"| {name} ({len(shots[name])} fr) | {budget} | {m['drift']:.2%} ({m['content_drift']:.2%}) | "
                      f"{step} | {m['warp'] * 1e4:.2f} ({m['content_warp'] * 1e4:.2f}) | {m['style_slope']:+.1%} | {m['content_slope']:+.1%} | "
                      f"{ratios} | {m['first_iterations']} | {m['iterations']:.1f} | {m['seconds']:.2f} |", flush=True)


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
