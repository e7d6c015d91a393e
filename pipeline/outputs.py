"""What a finished run leaves behind, for the local and the Ray path alike: the `Summary`, the
`--stats` JSON, and the finished frames moved from the work folder into the output folder.

Everything here runs after the work: `finish` drops the work folder first and writes the stats
second, so a failure there leaves no work folder behind a complete output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, io
from .checkpoint import Checkpoint
from .errors import OutputError
from .events import FrameDone

__all__ = ["Summary", "collect_frames", "finish", "write_stats"]


@dataclass(frozen=True)
class Summary:
    """What a run did: its output, size, device and time, and per frame its record (`--stats`)."""

    output: Path
    n_frames: int
    width: int
    height: int
    device: str
    seconds: float
    frames: list[FrameDone] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds in each stage (decode, optimize...; --ray: plan)
    tasks: list[dict] = field(default_factory=list)  # --ray: per task its frames, node, seconds, retries
    ray: dict = field(default_factory=dict)  # --ray: the driver's memory budget and peak, in bytes
    train: dict = field(default_factory=dict)  # --engine network: training steps and seconds
    model: Path | None = None  # --model: the model file that painted the frames, untrained


def finish(summary: Summary, stats: Path | None, checkpoint: Checkpoint | None, *, keep_frames: bool) -> Summary:
    """After the output is complete: drop the work folder (unless `keep_frames`), then write the
    stats to `stats` (so a failure there leaves no work folder behind a complete output).

    Raises:
        OutputError: the stats file cannot be written.
    """
    if checkpoint is not None and not keep_frames:
        checkpoint.remove()
    if stats is not None:
        write_stats(stats, summary)
    return summary


def write_stats(path: Path, summary: Summary) -> None:
    """Write the run's statistics as JSON, atomically, with the version of stylereel that ran it.

    Raises:
        OutputError: `path` cannot be written (nothing is left behind).
    """
    data = {
        "version": __version__,
        "output": str(summary.output),
        "device": summary.device,
        "width": summary.width,
        "height": summary.height,
        "n_frames": summary.n_frames,
        "seconds": round(summary.seconds, 3),
        "phase_seconds": {name: round(value, 3) for name, value in summary.phases.items()},
        "frames": [asdict(frame) for frame in summary.frames],
    }
    if summary.tasks:
        data["tasks"] = summary.tasks
    if summary.ray:
        data["ray"] = summary.ray
    if summary.train:
        data["train"] = {"steps": summary.train["steps"], "seconds": round(summary.train["seconds"], 3)}
    if summary.model is not None:
        data["model"] = str(summary.model)
    _atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def collect_frames(checkpoint: Checkpoint, targets: list[Path], *, keep: bool) -> None:
    """Move (or with `keep`, copy) the finished frames from the work folder to their `targets`, in
    order; a frame already moved by a run stopped while collecting is skipped.

    Raises:
        OutputError: a frame cannot be moved; the rest stay in the work folder.
    """
    if not targets:
        return
    try:
        targets[0].parent.mkdir(exist_ok=True)
        for index, target in enumerate(targets):
            source = checkpoint.frame_path(index)
            if not source.exists() and target.exists():
                continue  # moved by a run stopped while collecting
            if keep:
                temp = io.temp_beside(target)
                shutil.copyfile(source, temp)
                source = temp
            os.replace(source, target)
    except OSError as error:
        raise OutputError(f"{targets[0].parent}: cannot move the finished frames there "
                          f"({error.strerror or error}); they are kept in {checkpoint.folder}") from None


def _atomic_write_text(path: Path, text: str) -> None:
    try:
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None
        raise
