"""Memory benchmark (issue 4): peak resident memory over a long video run must stay flat.

    python benchmarks/memory.py -s samples/styles/swirl.png --frames 300 -c configs/preview.toml

Writes a synthetic clip of `--frames` frames (a textured pattern drifting across a 320x180 frame,
25 fps, with a sine-wave AAC track), stylizes it with the given preset, and prints the peak
resident set size (ru_maxrss) and the current one after frames 1, 10, 100, 200 and the last.
Flat means the peak after the last frame is the peak after frame 100, give or take allocator noise.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stylereel.pipeline import run
from stylereel.pipeline.config import load_config
from stylereel.pipeline.events import FrameDone

CHECKPOINTS = (1, 10, 100, 200)


def make_clip(path: Path, n_frames: int, *, width: int = 320, height: int = 180) -> None:
    """A drifting texture with audio: enough motion for real flow, cheap to make."""
    rng = np.random.default_rng(0)
    texture = (rng.random((height, 2 * width, 3)) * 255).astype(np.uint8)
    texture = (texture.astype(np.float32) * 0.5 + np.linspace(0, 127, 2 * width)[None, :, None]).astype(np.uint8)
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=48000)
        samples_per_frame = 48000 // 25
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, index % width:index % width + width]),
                                               format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            output.mux(video.encode(frame))
            t = (np.arange(samples_per_frame) + index * samples_per_frame) / 48000
            sound = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32),
                                               format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 48000, index * samples_per_frame
            output.mux(audio.encode(sound))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--style", type=Path, action="append", required=True)
    parser.add_argument("-c", "--config", type=Path, default=Path("configs/preview.toml"))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--first-iterations", type=int, help="override the preset's first-frame cap")
    args = parser.parse_args()
    config = load_config(args.config, device="cpu", first_iterations=args.first_iterations)  # None keeps the preset's
    marks = {*CHECKPOINTS, args.frames}
    print(f"{args.frames} frames, preset {args.config}, max_side {config.max_side}\n")
    print("| after frame | peak RSS (MiB) | current RSS (MiB) |\n|---|---|---|")

    def report(event: object) -> None:
        if isinstance(event, FrameDone) and event.index + 1 in marks:
            print(f"| {event.index + 1} | {peak_rss_mib():.0f} | {current_rss_mib():.0f} |", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "long.mp4"
        make_clip(clip, args.frames)
        run.stylize_video(clip, args.style, Path(folder) / "out.mp4", config, callback=report)


if __name__ == "__main__":
    main()
