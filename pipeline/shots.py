"""Planning a video: its shots, and the chunks a long take is cut into for a Ray cluster.

A pure function of the decoded frames and their optical flow (no VGG, no Ray): a frame starts a new
shot where the chain's own scene-cut test (`sequence.link_frames`) would restart it, so the shots of
a plan are exactly the pieces a local run stylizes independently of each other.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import flow, io
from .config import Config, Flow
from .events import Callback, FramesChecked
from .sequence import chain_view, flow_and_mask, is_scene_cut


@dataclass(frozen=True)
class Shot:
    """Frames `first` .. `last` (inclusive) of the video, and the times they are shown at."""

    first: int
    last: int
    start: float  # seconds: when frame `first` is shown
    end: float  # seconds: when frame `last` is shown

    @property
    def n_frames(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Chunk:
    """One Ray task: frames `first` .. `last` of shot `shot`, plus `tail` frames after `last` that
    it also stylizes so the next chunk of the same shot can cross-fade out of it (docs/scale-out.md, Seams)."""

    shot: int
    first: int
    last: int
    tail: int = 0

    @property
    def n_frames(self) -> int:
        """Frames the task stylizes, its tail included."""
        return self.last - self.first + 1 + self.tail


@dataclass(frozen=True)
class Plan:
    """A video's shots, with what the encoder needs: every frame's pts and the time base."""

    shots: list[Shot]
    pts: list[int]
    time_base: Fraction
    width: int
    height: int
    seconds: float  # how long the planning pass took
    motion: list[float] = field(default_factory=list)  # per frame: the content's E_warp from the frame before (0 at a shot's start)
    unlinked: list[float] = field(default_factory=list)  # per frame: share of pixels not linked to the frame before (1 at frame 0)
    decoder_error: str | None = None  # a video's damage, as `io.VideoFrames.error` names it
    decoder_lost: int = 0  # frames a video declares that never decoded (`io.VideoFrames.lost`)

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    @functools.cached_property
    def starts(self) -> frozenset[int]:
        """The first frame of each shot."""
        return frozenset(shot.first for shot in self.shots)


def find_cuts(config: Config, frames: Iterable[np.ndarray]) -> list[int]:
    """Indices of the frames that start a new shot (0 first), by the chain's scene-cut test (see `scan`)."""
    return scan(config, frames)[0]


def scan(config: Config, frames: Iterable[np.ndarray]) -> tuple[list[int], list[float], list[float]]:
    """The frames that start a new shot (0 first), how much the footage moves at each frame, and
    the share of each frame's pixels not linked to the frame before (1 for the first).

    `frames` are uint8 (H, W, 3) at the working size. Frame t starts a shot where the chain's own
    test (`sequence.is_scene_cut`) would restart it, on the frames as the chain sees them
    (`sequence.chain_view`: their luminance with `preserve_colors = luminance`). Its motion is the
    content's own warping error from frame t-1 (0 where a shot starts): how far the flow falls short
    of explaining the frame, the floor under a stylized pair's warp error there.
    """
    starts, motion, unlinked_shares, previous = [], [], [], None
    for index, frame in enumerate(frames):
        frame = chain_view(config.preserve_colors, frame)
        unlinked, residual = (1.0, 0.0) if previous is None else link_share(config, previous, frame)
        if previous is None or is_scene_cut(config, unlinked):
            starts.append(index)
            residual = 0.0
        motion.append(residual)
        unlinked_shares.append(unlinked)
        previous = frame
    return starts, motion, unlinked_shares


