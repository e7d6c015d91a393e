"""Progress events: what the library tells its caller while it runs, as small frozen dataclasses.

Only the CLI renders them; the library never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .optimize import IterationDone


@dataclass(frozen=True)
class RunStarted:
    n_frames: int | None  # None when the count is unknown
    width: int
    height: int
    device: str


@dataclass(frozen=True)
class FramesChecked:
    """Frames decoded so far by the check that runs before any work (`frames` command)."""

    done: int
    total: int


@dataclass(frozen=True)
class FrameStarted:
    index: int
    n_iters: int


@dataclass(frozen=True)
class FrameDone:
    index: int
    iterations: int
    seconds: float
    losses: dict[str, float]
    scene_cut: bool = False  # this frame restarted from the content after a shot change
    flow_seconds: float = 0.0  # optical flow, warping and the scene-cut test
    optimize_seconds: float = 0.0  # content features and the optimisation


@dataclass(frozen=True)
class TrainStep:
    """The network engine finished training step `step` of `total` (`train.train_network`)."""

    step: int
    total: int
    loss: float
    seconds: float  # since training started


@dataclass(frozen=True)
class TasksChanged:
    """A Ray run's tasks (shots or chunks of shots): running, submitted but waiting, not yet submitted."""

    running: int
    queued: int
    waiting: int  # planned, not yet submitted (backpressure)
    workers: int  # tasks the cluster can run at once


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the run (skipped files, audio handling)."""

    text: str
    key: str | None = None  # notices of one key are said once per run, even where several Ray tasks meet it


@dataclass(frozen=True)
class PreviewStarted:
    """A preview sheet starts stylizing `n_cells` cells at width x height (`preview.preview_sheet`)."""

    n_cells: int
    width: int
    height: int


@dataclass(frozen=True)
class CellDone:
    """A preview sheet's cell is stylized: `done` of `total`."""

    done: int
    total: int


Event = (RunStarted | FramesChecked | FrameStarted | IterationDone | FrameDone | TasksChanged | Notice | PreviewStarted
         | CellDone | TrainStep)
Callback = Callable[[Event], None]
