"""Orchestration: stylize an image, a frame folder or a video from start to finish.

The entry points check every input and output before any slow work starts, report progress through
one callback of small frozen dataclasses, and write each output under a temporary name first.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import flow, io
from .config import Config, Device, Flow, Init
from .checkpoint import Checkpoint, Resume
from .errors import ConfigError, DeviceError, InputError, Interrupted, OutputError
from .model import LAYER_NAMES, VGG19, load_vgg19
from .optimize import IterationDone, Targets, content_targets, style_grams, stylize_frame


@dataclass(frozen=True)
class RunStarted:
    n_frames: int | None  # None when the count is unknown
    width: int
    height: int
    device: str


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


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the run (skipped files, audio handling)."""

    text: str


Event = RunStarted | FrameStarted | IterationDone | FrameDone | Notice
Callback = Callable[[Event], None]


@dataclass(frozen=True)
class Summary:
    output: Path
    n_frames: int
    width: int
    height: int
    device: str
    seconds: float
    frames: list[FrameDone] = field(default_factory=list)


@dataclass(frozen=True)
class _Session:
    """What a run computes once: the device, the truncated VGG and the style Grams."""

    config: Config
    device: torch.device
    model: VGG19
    grams: dict[str, torch.Tensor]


def select_device(choice: Device | str) -> torch.device:
    """CUDA, then MPS, then CPU for "auto"; raises InputError if a named device is missing."""
    choice = Device(choice)
    if choice == Device.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        Device.cuda: torch.cuda.is_available(),
        Device.mps: torch.backends.mps.is_available(),
        Device.cpu: True,
    }
    if not available[choice]:
        raise InputError(f"--device {choice.value}: no such device on this machine")
    return torch.device(choice.value)


def stylize_image(
    content: Path, styles: list[Path], output: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
) -> Summary:
    """Stylize one image with `config.first_iterations` iterations and write it to `output`."""
    _check_output(output, overwrite=overwrite, inputs=[content, *styles])
    frame = io.read_image(content, max_side=config.max_side)
    job = _Job(output, lambda _, image: io.write_image(output, image), n_frames=1)
    return _finish(_run([frame], styles, config, job, callback), stats, None, keep_frames=False)


def stylize_frames(
    folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False,
) -> Summary:
    """Stylize an image sequence in natural order into `output_dir`, as PNGs named like the inputs.

    Progress is checkpointed in `<output_dir>.parts/`; `resume` continues an interrupted run.
    """
    paths, skipped = io.list_frames(folder)
    paths = paths[: config.max_frames]
    targets = [output_dir / (path.stem + ".png") for path in paths]
    clashes = sorted({target.name for target in targets if targets.count(target) > 1})
    if clashes:
        raise InputError(f"{folder}: several frames would be written as {clashes[0]} (same name, other suffix)")
    checkpoint = Checkpoint(Checkpoint.beside(output_dir), _settings(config, [*paths, *styles]), keep_images=False)
    checkpoint.check(resume=resume, overwrite=overwrite)
    resuming = resume and checkpoint.folder.exists()
    _check_output_dir(output_dir, targets, overwrite=overwrite or resuming, input_dir=folder)
    frames = io.read_frames(paths, max_side=config.max_side)

    def write(index: int, image: np.ndarray) -> None:
        output_dir.mkdir(exist_ok=True)  # only once there is something to put in it
        io.write_image(targets[index], image)

    notices = [Notice(f"skipped {len(skipped)} non-image file(s) in {folder}: "
                      + ", ".join(p.name for p in skipped[:5]))] if skipped else []
    job = _Job(output_dir, write, len(paths), checkpoint, checkpoint.start(resume=resume, overwrite=overwrite), notices)
    summary = _run(frames, styles, config, job, callback)
    if frames.resized and callback is not None:
        callback(Notice(f"warning: {len(frames.resized)} frame(s) differ in size from the first and were "
                        f"resized to match: {', '.join(p.name for p in frames.resized[:5])}"))
    return _finish(summary, stats, checkpoint, keep_frames=keep_frames)