def link_share(config: Config, previous: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Share of the pixels of `frame` the flow cannot explain from `previous`, as the chain measures
    it, and the content's warping error over the pixels it can."""
    forward = backward = None
    if config.flow != Flow.none:
        forward = flow.optical_flow(previous, frame, method=config.flow)
        backward = flow.optical_flow(frame, previous, method=config.flow)
    earlier, content = io.to_tensor(previous), io.to_tensor(frame)
    backward, mask = flow_and_mask(forward, backward, content)
    return flow.unlinked_fraction(earlier, content, backward, mask), flow.warp_residual(earlier, content, backward, mask)


def plan_video(path: Path, config: Config, *, callback: Callback | None = None) -> Plan:
    """Decode `path` at the working size (`max_side`, `max_frames`) and find its shots.

    Reports `FramesChecked` per frame. Raises InputError for an unreadable video.
    """
    start = time.perf_counter()
    info = io.probe_video(path)
    n_frames = min(info.n_frames, config.max_frames or info.n_frames) if info.n_frames else config.max_frames
    video = io.read_video(path, max_side=config.working_side, max_frames=config.max_frames)
    plan = _plan(((frame.image, frame.pts, frame.time_base) for frame in video), config, n_frames, callback)
    return replace(plan, seconds=time.perf_counter() - start, decoder_error=video.error, decoder_lost=video.lost)


def plan_frames(frames: Iterable[np.ndarray], config: Config, *, callback: Callback | None = None) -> Plan:
    """Find the shots of an image sequence, uint8 (H, W, 3) frames at the working size; its frames'
    "pts" are their indices, in a time base of one second per frame. Reports `FramesChecked`."""
    start = time.perf_counter()
    plan = _plan(((image, index, Fraction(1)) for index, image in enumerate(frames)), config, None, callback)
    return replace(plan, seconds=time.perf_counter() - start)


def _plan(frames: Iterable[tuple[np.ndarray, int, Fraction]], config: Config, n_frames: int | None,
          callback: Callback | None) -> Plan:
    """The shots of (image, pts, time base) `frames`; `n_frames`, if known, for progress."""
    emit = callback or (lambda event: None)
    pts, times, time_base, size = [], [], Fraction(1), (0, 0)

    def images() -> Iterable[np.ndarray]:
        nonlocal time_base, size
        for image, stamp, base in frames:
            pts.append(stamp)
            times.append(float(stamp * base))
            time_base, size = base, (image.shape[1], image.shape[0])
            emit(FramesChecked(len(pts), max(n_frames or 0, len(pts))))
            yield image

    starts, motion, unlinked = scan(config, images())
    ends = [*(first - 1 for first in starts[1:]), len(pts) - 1]
    shots = [Shot(first, last, times[first], times[last]) for first, last in zip(starts, ends)]
    return Plan(shots, pts, time_base, size[0], size[1], 0.0, motion, unlinked)


def split_shots(shots: list[Shot], *, max_chunk_frames: int, seam_frames: int,
                motion: list[float] | None = None) -> list[Chunk]:
    """Cut each shot longer than `max_chunk_frames` into that many frames or fewer, as evenly as
    possible; every chunk but a shot's last also takes the `seam_frames` after it (its tail, at
    most the next chunk's length). In video order.

    With `motion` (per frame, `Plan.motion`), each boundary moves up to `max_chunk_frames // 8`
    frames from the even split to where the footage is calmest over the cross-fade that follows
    it (the least largest motion over its pairs), so a seam lands where consecutive frames differ
    least anyway (docs/scale-out.md, Seams).
    """
    chunks = []
    for number, shot in enumerate(shots):
        bounds = _bounds(shot, max_chunk_frames, seam_frames, motion)
        for k in range(len(bounds) - 1):
            following = bounds[k + 2] - bounds[k + 1] if k + 2 < len(bounds) else 0  # the next chunk's frames
            chunks.append(Chunk(number, bounds[k], bounds[k + 1] - 1, min(seam_frames, following)))
    return chunks


def _bounds(shot: Shot, max_chunk_frames: int, seam_frames: int, motion: list[float] | None) -> list[int]:
    """The first frame of each chunk of `shot`, then the frame after the shot."""
    pieces = math.ceil(shot.n_frames / max_chunk_frames)
    even = [shot.first + round(k * shot.n_frames / pieces) for k in range(pieces + 1)]
    if motion is None or pieces == 1:
        return even
    reach, end, bounds = max_chunk_frames // 8, shot.last + 1, [shot.first]
    for k in range(1, pieces):
        left = pieces - k  # chunks still to come after this boundary
        low = max(even[k] - reach, bounds[-1] + 1, end - left * max_chunk_frames)
        high = min(even[k] + reach, bounds[-1] + max_chunk_frames, end - left)

        def calm(boundary: int) -> tuple[float, int]:
            pairs = motion[boundary : min(boundary + seam_frames + 1, end)]  # the pairs the cross-fade touches
            return max(pairs, default=0.0), abs(boundary - even[k])

        bounds.append(min(range(low, high + 1), key=calm))
    return [*bounds, end]


def plan_summary(plan: Plan) -> dict:
    """The plan as plain JSON-ready values: size, frames, seconds the pass took, and each shot."""
    return {"width": plan.width, "height": plan.height, "n_frames": plan.n_frames, "seconds": round(plan.seconds, 3),
            "shots": [{"first": shot.first, "last": shot.last, "start": round(shot.start, 6),
                       "end": round(shot.end, 6), "n_frames": shot.n_frames} for shot in plan.shots]}
