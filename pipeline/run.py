"""Orchestration: stylize an image, a frame folder or a video from start to finish.

The entry points check every input and output before any slow work starts, report progress through
one callback of small frozen dataclasses, and write each output under a temporary name first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import io
from .checkpoint import Checkpoint, Resume
from .config import Config
from .errors import DeviceError, InputError, Interrupted, OutputError
from .events import Callback, Event, FrameDone, FramesChecked, FrameStarted, IterationDone, Notice, RunStarted
from .notices import audio_notice, decoder_notices, folder_notices, streams_notice
from .passes import stylize_passes
from .sequence import Colors, check_frame_size, prepare_session, read_styles, select_device

__all__ = [
    "Callback", "Event", "FrameDone", "FramesChecked", "FrameStarted", "IterationDone", "Notice", "RunStarted", "Summary",
    "select_device", "stylize_array", "stylize_frames", "stylize_image", "stylize_video",
]


@dataclass(frozen=True)
class Summary:
    output: Path
    n_frames: int
    width: int
    height: int
    device: str
    seconds: float
    frames: list[FrameDone] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent in each stage; see _run
    tasks: list[dict] = field(default_factory=list)  # --ray: per task its frames, node, seconds, retries
    ray: dict = field(default_factory=dict)  # --ray: the driver's memory budget and peak, in bytes


def stylize_image(
    content: Path, styles: list[Path], output: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
) -> Summary:
    """Stylize one image and write it to `output`, in the format its suffix names.

    It runs at most `config.first_iterations` iterations per rung of its ladder (`sequence.ladder`:
    with coarse-to-fine, from about `coarse_side` up to the working size). Every output is checked
    before any work.
    """
    _check_output(output, overwrite=overwrite, inputs=[content, *styles])
    io.check_image_suffix(output)
    _check_stats(stats, inputs=[content, *styles], outputs=[output])
    select_device(config.device)
    frame = io.read_image(content, max_side=config.working_side)
    job = _Job(output, lambda _, image: io.write_image(output, image), n_frames=1)
    return _finish(_run([frame], styles, config, job, callback), stats, None, keep_frames=False)


def stylize_array(frame: np.ndarray, styles: list[Path], config: Config, *,
                  callback: Callback | None = None) -> tuple[np.ndarray, Summary]:
    """Stylize one uint8 (H, W, 3) RGB image in memory, as `stylize_image` does a file (used by the
    preview sheet for its cells). Returns the stylized uint8 (H, W, 3) image and the run's summary."""
    images: list[np.ndarray] = []
    job = _Job(Path("<in memory>"), lambda _, image: images.append(image), n_frames=1)
    summary = _run([frame], styles, config, job, callback)
    return images[0], summary


def stylize_frames(
    folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False,
) -> Summary:
    """Stylize an image sequence in natural order into `output_dir`, as PNGs named like the inputs.

    Every frame is decoded once before the model loads, so a damaged file fails the run in seconds.
    Finished frames collect in `<output_dir>.parts/` and move into `output_dir` only once all are
    done; `resume` continues an interrupted run. With `config.ray` the shots run as tasks on a Ray
    cluster (`cluster.stylize_frames_on_ray`).
    """
    if config.ray is not None:
        from .cluster import stylize_frames_on_ray

        return stylize_frames_on_ray(folder, styles, output_dir, config, overwrite=overwrite, stats=stats,
                                     callback=callback, resume=resume, keep_frames=keep_frames)
    emit = callback or (lambda event: None)
    every_path, skipped = io.list_frames(folder)
    paths, targets = _frame_targets(folder, every_path, output_dir, config)
    _check_stats(stats, inputs=[*paths, *styles], outputs=[output_dir])
    device = select_device(config.device)
    # The whole folder is recorded, so a resume may change --max-frames.
    checkpoint = Checkpoint(Checkpoint.beside(output_dir), _settings(config, [*every_path, *styles], device.type),
                            keep_images=True)
    checkpoint.check(resume=resume, overwrite=overwrite)
    resuming = resume and checkpoint.folder.exists()  # a run stopped while moving its frames into place
    _check_output_dir(output_dir, targets, overwrite=overwrite or resuming, input_dir=folder)
    resized = _check_frames(paths, styles, config, emit)

    notices = folder_notices(folder, skipped, resized)
    progress = checkpoint.start(resume=resume, overwrite=overwrite)
    notices += _device_notice(checkpoint, progress, device)
    # The frames are written by the checkpoint (its PNGs), and moved into place at the end.
    job = _Job(output_dir, lambda index, image: None, len(paths), checkpoint, progress, notices, replay_writes=False)
    summary = _run(io.read_frames(paths, max_side=config.working_side), styles, config, job, callback)
    with checkpoint.kept_on_interrupt(f"moving the finished frames into {output_dir}"):
        _collect(checkpoint, targets[: summary.n_frames], keep=keep_frames)
        return _finish(summary, stats, checkpoint, keep_frames=keep_frames)


