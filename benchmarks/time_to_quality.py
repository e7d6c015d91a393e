"""Time-to-quality benchmark (issue 4): a preset against a long reference run of the same clip.

    python benchmarks/time_to_quality.py CLIP -s samples/styles/swirl.png --start 110 --frames 16 \\
        --max-side 160 --keep /tmp/ttq

Cuts `--frames` frames of CLIP losslessly (as benchmarks/flicker.py does), stylizes them once with
the reference settings (`--reference-iterations` L-BFGS iterations on every frame, no early stop,
no coarse-to-fine; prev-warped start and temporal loss, as Ruder et al.) and once per `--preset`
(configs/*.toml, with `--max-side` applied), and prints a Markdown table: total iterations, seconds
per frame, warp error, mean style and content loss, each as a ratio to the reference.
The reference takes long; with `--keep DIR` its output and stats are kept and reused next time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from flicker import cut_clip
from stylereel.pipeline import run
from stylereel.pipeline.config import Config, load_config
from stylereel.pipeline.evaluate import evaluate_video

REFERENCE = {"stop_tolerance": 0.0, "coarse_to_fine": False}


def stylize(clip: Path, styles: list[Path], config: Config, output: Path) -> dict:
    """Stylize `clip` to `output` (CRF 0) and return its stats, with wall-clock seconds added."""
    stats = output.with_suffix(".json")
    start = time.perf_counter()
    run.stylize_video(clip, styles, output, replace(config, crf=0), overwrite=True, stats=stats)
    data = json.loads(stats.read_text())
    data["wall_seconds"] = time.perf_counter() - start
    stats.write_text(json.dumps(data, indent=2))
    return data


def row(name: str, clip: Path, output: Path, stats: dict, styles: list[Path], config: Config) -> dict:
    result = evaluate_video(clip, output, styles, config)
    iterations = sum(frame["iterations"] for frame in stats["frames"])
    return {"name": name, "iterations": iterations, "seconds": stats["wall_seconds"] / stats["n_frames"],
            "warp": result.warp_error, "floor": result.content_warp_error, "style": result.style_loss,
            "content": result.content_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("--preset", type=Path, action="append", default=None, help="default: configs/default.toml")
    parser.add_argument("--start", type=int, default=110)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-side", type=int, default=160)
    parser.add_argument("--reference-iterations", type=int, default=500)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep (and reuse) the reference run in")
    args = parser.parse_args()
    presets = args.preset or [Path("configs/default.toml")]
    with tempfile.TemporaryDirectory() as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = folder / f"clip-{args.start}-{args.frames}-{args.max_side}.mkv"
        if not clip.exists():
            cut_clip(args.clip, clip, start=args.start, n_frames=args.frames, max_side=args.max_side)
        reference_config = load_config(None, max_side=args.max_side, device="cpu", **REFERENCE,
                                       first_iterations=args.reference_iterations,
                                       iterations=args.reference_iterations)
        reference_output = folder / f"reference-{args.reference_iterations}-{clip.stem}.mp4"
        if reference_output.with_suffix(".json").exists():
            reference_stats = json.loads(reference_output.with_suffix(".json").read_text())
        else:
            reference_stats = stylize(clip, args.style, reference_config, reference_output)
        rows = [row(f"reference ({args.reference_iterations} per frame)", clip, reference_output,
                    reference_stats, args.style, reference_config)]
        for preset in presets:
            config = load_config(preset, max_side=args.max_side, device="cpu")
            output = folder / f"{preset.stem}-{clip.stem}.mp4"
            rows.append(row(preset.stem, clip, output, stylize(clip, args.style, config, output), args.style, config))
        print(f"clip: {args.clip} frames {args.start}..{args.start + args.frames - 1}, long side {args.max_side}\n")
        print("| run | iterations | share of reference | s/frame | warp error | ratio | style loss | ratio "
              "| content loss | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        ref = rows[0]
        for r in rows:
            print(f"| {r['name']} | {r['iterations']} | {r['iterations'] / ref['iterations']:.3f} | "
                  f"{r['seconds']:.2f} | {r['warp']:.6f} | {r['warp'] / ref['warp']:.3f} | {r['style']:.4g} | "
                  f"{r['style'] / ref['style']:.3f} | {r['content']:.4g} | {r['content'] / ref['content']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