def stylize_video(
    content: Path, styles: list[Path], output: Path | None, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False,
) -> Summary:
    """Stylize a video into an H.264 MP4, keeping each frame's timestamp and the audio.

    Finished frames are checkpointed in `<output>.parts/`; `resume` continues an interrupted run.
    """
    info = io.probe_video(content)
    output = output or io.default_output(content)
    _check_output(output, overwrite=overwrite, inputs=[content, *styles])
    checkpoint = Checkpoint(Checkpoint.beside(output), _settings(config, [content, *styles]), keep_images=True)
    checkpoint.check(resume=resume, overwrite=overwrite)
    width, height = io.fit_size(info.width, info.height, config.max_side, even=True)
    n_frames = min(info.n_frames, config.max_frames or info.n_frames) if info.n_frames else config.max_frames
    frames = io.read_video(content, max_side=config.max_side, max_frames=config.max_frames)
    first = next(frames)  # decodes before the model loads, so a broken file fails fast
    pts = [first.pts]

    def images() -> Iterator[np.ndarray]:
        yield first.image
        for frame in frames:
            pts.append(frame.pts)
            yield frame.image

    progress = checkpoint.start(resume=resume, overwrite=overwrite)
    with io.VideoWriter(output, width=width, height=height, time_base=first.time_base,
                        rate=info.average_rate, crf=config.crf, audio_from=content) as writer:
        job = _Job(output, lambda index, image: writer.write(image, pts[index]), n_frames, checkpoint, progress)
        summary = _run(images(), styles, config, job, callback)
    if callback is not None:
        callback(Notice(_audio_notice(writer.audio_mode, info.audio_codec)))
        if frames.error:
            callback(Notice(f"warning: {frames.error}; {summary.n_frames} frame(s) were stylized"))
    return _finish(summary, stats, checkpoint, keep_frames=keep_frames)


def _audio_notice(mode: str, codec: str | None) -> str:
    return {
        "copied": f"audio: {codec} stream copied without re-encoding",
        "transcoded": f"audio: {codec} cannot be stored in MP4, transcoded to AAC",
    }.get(mode, "audio: the input has no audio stream")


@dataclass
class _Job:
    """Where an entry point's frames go, and how the run is kept if it stops."""

    output: Path
    write: Callable[[int, np.ndarray], None]  # (frame index, uint8 RGB image)
    n_frames: int | None  # None when unknown
    checkpoint: Checkpoint | None = None
    resume: Resume = field(default_factory=Resume)
    notices: list[Notice] = field(default_factory=list)


def _run(frames: Iterable[np.ndarray], styles: list[Path], config: Config, job: _Job, callback: Callback | None) -> Summary:
    """Shared body of the entry points: prepare once, replay checkpointed frames, stylize the rest."""
    emit = callback or (lambda event: None)
    start = time.perf_counter()
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise InputError(f"{job.output}: no frames to stylize")
    height, width = first.shape[:2]
    records = [FrameDone(**record) for record in job.resume.records]
    try:
        session = _prepare(config, styles, long_side=max(height, width))
        for notice in job.notices:
            emit(notice)
        emit(RunStarted(job.n_frames, width, height, str(session.device)))
        frames = _replay(_chain(first, frames), job, records, emit)
        for step in _stylize_sequence(session, frames, emit, job.resume):
            job.write(step.record.index, step.image)
            records.append(step.record)
            if job.checkpoint is not None:
                job.checkpoint.save(step.record.index, step.image, step.stylized, step.frame,
                                    [asdict(record) for record in records])
            emit(step.record)
    except BaseException as error:
        _stopped(job, len(records), _explain_out_of_memory(error, width, height, config))
    return Summary(job.output, len(records), width, height, str(session.device), time.perf_counter() - start, records)