def stylize_video(
    content: Path, styles: list[Path], output: Path | None, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False,
) -> Summary:
    """Stylize a video, keeping each frame's timestamp and the audio, in the format the output's
    suffix picks (`io.FORMATS`: .mp4 H.264, .mov ProRes 422 HQ, .mkv FFV1, .webm VP9).

    Finished frames are checkpointed in `<output>.parts/`; `resume` continues an interrupted run.
    With `config.ray` the shots run as tasks on a Ray cluster (`cluster.stylize_video_on_ray`).
    """
    if config.ray is not None:
        from .cluster import stylize_video_on_ray  # the only module that imports Ray, and only then

        return stylize_video_on_ray(content, styles, output, config, overwrite=overwrite, stats=stats,
                                    callback=callback, resume=resume, keep_frames=keep_frames)
    info = io.probe_video(content)
    output = output or io.default_output(content)
    _check_output(output, overwrite=overwrite, inputs=[content, *styles])
    chosen = io.output_format(output)
    _check_stats(stats, inputs=[content, *styles], outputs=[output])
    device = select_device(config.device)
    checkpoint = Checkpoint(Checkpoint.beside(output), _settings(config, [content, *styles], device.type), keep_images=True)
    checkpoint.check(resume=resume, overwrite=overwrite)
    width, height = io.fit_size(info.width, info.height, config.working_side, even=True)
    read_styles(config, styles, long_side=max(width, height))  # fail on a style before decoding
    n_frames = min(info.n_frames, config.max_frames or info.n_frames) if info.n_frames else config.max_frames
    frames = io.read_video(content, max_side=config.working_side, max_frames=config.max_frames)
    first = next(frames)  # decodes before the model loads, so a broken file fails fast
    pts = [first.pts]

    def images() -> Iterator[np.ndarray]:
        yield first.image
        for frame in frames:
            pts.append(frame.pts)
            yield frame.image

    progress = checkpoint.start(resume=resume, overwrite=overwrite)
    notices = streams_notice(content, info)
    notices += _device_notice(checkpoint, progress, device)
    with checkpoint.kept_on_interrupt(f"writing {output}"):
        with io.VideoWriter(output, width=width, height=height, time_base=first.time_base,
                            rate=info.average_rate, crf=config.crf, audio_from=content) as writer:
            job = _Job(output, lambda index, image: writer.write(image, pts[index]), n_frames, checkpoint, progress,
                       notices)
            summary = _run(images(), styles, config, job, callback)
        if callback is not None:
            callback(audio_notice(writer.audio_mode, info.audio_codec, chosen))
            for notice in decoder_notices(content, frames.error, frames.lost, summary.n_frames):
                callback(notice)
        return _finish(summary, stats, checkpoint, keep_frames=keep_frames)


