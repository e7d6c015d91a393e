"""The two engines on one clip: time, losses and flicker of `optimize`, `network` and `network --refine`.

    python benchmarks/engines.py CLIP -s samples/styles/swirl.png --max-side 256 [--frames 24]
        [--train-iterations 2000] [--refine 3] [--carry 0 ...] [--config default] [--skip-optimize [--base JSON]]
        [--sheet PATH] [--set-network KEY=VALUE ...] [--json PATH] [--save-model PATH | --model PATH --train-seconds S]

Cuts the first `--frames` frames of CLIP (all by default), stores them losslessly at the working
size, runs each row with the same preset, seed and style (the network rows, the network's own
`carry` and each `--carry SHARE` (0 by default: painting each frame on its own), paint with one
network, trained once by `learned.train_model`, its time counted in each row), and prints a
Markdown table: training seconds, per-frame seconds after training, wall time for the clip, wall
time projected for one minute at 30 fps (fixed time + 1800 x the per-frame time: a projection, not
a measurement), mean style and content loss and warp error from `stylereel evaluate`'s evaluator at
the output size, each also as a ratio to `optimize`'s, and `warm_tones`: how warm each row leaves
the content's warm lit areas (the look check's colour cast).
Outputs are lossless (FFV1) so the codec adds nothing.
`--sheet PATH` also writes the middle frame of the content and of each row side by side, labelled;
`--set-network KEY=VALUE` (value read as JSON) changes a setting of the network rows only.
`--save-model PATH` keeps the trained network; `--model PATH --train-seconds S` paints with a kept
one instead of training (S: the training time it took, counted as if this run had trained it), so
more rows can be measured on the same network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stylereel.pipeline import io, learned, run
from stylereel.pipeline.learned import TrainSummary
from stylereel.pipeline.preview import grid
from stylereel.pipeline.config import Engine, load_config
from stylereel.pipeline.evaluate import evaluate_video
from stylereel.pipeline.network import load_network

from flicker import cut_clip  # the same lossless cut as the flicker benchmark

MINUTE = 1800  # frames in one minute at 30 fps
WARM, LIT = 40, 90  # `warm_tones`: red minus blue, and the mean of the channels, of a warm lit pixel (0-255)


@dataclass(frozen=True)
class Kept:
    """A network kept by `--save-model`, and the training time it took (what `measure` reads of a `TrainSummary`)."""

    output: Path
    seconds: float


def measure(clip: Path, style: Path, output: Path, config, trained: TrainSummary | Kept | None = None) -> dict:
    """Run `config` on `clip` and evaluate the output: times, losses and warp error. With `trained`
    (a model file `train_model` wrote for the clip), the run paints with it and its training time
    counts as the fixed cost, as if the run had trained it."""
    start = time.perf_counter()
    summary = run.stylize_video(clip, [style], output, config, overwrite=True,
                                model=trained.output if trained else None)
    wall = time.perf_counter() - start
    evaluation = evaluate_video(clip, output, [style], config)
    warm, warm_thirds = warm_tones(clip, output)
    if trained is not None:
        fixed = trained.seconds
        per_frame = wall / summary.n_frames  # decoding, painting (and flows, refining) and encoding
        wall += fixed
    else:  # the optimiser: a shot's first frame is the fixed cost, then each later frame
        fixed = summary.frames[0].seconds
        per_frame = sum(frame.seconds for frame in summary.frames[1:]) / max(summary.n_frames - 1, 1)
    return {"train": trained.seconds if trained else 0.0, "per_frame": per_frame, "wall": wall,
            "minute": fixed + MINUTE * per_frame, "style": evaluation.style_loss,
            "content": evaluation.content_loss, "warp": evaluation.warp_error,
            "content_warp": evaluation.content_warp_error, "warm": warm, "warm_thirds": warm_thirds,
            "frames": summary.n_frames}


def warm_tones(clip: Path, output: Path) -> tuple[float, list[float]]:
    """Where the content is warm and lit (red over blue by more than WARM, brighter than LIT: lamps,
    lit windows, shop fronts), the mean red minus blue of `output` there, 0-255, over all frames,
    and the same in the left, middle and right third of the frame. The look check's colour cast in
    figures: a style with a cool palette moves them down, an engine that paints those areas in the
    style's blue takes them below zero, and one that paints some places and leaves others near the
    content's colours shows it as thirds far apart. (The content's own: `warm_tones(clip, clip)`.)"""
    sums, counts = np.zeros(3), np.zeros(3)
    for frame, painted in zip(io.read_video(clip, max_side=None), io.read_video(output, max_side=None)):
        content, stylized = frame.image.astype(np.float32), painted.image.astype(np.float32)  # (H, W, 3)
        mask = (content[..., 0] - content[..., 2] > WARM) & (content.mean(axis=-1) > LIT)  # (H, W)
        warmth = np.where(mask, stylized[..., 0] - stylized[..., 2], 0.0)  # (H, W)
        for third, columns in enumerate(np.array_split(np.arange(mask.shape[1]), 3)):
            sums[third] += float(warmth[:, columns].sum())
            counts[third] += float(mask[:, columns].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(sums.sum() / counts.sum()), list(map(float, sums / counts))


def _thirds(values: list[float]) -> str:
    """`warm_tones`' thirds as printed: left / middle / right, whole levels."""
    return " / ".join(f"{value:.0f}" for value in values)