def _replay(frames: Iterator[np.ndarray], job: _Job, records: list[FrameDone], emit: Callback) -> Iterator[np.ndarray]:
    """Skip the frames a resumed run already finished, writing their checkpointed images again."""
    if job.resume.done:
        emit(Notice(f"resuming after frame {job.resume.done} from {job.checkpoint.folder}"))
    for index in range(job.resume.done):
        next(frames, None)
        if job.checkpoint.keep_images:
            job.write(index, io.read_image(job.checkpoint.frame_path(index)))
        emit(records[index])
    return frames


def _stopped(job: _Job, finished: int, error: BaseException) -> None:
    """Turn Ctrl-C into `Interrupted` naming what was kept; drop a checkpoint holding nothing."""
    kept = job.checkpoint is not None and finished > 0
    if job.checkpoint is not None and not kept:
        job.checkpoint.remove()
    if not isinstance(error, KeyboardInterrupt):
        raise error
    if kept:
        raise Interrupted(f"interrupted after {finished} frame(s); they are kept in {job.checkpoint.folder}, "
                          "run the same command with --resume to continue") from None
    raise Interrupted(f"interrupted before the first frame was finished; nothing was written to {job.output}") from None


def _explain_out_of_memory(error: BaseException, width: int, height: int, config: Config) -> BaseException:
    """A device out-of-memory error becomes a DeviceError naming the size and a smaller --max-side."""
    if not (isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()):
        return error
    smaller = max(16, max(width, height) * 2 // 3)
    return DeviceError(f"out of memory on {config.device.value} device while stylizing at {width}x{height}; "
                       f"try a smaller --max-side, e.g. --max-side {smaller}")


def _finish(summary: Summary, stats: Path | None, checkpoint: Checkpoint | None, *, keep_frames: bool) -> Summary:
    """After the output is complete: write the stats and drop the work folder."""
    if stats is not None:
        _write_stats(stats, summary)
    if checkpoint is not None and not keep_frames:
        checkpoint.remove()
    return summary


def _settings(config: Config, inputs: list[Path]) -> dict:
    """What must match for a run to be resumed: the settings that shape frames, and the input files."""
    values = {k: v for k, v in asdict(config).items() if k not in ("max_frames", "crf")}
    files = {f"input file {path}": _file_identity(path) for path in inputs}
    return json.loads(json.dumps(values | files))  # as JSON would give it back: tuples become lists


def _file_identity(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None  # reading it will fail with a clear error
    return [status.st_size, status.st_mtime_ns]


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _prepare(config: Config, styles: list[Path], *, long_side: int) -> _Session:
    """Pick the device, load the VGG truncated at the deepest layer used, and compute style Grams."""
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    images = [io.read_image(path, max_side=max(16, round(long_side * config.style_scale))) for path in styles]
    layers = (config.content_layer, *config.style_layers)
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise ConfigError(f"unknown VGG-19 layer(s) {', '.join(unknown)}; known: {', '.join(LAYER_NAMES)}")
    deepest = max(layers, key=LAYER_NAMES.index)
    weights = Path(config.weights) if config.weights else None
    model = load_vgg19(last_layer=deepest, pooling=config.pooling.value, weights=weights).to(device)
    grams = style_grams(model, [io.to_tensor(image).to(device) for image in images], config.style_blend, config)
    return _Session(config, device, model, grams)


@dataclass(frozen=True)
class _Step:
    """One finished frame: the image to write, the full-precision result, its content, its record."""

    image: np.ndarray
    stylized: torch.Tensor
    frame: np.ndarray
    record: FrameDone


def _stylize_sequence(session: _Session, frames: Iterable[np.ndarray], emit: Callback, resume: Resume) -> Iterator[_Step]:
    """Stylize frames in order; each frame after the first starts from the previous result.

    Ruder et al. 2016: the previous stylized frame, warped along the content's flow, is both the
    starting point and the target of the temporal loss outside occlusions. A scene cut restarts
    the chain from the content, as the first frame of a sequence does. `resume` continues a chain.
    """
    config, model = session.config, session.model
    previous_frame = resume.frame
    previous = None if resume.stylized is None else resume.stylized.to(session.device)
    for index, frame in enumerate(frames, start=resume.done):
        start = time.perf_counter()
        content = io.to_tensor(frame).to(session.device)
        link = None if previous is None else _link(config, previous_frame, frame, previous)
        cut = link is not None and link.cut
        if cut:
            emit(Notice(f"frame {index + 1}: scene cut ({link.unlinked:.0%} of pixels unlinked), restarting from the content"))
        chained = link is not None and not cut
        targets = Targets(content_targets(model, content, config), session.grams,
                          warped=link.warped if chained and config.temporal_weight > 0 else None,
                          mask=link.mask if chained else None)
        init = _initial_image(config.init, content, previous if chained else None, link)
        n_iters = config.iterations if chained else config.first_iterations
        emit(FrameStarted(index, n_iters))
        result = stylize_frame(model, init, targets, config=config, n_iters=n_iters, callback=emit)
        previous, previous_frame = result.image, frame
        record = FrameDone(index, result.iterations, time.perf_counter() - start, result.losses, cut)
        yield _Step(io.to_array(result.image), result.image, frame, record)


@dataclass(frozen=True)
class _Link:
    """How frame t relates to frame t-1: the warped previous result, its mask, and whether it is a cut."""

    warped: torch.Tensor  # (1, 3, H, W) previous stylized frame in frame t's geometry
    mask: torch.Tensor  # (1, 1, H, W) 1 where the flow is trusted
    unlinked: float  # share of pixels the flow cannot explain
    cut: bool


def _link(config: Config, previous_frame: np.ndarray, frame: np.ndarray, previous_stylized: torch.Tensor) -> _Link:
    """Flow from the content frames (forward and backward), occlusion mask and scene-cut test."""
    device = previous_stylized.device
    if config.flow == Flow.none:
        backward = torch.zeros((1, 2, *frame.shape[:2]), device=device)
        mask = torch.ones((1, 1, *frame.shape[:2]), device=device)
    else:
        forward = flow.optical_flow(previous_frame, frame, method=config.flow).to(device)
        backward = flow.optical_flow(frame, previous_frame, method=config.flow).to(device)
        mask = flow.occlusion_mask(forward, backward)
    unlinked = flow.unlinked_fraction(io.to_tensor(previous_frame).to(device), io.to_tensor(frame).to(device), backward, mask)
    return _Link(flow.warp(previous_stylized, backward), mask, unlinked, unlinked > config.cut_threshold)


def _initial_image(init: Init, content: torch.Tensor, previous: torch.Tensor | None, link: _Link | None) -> torch.Tensor:
    """Where a frame's optimisation starts (Ruder et al. 2016, section 3.1); the content if no previous."""
    if previous is None or init == Init.content:
        return content
    if init == Init.random:
        return torch.rand(content.shape).to(content.device)  # drawn on the CPU, so seeded runs match across devices
    if init == Init.prev:
        return previous
    return link.warped


def _check_output(output: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    """Refuse an output that exists (without overwrite), is an input, or sits in an unwritable folder."""
    if any(output.resolve() == Path(path).resolve() for path in inputs):
        raise OutputError(f"{output}: is also an input; choose another output name")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder, expected a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: already exists (use --overwrite to replace it)")
    _check_folder(output.parent if str(output.parent) else Path("."))


def _check_output_dir(output_dir: Path, targets: list[Path], *, overwrite: bool, input_dir: Path) -> None:
    if output_dir.resolve() == input_dir.resolve():
        raise OutputError(f"{output_dir}: is the input folder; choose another output folder")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: exists and is not a folder")
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists (use --overwrite to replace it)")
    _check_folder(output_dir if output_dir.exists() else output_dir.parent)


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")


def _write_stats(path: Path, summary: Summary) -> None:
    """Write the run's statistics as JSON, atomically."""
    data = {
        "output": str(summary.output),
        "device": summary.device,
        "width": summary.width,
        "height": summary.height,
        "n_frames": summary.n_frames,
        "seconds": round(summary.seconds, 3),
        "frames": [asdict(frame) for frame in summary.frames],
    }
    _atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    try:
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