def _frame_targets(folder: Path, every_path: list[Path], output_dir: Path, config: Config) -> tuple[list[Path], list[Path]]:
    """The frames of `folder` (`every_path`, natural order) to stylize, at most `max_frames`, and the
    PNG each becomes."""
    paths = every_path[: config.max_frames]
    targets = [output_dir / (path.stem + ".png") for path in paths]
    clashes = sorted({target.name for target in targets if targets.count(target) > 1})
    if clashes:
        raise InputError(f"{folder}: several frames would be written as {clashes[0]} (same name, other suffix)")
    return paths, targets


def _check_frames(paths: list[Path], styles: list[Path], config: Config, emit: Callback) -> list[Path]:
    """Decode every frame once (reporting `FramesChecked`), and the styles at the frames' size,
    before any work; returns the frames that will be resized to the first one's size."""
    frames = io.read_frames(paths, max_side=config.working_side)
    for done, frame in enumerate(frames, start=1):
        if done == 1:
            read_styles(config, styles, long_side=max(frame.shape[:2]))
        emit(FramesChecked(done, len(paths)))
    return frames.resized


def _device_notice(checkpoint: Checkpoint, progress: Resume, device: torch.device) -> list[Notice]:
    """A resumed run on another device than the interrupted one is allowed, and said."""
    if not progress.done:
        return []
    before = checkpoint.saved().get("device")
    if before in (None, "auto", device.type):  # "auto": a work folder from before the device was recorded
        return []
    return [Notice(f"note: the interrupted run used the {before} device and this one uses {device.type}; "
                   "the frames after the resume may differ slightly from an uninterrupted run")]


def _collect(checkpoint: Checkpoint, targets: list[Path], *, keep: bool) -> None:
    """Move (or with `keep`, copy) the finished frames from the work folder to their targets."""
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


@dataclass
class _Job:
    """Where an entry point's frames go, and how the run is kept if it stops."""

    output: Path
    write: Callable[[int, np.ndarray], None]  # (frame index, uint8 RGB image)
    n_frames: int | None  # None when unknown
    checkpoint: Checkpoint | None = None
    resume: Resume = field(default_factory=Resume)
    notices: list[Notice] = field(default_factory=list)
    replay_writes: bool = True  # a resume writes the checkpointed frames again (False: they stay there)


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
    # Seconds in each stage. decode and flow run in the prefetch thread (config.prefetch > 0), so
    # they may overlap the others and the sum can exceed the run's seconds. encode: writing the
    # output; checkpoint: saving the work folder.
    phases = dict.fromkeys(("decode", "flow", "optimize", "encode", "checkpoint"), 0.0)
    try:
        check_frame_size(config, width, height, name=job.output)
        session = prepare_session(config, styles, size=(height, width))
        if job.resume.rng is not None:
            torch.set_rng_state(job.resume.rng)  # after the seeding in prepare_session
        for notice in job.notices:
            emit(notice)
        # The frames bar counts every frame of every pass.
        emit(RunStarted(job.n_frames and job.n_frames * config.passes, width, height, str(session.device)))
        frames = _replay(_chain(first, frames), job, records, emit)
        del records[job.resume.done :]  # a resume with a lower --max-frames ends within the frames done
        colors = Colors(config.preserve_colors)
        frames = colors.frames(_timed(frames, phases, "decode"), start=job.resume.done)
        for step in stylize_passes(session, frames, emit, job.resume, job.checkpoint):
            image = colors.output(step.record.index, step.image)
            with _timer(phases, "encode"):
                job.write(step.record.index, image)
            records.append(step.record)
            if job.checkpoint is not None:
                with _timer(phases, "checkpoint"):
                    job.checkpoint.save(step.record.index, image, [asdict(record) for record in records], step.chain)
            emit(step.record)
    except BaseException as error:
        _stopped(job, len(records), _explain_out_of_memory(error, width, height, config))
    phases["flow"] = sum(record.flow_seconds for record in records)
    phases["optimize"] = sum(record.optimize_seconds for record in records)
    return Summary(job.output, len(records), width, height, str(session.device), time.perf_counter() - start,
                   records, phases)