def _frame(path: Path, index: int):
    return next(frame.image for number, frame in enumerate(io.read_video(path, max_side=None)) if number == index)


def table(rows: dict[str, dict], base: dict | None) -> str:
    lines = ["| engine | train s | s/frame after | wall s (clip) | 1 min at 30 fps (projected) | style | content "
             "| warp error | warm R-B (left / middle / right) | vs optimize (style / content / warp / 1-min time) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ratio = "-" if base is None or row is base else (
            f"{row['style'] / base['style']:.2f}x / {row['content'] / base['content']:.2f}x / "
            f"{row['warp'] / base['warp']:.2f}x / 1/{base['minute'] / row['minute']:.1f}")
        warm = f"{row['warm']:.1f}" if "warm" in row else "-"  # rows from before it was measured
        if "warm_thirds" in row:
            warm += f" ({_thirds(row['warm_thirds'])})"
        lines.append(f"| {name} | {row['train']:.1f} | {row['per_frame']:.3f} | {row['wall']:.1f} | "
                     f"{row['minute'] / 60:.1f} min | {row['style']:.4g} | {row['content']:.4g} | "
                     f"{row['warp']:.3e} ({row['warp'] / row['content_warp']:.2f}x footage) | {warm} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, required=True)
    parser.add_argument("--max-side", type=int, default=256)
    parser.add_argument("--frames", type=int, default=None, help="first N frames (default: all)")
    parser.add_argument("--config", default="default", help="preset for every row")
    parser.add_argument("--train-iterations", type=int, default=None, help="default: the preset's")
    parser.add_argument("--refine", type=int, default=3, help="0: no refine row")
    parser.add_argument("--carry", type=float, action="append", default=None, metavar="SHARE",
                        help="also paint with the same network at this carry share (default: 0)")
    parser.add_argument("--save-model", type=Path, help="keep the trained network here")
    parser.add_argument("--model", type=Path, help="paint with this network (from --save-model) instead of training")
    parser.add_argument("--train-seconds", type=float, help="with --model: the training time it took")
    parser.add_argument("--skip-optimize", action="store_true", help="only the network rows")
    parser.add_argument("--base", type=Path, help="with --skip-optimize: the --json of an earlier run, for its optimize row")
    parser.add_argument("--sheet", type=Path, help="write the middle frame of each row here, side by side")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    parser.add_argument("--set-network", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the network rows, e.g. temporal_weight=1e8 (value read as JSON)")
    args = parser.parse_args()
    if (args.model is None) != (args.train_seconds is None):
        parser.error("--model and --train-seconds go together")
    if args.model is not None and args.save_model is not None:
        parser.error("--save-model keeps a network this run trains; with --model it trains none")
    config = replace(load_config(args.config), max_side=args.max_side, crf=0)
    changes = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set_network)}
    network = replace(config, engine=Engine.network, train_iterations=args.train_iterations or config.train_iterations,
                      **changes)
    rows = {} if args.skip_optimize else {"optimize": config}
    changed = "".join(f", {key} {value}" for key, value in changes.items())
    steps = network.train_iterations if args.model is None else load_network(args.model)[1]["train_iterations"]
    rows |= {f"network ({steps} steps{changed})": network}
    for share in args.carry if args.carry is not None else [0.0]:  # what carrying buys, on the same network
        if share != network.carry:
            rows[f"network --carry {share:g}"] = replace(network, carry=share)
    if args.refine:
        rows[f"network --refine {args.refine}"] = replace(network, refine=args.refine)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mkv"
        n_frames = args.frames or sum(1 for _ in run.io.read_video(args.clip, max_side=args.max_side))
        cut_clip(args.clip, clip, start=0, n_frames=n_frames, max_side=args.max_side)
        outputs = {name: Path(folder) / f"{index}.mkv" for index, name in enumerate(rows)}
        # The network rows paint with one network, trained once on the clip (or kept from a run that did).
        if args.model is None:
            trained = learned.train_model([clip], [args.style], Path(folder) / "clip.safetensors", network)
            if args.save_model:
                shutil.copyfile(trained.output, args.save_model)
        else:
            trained = Kept(args.model, args.train_seconds)
        results = {name: measure(clip, args.style, outputs[name], row,
                                 trained if row.engine == Engine.network else None) for name, row in rows.items()}
        content_warm, content_thirds = warm_tones(clip, clip)
        if args.sheet:
            middle = n_frames // 2
            cells = [_frame(path, middle) for path in [clip, *outputs.values()]]
            labels = [[f"content, frame {middle}"], *([name] for name in outputs)]
            io.write_image(args.sheet, grid(cells, labels, columns=len(cells)))
    print(f"{args.clip.name}, {n_frames} frames at --max-side {args.max_side}, preset {args.config}, "
          f"style {args.style.name}; the content's warm lit areas: R-B {content_warm:.1f} "
          f"({_thirds(content_thirds)})")
    if args.base:  # the earlier run's optimize row, on the same frames and settings
        results = {"optimize": json.loads(args.base.read_text())["optimize"], **results}
    print(table(results, results.get("optimize")))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
