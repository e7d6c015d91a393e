"""What does `--ray local` cost against the local path? Pairs of the same command, local then Ray.

Runs `stylereel video CLIP -s STYLE ... --keep-frames --stats` as a subprocess, once without and
once with `--ray local`, `--pairs` times, and prints per pair the wall time of each whole command,
the sum of its per-frame seconds (`--stats`), the ratio, and the smallest PSNR between the two
runs' lossless frames (the work folders' PNGs; "inf" when every frame is bit-for-bit equal).
Extra arguments after `--` go to both commands (`-- --max-frames 12`).

`--background` measures instead what Ray's own processes (GCS, raylet, agents, idle workers) take
from the compute while they idle: a fixed VGG-19 forward and backward at 72x128 on torch's threads,
timed alternately with a private Ray's processes running and stopped (SIGSTOP), in one process.

    python benchmarks/overhead.py samples/clip.mp4 -s samples/styles/swirl.png -c configs/preview.toml --pairs 3
    python benchmarks/overhead.py --background
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stylereel.pipeline import io


def run_once(command: list[str], output: Path) -> dict:
    """Wall seconds of one whole command, and the per-frame seconds its --stats file sums up."""
    stats = output.with_suffix(".json")
    start = time.perf_counter()
    subprocess.run([*command, "-o", str(output), "--overwrite", "--keep-frames", "--stats", str(stats), "-q"],
                   check=True)
    wall = time.perf_counter() - start
    data = json.loads(stats.read_text())
    return {"wall": wall, "frames": sum(frame["seconds"] for frame in data["frames"]),
            "parts": output.with_name(output.name + ".parts")}


def smallest_psnr(first: Path, second: Path) -> float:
    """The smallest PSNR (dB) over the frames two work folders share; inf if all are equal."""
    worst = math.inf
    names = sorted(path.name for path in first.glob("[0-9]*.png") if ".tail" not in path.name)
    if not names:
        raise SystemExit(f"{first}: no frames kept")
    for name in names:
        a = io.read_image(first / name).astype(np.float64)
        b = io.read_image(second / name).astype(np.float64)
        mse = float(np.mean((a - b) ** 2))
        worst = min(worst, math.inf if mse == 0 else 10 * math.log10(255**2 / mse))
    return worst


def pairs(args: argparse.Namespace, extra: list[str]) -> None:
    command = ["stylereel", "video", str(args.clip), *(arg for style in args.style for arg in ("-s", str(style)))]
    if args.config:
        command += ["-c", str(args.config)]
    command += extra
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        print("pair | local s | --ray local s | Ray / local | local frames s | Ray frames s | smallest PSNR")
        for pair in range(1, args.pairs + 1):
            local = run_once(command, Path(folder) / f"local{pair}.mp4")
            ray = run_once([*command, "--ray", "local"], Path(folder) / f"ray{pair}.mp4")
            ratios.append(ray["wall"] / local["wall"])
            print(f"{pair} | {local['wall']:.1f} | {ray['wall']:.1f} | {ratios[-1]:.3f} | {local['frames']:.1f} | "
                  f"{ray['frames']:.1f} | {smallest_psnr(local['parts'], ray['parts']):.1f}", flush=True)
    print(f"mean Ray / local {statistics.mean(ratios):.3f} over {len(ratios)} pair(s), "
          f"{sum(ratio > 1.1 for ratio in ratios)} over 1.1")


def background(args: argparse.Namespace) -> None:
    import logging

    import ray
    import torch
    from stylereel.pipeline import ray_connect
    from stylereel.pipeline.config import Config
    from stylereel.pipeline.sequence import load_model

    model = load_model(Config(), torch.device("cpu"))
    image = torch.rand(1, 3, 72, 128, requires_grad=True)
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")

    def work(repeats: int = 30) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            sum(feature.square().mean() for feature in model(image, layers).values()).backward()
        return time.perf_counter() - start

    work(5)
    alone = statistics.median(work() for _ in range(4))
    ray_connect.init_local(ray, num_cpus=os.cpu_count(), logging_level=logging.ERROR, log_to_driver=False)
    try:
        time.sleep(2)  # let the idle workers start
        processes = _ray_processes()
        running, stopped = [], []
        for _ in range(args.repeats):
            running.append(work())
            for pid in processes:
                os.kill(pid, signal.SIGSTOP)
            try:
                stopped.append(work())
            finally:
                for pid in processes:
                    os.kill(pid, signal.SIGCONT)
    finally:
        ray.shutdown()
    print(f"torch threads {torch.get_num_threads()}, {len(processes)} Ray processes; medians over {args.repeats}: "
          f"before Ray {alone:.3f} s, Ray running {statistics.median(running):.3f} s, "
          f"Ray stopped {statistics.median(stopped):.3f} s; running / stopped "
          f"{statistics.median(running) / statistics.median(stopped):.3f}")


def _ray_processes() -> list[int]:
    """This process's Ray children: the GCS, raylet, agents, monitors and workers it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() or parent in found:
            found.append(int(entry.name))
    return found


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, nargs="?")
    parser.add_argument("-s", "--style", type=Path, action="append", default=[])
    parser.add_argument("-c", "--config", type=Path)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--background", action="store_true", help="measure Ray's idle processes instead")
    parser.add_argument("--repeats", type=int, default=8, help="--background: alternations")
    args = parser.parse_args(argv)
    if args.background:
        background(args)
    elif args.clip is None or not args.style:
        parser.error("a clip and -s STYLE are needed (or --background)")
    else:
        pairs(args, extra)


if __name__ == "__main__":
    main()
