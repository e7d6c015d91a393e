"""How long a run will take, before it starts: each engine's time from a few timed units of its
work (an optimiser iteration, a training step, a painted batch) times the run's counts of them.

`stylereel preview` prints both engines' estimates (`preview.estimate`); `video` and `frames` say
theirs before a long run (`long_run_notices`), with the other engine's where that one is shorter.
The arithmetic is pure (`optimize_estimate`, `network_estimate`, `long_run_notice`): the words
can be checked on made-up timings without timing anything.

Convention: frames are uint8 (H, W, 3) RGB as the run sees them; times are seconds on the run's device.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import io
from .config import Config, Engine
from .events import Notice
from .optimize import Targets, content_targets, iteration_step
from .sequence import Session, ladder, link_back, rung_budgets, uses_bf16
from .train import BATCH, paint, train_network

SAY_ABOVE = 180.0  # s: a video or frames run expected to take longer says its time before it starts
# What a run would cost on a slow device, to skip the timing where even that would be short: an
# optimiser iteration per pixel of the frame (the 2-core CPU of docs/speed.md takes 5e-6 to 7e-6 s),
# and a training step and a painted frame in such iterations (there: 6x at the crop's size, 0.2x).
SLOW_PIXEL_SECONDS = 1e-5
STEP_COST = 6.0
PAINT_COST = 0.2
RUN_REPEAT = 1  # units of each engine timed before a run, after one untimed: a small share of a long run


@dataclass(frozen=True)
class Timings:
    """Seconds of one unit of each engine's work at a run's working size on its device."""

    iteration: float = 0.0  # one optimiser iteration on a frame
    train_step: float = 0.0  # one training step of the network (a pair of crops of at most train_crop px)
    paint: float = 0.0  # painting one frame with the network (in batches of `train.BATCH`)


@dataclass(frozen=True)
class Estimate:
    """One engine's time for a whole run: `seconds`, from `timings` and the counts of each unit."""

    engine: Engine
    seconds: float
    n_frames: int
    width: int
    height: int
    device: str
    timings: Timings
    iterations: float  # optimiser iterations at the working size's cost (optimize: budgets; network: --refine's)
    train_steps: int  # network: training steps (0 for the optimiser)
    rests_on: str  # what the figure assumes, in words

    @property
    def upper_bound(self) -> bool:
        """Whether iteration budgets (maxima, that early stopping usually undercuts) enter the figure."""
        return self.iterations > 0


def optimize_estimate(config: Config, *, width: int, height: int, n_frames: int, timings: Timings,
                      device: str) -> Estimate:
    """The optimiser's time for `n_frames` frames of width x height: `timings.iteration` x the
    iteration budgets (a shot's first frame up its ladder, each later frame, each later pass).
    An upper bound: the budgets are maxima."""
    all_rungs = ladder((height, width), config)
    rungs, budgets = all_rungs[:-1], rung_budgets(len(all_rungs), config)
    rungs_cost = sum(rung[0] * rung[1] for rung in rungs) / (height * width)
    first = sum(budget * rung[0] * rung[1] for budget, rung in zip(budgets, all_rungs)) / (height * width)
    later = (n_frames - 1) * config.iterations + (config.passes - 1) * n_frames * config.iterations
    rests_on = (
        f"{timings.iteration:.2f} s per iteration measured now at {width}x{height} on {device} "
        f"x the iteration budgets: {budgets[-1]} on the first frame"
        + (f" plus {budgets[0]} on the smallest of {len(rungs)} smaller rung(s) of the ladder"
           + (f" and {budgets[-1]} on each other" if len(rungs) > 1 else "")
           + f" (counted at {rungs_cost:.2f} of the cost together)" if rungs else "")
        + (f", {config.iterations} on each of the {n_frames - 1} later frames" if n_frames > 1 else "")
        + (f", {config.iterations} per frame in each of {config.passes - 1} later passes" if config.passes > 1 else "")
        + f"; an upper bound: early stopping (stop_tolerance {config.stop_tolerance:g})"
        + (" and settle" if config.settle and n_frames > 1 else "") + " usually stop frames sooner"
        + ("; one shot assumed (each scene cut adds a first frame)" if n_frames > 1 else "")
        + "; decoding, flow, loading and writing not counted"
    )
    return Estimate(Engine.optimize, timings.iteration * (first + later), n_frames, width, height, device, timings,
                    first + later, 0, rests_on)


