"""Do chunk seams show? Warp error across each seam of a `--ray` run against the median inside chunks.

Stylizes a clip with `--ray local`, long shots cut into small chunks (`--max-chunk-frames`), once per
`--seam-frames` value, and measures the warping error (`evaluate.warp_error`, Lai et al. 2018) of
every consecutive pair of output frames (the lossless frames of the work folder, cross-faded as the
encoder does) along the content's flow. Pairs across a scene cut are left out; a seam's pairs are
the ones that touch its cross-fade (for 0 seam frames, the pair across the chunk boundary).

    python benchmarks/seams.py bikes.mp4 -s samples/styles/swirl.png -c configs/preview.toml \
        --max-frames 76 --max-chunk-frames 12 --seam-frames 0 --seam-frames 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np
from stylereel.pipeline import cluster, evaluate, io, run
from stylereel.pipeline.checkpoint import Checkpoint
from stylereel.pipeline.config import load_config
from stylereel.pipeline.shots import plan_video, split_shots


def _split_evenly(*args, motion=None, **kwargs):
    return split_shots(*args, **kwargs)


def measure(clip: Path, styles: list[Path], config, folder: Path, *, reuse: bool = False, even: bool = False) -> dict:
    output = folder / f"seams{config.seam_frames}{'-even' if even else ''}.mp4"
    if not (reuse and output.exists()):
        # --even: the run splits shots evenly, as before seams were placed by the footage's motion
        with mock.patch.object(cluster, "split_shots", _split_evenly) if even else nullcontext():
            run.stylize_video(clip, styles, output, config, overwrite=True, keep_frames=True)
    plan = plan_video(clip, config)
    chunks = split_shots(plan.shots, max_chunk_frames=config.max_chunk_frames, seam_frames=config.seam_frames,
                         motion=None if even else plan.motion)
    checkpoint = Checkpoint(Checkpoint.beside(output), {}, keep_images=True)
    fades = {chunk.last + k: k / (chunk.tail + 1) for chunk in chunks for k in range(1, chunk.tail + 1)}
    frames = [cluster.final_frame(checkpoint, index, fades.get(index)) for index in range(plan.n_frames)]
    guides = [frame.image for frame in io.read_video(clip, max_side=config.working_side, max_frames=config.max_frames)]
    starts = {shot.first for shot in plan.shots}
    seams = [(chunk.last + 1, chunk.tail) for chunk in chunks if chunk.last + 1 not in starts and chunk.last + 1 < plan.n_frames]
    seam_pairs = {t: boundary for boundary, tail in seams for t in range(boundary, boundary + tail + 1)
                  if t < plan.n_frames and t not in starts}  # a tail may end at a cut
    errors = {t: evaluate.warp_error(frames[t - 1 : t + 1], guides[t - 1 : t + 1], method=config.flow)
              for t in range(1, plan.n_frames) if t not in starts}
    inside = [error for t, error in errors.items() if t not in seam_pairs]
    per_seam = {boundary: max(errors[t] for t, b in seam_pairs.items() if b == boundary) for boundary, _ in seams}
    seam_mean = {boundary: np.mean([errors[t] for t, b in seam_pairs.items() if b == boundary]) for boundary, _ in seams}
    median = float(np.median(inside))
    # The same pairs in the chain that carries on through the seam (the previous chunk's tail),
    # which has no seam at all: how hard these frames are anyway.
    carried = {}
    for chunk in chunks:
        if chunk.tail and chunk.last + 1 not in starts:
            tail = [frames[chunk.last]] + [io.read_image(cluster.tail_path(checkpoint, chunk.last + k))
                                           for k in range(1, chunk.tail + 1)]
            carried[chunk.last + 1] = max(evaluate.warp_error(tail[k : k + 2], guides[chunk.last + k : chunk.last + k + 2],
                                                              method=config.flow) for k in range(chunk.tail))
    return {"seam_frames": config.seam_frames, "max_chunk_frames": config.max_chunk_frames, "frames": plan.n_frames,
            "tasks": len(chunks), "seams": len(seams), "median_inside": median,
            "seam_max_over_median": {str(b + 1): round(e / median, 2) for b, e in per_seam.items()},
            "seam_mean_over_median": {str(b + 1): round(e / median, 2) for b, e in seam_mean.items()},
            "content_max_over_median": {str(b + 1): round(max(plan.motion[t] for t, c in seam_pairs.items() if c == b)
                                                          / float(np.median([plan.motion[t] for t in errors if t not in seam_pairs])), 2)
                                        for b, _ in seams},
            "worst_seam_over_median": round(max(per_seam.values()) / median, 2) if per_seam else None,
            "carried_chain_max_over_median": {str(b + 1): round(e / median, 2) for b, e in carried.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("-c", "--config", type=Path)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--max-chunk-frames", type=int, default=12)
    parser.add_argument("--seam-frames", type=int, action="append")
    parser.add_argument("--ray-cpus", type=int, default=1)
    parser.add_argument("--first-iterations", type=int, help="override the preset's first-frame cap")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure the runs already in --work again")
    parser.add_argument("--even", action="store_true",
                        help="split shots evenly, as before seams were placed by motion (for a before/after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = args.work or Path(temp)
        for seam_frames in args.seam_frames or [8]:
            config = load_config(args.config, ray="local", max_frames=args.max_frames, ray_cpus=args.ray_cpus,
                                 max_chunk_frames=args.max_chunk_frames, seam_frames=seam_frames,
                                 first_iterations=args.first_iterations)
            print(json.dumps(measure(args.clip, args.style, config, folder, reuse=args.reuse, even=args.even)), flush=True)


if __name__ == "__main__":
    main()
