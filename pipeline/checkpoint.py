"""Checkpoints of long runs, so an interrupted run loses at most the frame it was on.

A work folder beside the output (`clip.stylized.mp4.parts/`) holds the run's settings, each finished
frame as a lossless PNG (for video, whose container cannot be appended to), and `state.pt`: how many
frames are done, the last stylized frame at full precision and its content frame (so the temporal
chain continues exactly), the random state, and the per-frame records for `--stats`.
PNG first, state second: the state never counts a frame whose image is not on disk.
A network engine run (`--engine network`) keeps `training.pt` as well: its network's, Adam's and the
sampling generator's state after the last saved training step (and, with `--refine`, the frames).

The resume contract (`run_settings`) is the same for the local and the Ray path: what must match for
a work folder to be continued.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .config import Config, Engine
from .errors import ConfigError, Interrupted, OutputError

SETTINGS = "settings.json"
STATE = "state.pt"
PASS = "pass.pt"
TRAINING = "training.pt"  # the network engine's training state
# Recorded but not compared: a resume may run on another device (it is told so, see `saved`).
NOT_COMPARED = ("device",)


@dataclass
class Resume:
    """What a resumed run starts from; `done == 0` for a fresh run."""

    done: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    rng: torch.Tensor | None = None  # torch's CPU random state after the last finished frame
    chain: dict[str, Any] | None = None  # the temporal chain after that frame (`sequence.Chain.state`)


class Checkpoint:
    """The work folder of one run: `start` it before any work, `save` after every frame."""

    def __init__(self, folder: Path, settings: dict[str, Any], *, keep_images: bool) -> None:
        self.folder = folder
        self.settings = settings
        self.keep_images = keep_images  # video: store frames; frames: the outputs already are PNGs

    @staticmethod
    def beside(output: Path) -> Path:
        return output.with_name(output.name + ".parts")

    @classmethod
    def for_run(cls, output: Path, config: Config, inputs: list[Path], *, device: str) -> Checkpoint:
        """The work folder of a run writing `output` (`<output>.parts/`, keeping every finished
        frame's image), with the run's resume contract (`run_settings`)."""
        return cls(cls.beside(output), run_settings(config, inputs, device), keep_images=True)

    def check(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse to start before any work: OutputError if a checkpoint exists and neither `resume`
        nor `overwrite` is set, ConfigError if resuming with other settings."""
        if self.folder.exists() and not resume and not overwrite:
            raise OutputError(f"{self.folder}: an interrupted run left its work here; "
                              "add --resume to continue it, or --overwrite to start again")
        if resume and self.folder.exists():
            self._check_settings()  # every kind of work folder: local frames, passes, Ray tasks

    def start(self, *, resume: bool, overwrite: bool) -> Resume:
        """Create the folder, or load it when resuming (after `check`)."""
        self.check(resume=resume, overwrite=overwrite)
        if self.folder.exists() and not resume:
            shutil.rmtree(self.folder)
        if (self.folder / STATE).exists():
            return self._load()
        if resume and (self.folder / SETTINGS).exists():
            return Resume()  # a Ray run's folder, or a multi-pass run's: their own files say what is done
        try:
            self.folder.mkdir(exist_ok=True)
            _atomic_bytes(self.folder / SETTINGS, json.dumps(self.settings, indent=2).encode())
        except OSError as error:
            raise OutputError(f"{self.folder}: cannot create the work folder ({error.strerror})") from None
        return Resume()

    def save(self, index: int, image: np.ndarray, records: list[dict[str, Any]], chain: dict[str, Any]) -> None:
        """Record frame `index` as finished; `chain` is what the next frame needs (tensors on the CPU)."""
        if self.keep_images:
            io.write_image(self.frame_path(index), image)
        state = {"done": index + 1, "chain": chain, "rng": torch.get_rng_state(), "records": records}
        temp = self.folder / (STATE + ".tmp")
        torch.save(state, temp)
        os.replace(temp, self.folder / STATE)

    def save_pass(self, state: dict[str, Any]) -> None:
        """Keep the results of a finished pass (multi-pass runs): its number, every frame's result
        at full precision (N, 3, H, W) and the per-frame records."""
        temp = self.folder / (PASS + ".tmp")
        torch.save(state, temp)
        os.replace(temp, self.folder / PASS)

    def load_pass(self) -> dict[str, Any] | None:
        """The last finished pass of an interrupted multi-pass run, or None. Memory-mapped: its
        results are read from disk only as they are used (`passes_done` reads just the number)."""
        path = self.folder / PASS
        return torch.load(path, weights_only=True, mmap=True) if path.exists() else None

    def passes_done(self) -> int:
        """How many passes of a multi-pass run are saved (0 if none)."""
        stored = self.load_pass()
        return 0 if stored is None else stored["pass"]

    @contextlib.contextmanager
    def kept_on_interrupt(self, doing: str) -> Iterator[None]:
        """Ctrl-C inside (outside the frames' own work, which says more) becomes one `Interrupted`
        saying the run was stopped while `doing` ("writing clip.mp4") and that the work folder, if
        there is one, is kept for --resume."""
        try:
            yield
        except KeyboardInterrupt:
            raise self.interrupted(doing, "the finished frames are" if self.folder.exists() else None) from None

    def interrupted(self, doing: str, kept: str | None) -> Interrupted:
        """The one line Ctrl-C ends a run with: it stopped while `doing`, and `kept` ("the finished
        frames are") is kept in the work folder for --resume, or nothing was (`kept` None)."""
        if kept is None:
            return Interrupted(f"interrupted while {doing}; nothing was kept")
        return Interrupted(f"interrupted while {doing}; {kept} kept in {self.folder}, "
                           "run the same command with --resume to finish")

    def save_training(self, state: dict[str, Any]) -> None:
        """Keep the network engine's training state (`train.TrainState` as a dict of tensors and
        plain values), replacing the last: an interrupt while writing leaves the last one whole."""
        temp = self.folder / (TRAINING + ".tmp")
        torch.save(state, temp)
        os.replace(temp, self.folder / TRAINING)

    def load_training(self) -> dict[str, Any] | None:
        """The training state an interrupted network run kept, on the CPU, or None. Tensors and
        plain values only (`weights_only`): loading it runs no code."""
        path = self.folder / TRAINING
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def frame_path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.png"

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def saved(self) -> dict[str, Any]:
        """The settings the interrupted run recorded."""
        try:
            return json.loads((self.folder / SETTINGS).read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{self.folder}: the checkpoint's {SETTINGS} is unreadable; "
                              "use --overwrite to start again") from None

    def _check_settings(self) -> None:
        saved = self.saved()
        if saved.get("ray", False) != self.settings.get("ray", False):
            before, now = ("--ray", "a local run") if saved.get("ray") else ("a local run", "--ray")
            raise ConfigError(f"{self.folder}: was left by {before}, and cannot be resumed by {now}; "
                              f"resume it as it was started, or use --overwrite to start again")
        differ = sorted(key for key in saved.keys() | self.settings.keys()
                        if key not in NOT_COMPARED and saved.get(key) != self.settings.get(key))
        if differ:
            raise ConfigError(f"{self.folder}: cannot resume with other settings ({', '.join(differ)} differ); "
                              "use the same options, or --overwrite to start again")

    def _load(self) -> Resume:
        state = torch.load(self.folder / STATE, weights_only=True)
        return Resume(state["done"], state["records"], state["rng"], state["chain"])


def run_settings(config: Config, inputs: list[Path], device: str) -> dict[str, Any]:
    """What must match for a run to be resumed: the settings that shape frames, and the input files
    (their size and modification time). The `device` actually used is recorded too, but not
    compared (see `NOT_COMPARED`). A Ray run (`device` "ray") records that it is one and how it cut
    the shots, not which cluster it ran on. Returned as JSON would give it back (tuples as lists)."""
    ignored = ("max_frames", "crf", "prefetch", "compile", "ray", "ray_cpus", "max_chunk_frames", "seam_frames")
    # Later passes run over every frame of the run, and the network engine trains on every frame,
    # so a multi-pass or network run keeps its frame count.
    keeps_count = config.passes > 1 or config.engine == Engine.network
    values = {k: v for k, v in asdict(config).items() if k not in ignored or (k == "max_frames" and keeps_count)}
    if config.ray is not None:
        values |= {"ray": True, "max_chunk_frames": config.max_chunk_frames, "seam_frames": config.seam_frames}
    values["device"] = device
    files = {f"input file {path}": file_identity(path) for path in inputs}
    return json.loads(json.dumps(values | files))


def file_identity(path: Path) -> list[int] | None:
    """[size in bytes, modification time in ns] of `path`, or None if it cannot be read (reading it
    later fails with a clear error)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _atomic_bytes(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