def network_estimate(config: Config, *, width: int, height: int, n_frames: int, timings: Timings,
                     device: str) -> Estimate:
    """The network engine's time for `n_frames` frames of width x height: `train_iterations`
    training steps, then each frame painted, and with `refine` at most that many optimiser
    iterations on each. The steps are a fixed count, so without `refine` it is no bound but close."""
    crop = f"{min(config.train_crop, width)}x{min(config.train_crop, height)}"
    refining = n_frames * config.refine
    seconds = config.train_iterations * timings.train_step + n_frames * timings.paint + refining * timings.iteration
    rests_on = (
        f"{timings.train_step:.2f} s per training step measured now on {device} (a pair of {crop} crops of "
        f"{width}x{height} frames, their flow included) x {config.train_iterations} steps, then "
        f"{timings.paint * 1e3:.0f} ms per frame painted{' (its flow included: --carry)' if config.carry else ''} "
        f"x {n_frames} frame(s)"
        + (f", then at most {config.refine} optimiser iterations per frame (--refine) at {timings.iteration:.2f} s "
           "each, an upper bound" if config.refine else "")
        + "; decoding, finding the shots, loading and writing not counted"
    )
    return Estimate(Engine.network, seconds, n_frames, width, height, device, timings, refining,
                    config.train_iterations, rests_on)


def engine_estimate(config: Config, engine: Engine, *, width: int, height: int, n_frames: int, timings: Timings,
                    device: str) -> Estimate:
    """`optimize_estimate` or `network_estimate`, as `engine` says."""
    estimate = optimize_estimate if engine == Engine.optimize else network_estimate
    return estimate(config, width=width, height=height, n_frames=n_frames, timings=timings, device=device)


def long_run_notice(chosen: Estimate, other: Estimate | None) -> Notice | None:
    """The line a run expected to take over SAY_ABOVE says before it starts: its engine's estimate,
    and `other` (the other engine's) where that one is shorter. None for a shorter run."""
    if chosen.seconds <= SAY_ABOVE:
        return None
    text = (f"estimated time for {chosen.n_frames} frame(s) at {chosen.width}x{chosen.height} on {chosen.device} "
            f"with --engine {chosen.engine.value}: {_told(chosen)}")
    if other is not None and other.seconds < chosen.seconds:
        if other.engine == Engine.network:
            text += f"; --engine network would take {_told(other)}"
        else:  # training costs the same whatever the clip's length
            text += f"; on a clip this short --engine optimize is faster: {_told(other)}"
    return Notice(text)


def _told(estimate: Estimate) -> str:
    """"at most 25 min 10 s (1.07 s per iteration x at most 1410 iterations)" and the like."""
    timings = estimate.timings
    if estimate.engine == Engine.optimize:
        units = f"{timings.iteration:.2f} s per iteration x at most {estimate.iterations:.0f} iterations"
    else:
        units = (f"{estimate.train_steps} training steps at {timings.train_step:.2f} s, "
                 f"{estimate.n_frames} frame(s) painted at {timings.paint * 1e3:.0f} ms"
                 + (f", at most {estimate.iterations:.0f} refining iterations at {timings.iteration:.2f} s"
                    if estimate.iterations else ""))
    return f"{'at most' if estimate.upper_bound else 'about'} {duration(estimate.seconds)} ({units})"


def duration(seconds: float) -> str:
    """"2 h 05 min", "3 min 07 s" or "42 s"."""
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min" if hours else f"{minute} min {second:02d} s" if minute else f"{second} s"


def prior_timings(config: Config, width: int, height: int) -> Timings:
    """What each unit of work would take at width x height on a slow device (SLOW_PIXEL_SECONDS): a
    run whose estimate is short even with these is not timed."""
    iteration = SLOW_PIXEL_SECONDS * width * height
    crop = min(config.train_crop, width) * min(config.train_crop, height)
    return Timings(iteration, STEP_COST * SLOW_PIXEL_SECONDS * crop, PAINT_COST * iteration)