@contextlib.contextmanager
def _timer(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] += time.perf_counter() - start


def _timed(items: Iterator[np.ndarray], phases: dict[str, float], name: str) -> Iterator[np.ndarray]:
    """`items`, adding the time each `next` takes to `phases[name]`."""
    while True:
        with _timer(phases, name):
            item = next(items, None)
        if item is None:
            return
        yield item


def _replay(frames: Iterator[np.ndarray], job: _Job, records: list[FrameDone], emit: Callback) -> Iterator[np.ndarray]:
    """Skip the frames a resumed run already finished, writing their checkpointed images again. A
    resume with a lower --max-frames than the frames done replays only those, and `job.resume.done`
    becomes their number."""
    if job.resume.done:
        emit(Notice(f"resuming after frame {job.resume.done} from {job.checkpoint.folder}"))
    for index in range(job.resume.done):
        if next(frames, None) is None:
            job.resume = dataclasses.replace(job.resume, done=index)
            break
        if job.checkpoint.keep_images and job.replay_writes:
            job.write(index, io.read_image(job.checkpoint.frame_path(index)))
        emit(records[index])
    return frames


def _stopped(job: _Job, finished: int, error: BaseException) -> None:
    """Turn Ctrl-C into `Interrupted` naming what was kept; drop a checkpoint holding nothing."""
    passes = job.checkpoint.passes_done() if job.checkpoint is not None else 0
    kept = job.checkpoint is not None and (finished > 0 or passes > 0)
    if job.checkpoint is not None and not kept:
        job.checkpoint.remove()
    if not isinstance(error, KeyboardInterrupt):
        raise error
    if kept:
        what = f"{finished} frame(s); they are" if finished else f"pass {passes} of a multi-pass run; it is"
        raise Interrupted(f"interrupted after {what} kept in {job.checkpoint.folder}, "
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
    """After the output is complete: drop the work folder, then write the stats (so a failure there
    leaves no work folder behind a complete output)."""
    if checkpoint is not None and not keep_frames:
        checkpoint.remove()
    if stats is not None:
        _write_stats(stats, summary)
    return summary


def _settings(config: Config, inputs: list[Path], device: str) -> dict:
    """What must match for a run to be resumed: the settings that shape frames, and the input files.
    The device actually used is recorded too, but not compared (see `checkpoint.NOT_COMPARED`). A Ray
    run records that it is one and how it cut the shots, not which cluster it ran on."""
    ignored = ("max_frames", "crf", "prefetch", "compile", "ray", "ray_cpus", "max_chunk_frames", "seam_frames")
    # Later passes run over every frame of the run, so a multi-pass run keeps its frame count.
    values = {k: v for k, v in asdict(config).items() if k not in ignored or (k == "max_frames" and config.passes > 1)}
    if config.ray is not None:
        values |= {"ray": True, "max_chunk_frames": config.max_chunk_frames, "seam_frames": config.seam_frames}
    values["device"] = device
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


def _check_stats(stats: Path | None, *, inputs: list[Path], outputs: list[Path]) -> None:
    """Refuse a --stats path that could not be written, before any work. It may go into an output
    folder the run creates (`frames -o out --stats out/stats.json`)."""
    if stats is None:
        return
    if any(stats.resolve() == Path(path).resolve() for path in [*inputs, *outputs]):
        raise OutputError(f"{stats}: --stats would overwrite an input or the output; choose another name")
    if stats.is_dir():
        raise OutputError(f"{stats}: --stats is a folder, expected a file name")
    folder = stats.parent if str(stats.parent) else Path(".")
    created = [output for output in outputs if output.resolve() == folder.resolve() and not output.exists()]
    _check_folder(created[0].parent if created else folder)


def _write_stats(path: Path, summary: Summary) -> None:
    """Write the run's statistics as JSON, atomically."""
    data = {
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
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None
        raise
