"""Simulated scale-out: makespan and efficiency of `stylereel video --ray` on 1 to 256 workers.

No cluster is needed: the shot lengths come from `stylereel shots --json` (a real clip's cuts) or
from a film-like distribution, the seconds from measured runs, and the schedule is the one
`pipeline/cluster.py` uses: shots cut into chunks of at most `max_chunk_frames` (each chunk but a
shot's last also runs `seam_frames` more frames), tasks decoded in video order, the longest of the
`workers` decoded ones submitted first, each started on the worker that frees up first.

A task costs `task_seconds` (start-up on the worker: model, Grams, frames in and out) plus
`first_seconds` for its first frame (a shot start: more iterations, coarse-to-fine) plus
`frame_seconds` for each later frame. Efficiency is the stylizing work of a one-worker local run
(no task costs, no seam frames, one start per shot) over workers x makespan.

    python benchmarks/scale.py --shots shots.json --first-seconds 4.1 --frame-seconds 0.9 --task-seconds 3
    python benchmarks/scale.py --film 7200 --asl 4 --first-seconds ... (a 2-hour film, 4 s average shot)

The film-like distribution is lognormal (shot lengths in films are close to lognormal: Barry Salt;
Cutting, DeLong and Nothelfer 2010) with the given average shot length (Cutting, Brunick, DeLong,
Iricinschi and Candan 2011: about 4 s for recent Hollywood films) and `--sigma` (log-space spread).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
from pathlib import Path

import numpy as np
from stylereel.pipeline.config import Config

WORKERS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def film_shots(seconds: float, *, asl: float, sigma: float, fps: float, seed: int = 0) -> list[int]:
    """Shot lengths in frames, lognormal with mean `asl` seconds, until they fill `seconds`."""
    rng = np.random.default_rng(seed)
    mu = math.log(asl) - sigma**2 / 2  # the mean of a lognormal is exp(mu + sigma^2 / 2)
    lengths, total = [], 0
    while total < seconds * fps:
        frames = max(1, round(rng.lognormal(mu, sigma) * fps))
        lengths.append(frames)
        total += frames
    return lengths


def chunks(lengths: list[int], *, max_chunk_frames: int | None, seam_frames: int) -> list[int]:
    """Frames each task stylizes, in video order (as `shots.split_shots` cuts them); None: no chunking."""
    tasks = []
    for n in lengths:
        if max_chunk_frames is None or n <= max_chunk_frames:
            tasks.append(n)
            continue
        pieces = math.ceil(n / max_chunk_frames)
        bounds = [round(k * n / pieces) for k in range(pieces + 1)]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        tasks += [size + (min(seam_frames, sizes[k + 1]) if k + 1 < pieces else 0) for k, size in enumerate(sizes)]
    return tasks


def submission_order(tasks: list[int], workers: int) -> list[int]:
    """`cluster.schedule`'s order: a window of `workers` decoded tasks, the longest submitted first."""
    order, waiting, upcoming = [], [], iter(enumerate(tasks))
    for index, n in upcoming:
        heapq.heappush(waiting, (-n, index))
        if len(waiting) >= workers:
            order.append(-heapq.heappop(waiting)[0])
    while waiting:
        order.append(-heapq.heappop(waiting)[0])
    return order


def makespan(costs: list[float], workers: int) -> float:
    """Each task, in order, on the worker that frees up first."""
    free = [0.0] * workers
    for cost in costs:
        heapq.heapreplace(free, free[0] + cost)
    return max(free)


def simulate(lengths: list[int], args: argparse.Namespace, *, chunked: bool) -> list[dict]:
    tasks = chunks(lengths, max_chunk_frames=args.max_chunk_frames if chunked else None, seam_frames=args.seam_frames)
    local = sum(args.first_seconds + (n - 1) * args.frame_seconds for n in lengths)
    rows = []
    for workers in WORKERS:
        costs = [args.task_seconds + args.first_seconds + (n - 1) * args.frame_seconds
                 for n in submission_order(tasks, workers)]
        span = makespan(costs, workers)
        rows.append({"workers": workers, "tasks": len(tasks), "makespan_s": span, "speedup": local / span,
                     "efficiency": local / (workers * span), "longest_task_s": max(costs)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shots", type=Path, help="`stylereel shots --json` output of a clip")
    source.add_argument("--film", type=float, metavar="SECONDS", help="a film-like distribution this long")
    parser.add_argument("--asl", type=float, default=4.0, help="average shot length, seconds (film)")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal spread of shot lengths (film)")
    parser.add_argument("--fps", type=float, default=24.0, help="frames per second (film)")
    parser.add_argument("--first-seconds", type=float, required=True, help="seconds for a shot's first frame")
    parser.add_argument("--frame-seconds", type=float, required=True, help="seconds for every later frame")
    parser.add_argument("--task-seconds", type=float, default=0.0, help="start-up seconds per task")
    defaults = Config()
    parser.add_argument("--max-chunk-frames", type=int, default=defaults.max_chunk_frames)
    parser.add_argument("--seam-frames", type=int, default=defaults.seam_frames)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.shots:
        lengths = [shot["n_frames"] for shot in json.loads(args.shots.read_text())["shots"]]
    else:
        lengths = film_shots(args.film, asl=args.asl, sigma=args.sigma, fps=args.fps)
    result = {"shots": len(lengths), "frames": sum(lengths), "longest_shot": max(lengths),
              "chunked": simulate(lengths, args, chunked=True), "unchunked": simulate(lengths, args, chunked=False)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['shots']} shots, {result['frames']} frames, longest {result['longest_shot']}; "
          f"first {args.first_seconds} s, later {args.frame_seconds} s/frame, task {args.task_seconds} s")
    print("| workers | tasks (chunked) | makespan | efficiency | tasks (unchunked) | makespan | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for on, off in zip(result["chunked"], result["unchunked"]):
        print(f"| {on['workers']} | {on['tasks']} | {_duration(on['makespan_s'])} | {on['efficiency']:.0%} "
              f"| {off['tasks']} | {_duration(off['makespan_s'])} | {off['efficiency']:.0%} |")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