def long_run_notices(session: Session, frames: list[np.ndarray], *, n_frames: int | None) -> list[Notice]:
    """What a video or frames run with `session` (its engine `session.config.engine`) says before it
    starts (`long_run_notice`), from its first `frames` (one or two, uint8 (H, W, 3) at the working
    size): nothing for a short run, or one whose length is unknown (`n_frames` None).

    A run short even on a slow device (`prior_timings`) times nothing; another times RUN_REPEAT
    units of its engine's work after one untimed, and if it is long, the other engine's too (the
    network's only where it can run it: one pass). The random state is left as it was.
    """
    config = session.config
    if n_frames is None:
        return []
    height, width = frames[0].shape[:2]

    def estimate(engine: Engine, timings: Timings) -> Estimate:
        return engine_estimate(config, engine, width=width, height=height, n_frames=n_frames, timings=timings,
                               device=str(session.device))

    chosen = Engine(config.engine)
    if estimate(chosen, prior_timings(config, width, height)).seconds <= SAY_ABOVE:
        return []
    device = session.device
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type):
        timings = measure(session, frames, chosen, Timings())
        if estimate(chosen, timings).seconds <= SAY_ABOVE:
            return []
        other = Engine.network if chosen == Engine.optimize else Engine.optimize
        offered = other == Engine.optimize or config.passes == 1  # the network makes one pass
        if offered:
            timings = measure(session, frames, other, timings)
    notice = long_run_notice(estimate(chosen, timings), estimate(other, timings) if offered else None)
    return [notice] if notice is not None else []


def measure(session: Session, frames: list[np.ndarray], engine: Engine, timings: Timings) -> Timings:
    """`timings` with what `engine`'s estimate needs and it lacks timed on the run's `session`:
    an optimiser iteration (the optimiser, or the network with `refine`), a training step and a
    painted frame (the network)."""
    if engine == Engine.network and not timings.train_step:
        train_step, painted = time_network(session, frames, repeat=RUN_REPEAT)
        timings = dataclasses.replace(timings, train_step=train_step, paint=painted)
    if (engine == Engine.optimize or session.config.refine) and not timings.iteration:
        timings = dataclasses.replace(timings, iteration=time_iteration(session, frames[0], repeat=RUN_REPEAT))
    return timings


def time_iteration(session: Session, frame: np.ndarray, *, repeat: int) -> float:
    """Seconds of one optimiser iteration on `frame` with the session's losses, exactly as
    `stylize_frame` runs them: the median of `repeat` after one untimed."""
    config, model = session.config, session.model
    content = io.to_tensor(frame).to(session.device)
    step = iteration_step(model, content, Targets(content_targets(model, content, config), session.grams), config)
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        float(step().detach())  # reads the loss back: the device has finished the iteration
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def time_network(session: Session, frames: list[np.ndarray], *, repeat: int) -> tuple[float, float]:
    """Seconds of one training step of the network engine on the first pair of `frames` (the first
    frame twice if there is one; its flow included), the median of `repeat` after one untimed; and
    of painting one frame of their size, from a batch of `train.BATCH` after one untimed, as the run
    paints (through torch.compile with `--compile`: the untimed batch compiles), with `carry` its
    flow from the frame before included."""
    pair = [frames[0], frames[min(1, len(frames) - 1)]]
    ends: list[float] = []  # seconds since training started, after each step
    network = train_network(session, pair, [0], steps=repeat + 1, emit=lambda event: ends.append(event.seconds))
    train_step = statistics.median(b - a for a, b in zip(ends, ends[1:]))
    bf16, compiled = uses_bf16(session.config, session.device), session.config.compile
    list(paint(network, pair[:1], session.device, bf16=bf16, compiled=compiled))
    start = time.perf_counter()
    # back on the CPU as arrays: the device has finished
    list(paint(network, pair[:1] * BATCH, session.device, bf16=bf16, compiled=compiled))
    painted = (time.perf_counter() - start) / BATCH
    if session.config.carry:  # each frame's flow from the one before, as `learned` carries it
        start = time.perf_counter()
        link_back(session.config.flow, pair[0], pair[1], session.device)
        painted += time.perf_counter() - start
    return train_step, painted
