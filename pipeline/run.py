"""Orchestration: stylize an image, a frame folder or a video from start to finish.

The entry points check every input and output before any slow work starts (`preflight`), report
progress through one callback of small frozen dataclasses, and write each output under a temporary
name first (`outputs`: the summary, --stats, the finished frames). With `config.ray` they hand the
run to `cluster`, imported only then; `cluster` never imports this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import io, learned, outputs, preflight
from .checkpoint import Checkpoint, Resume
from .config import Config, Engine
from .errors import DeviceError, InputError, Interrupted
from .estimates import long_run_notices
from .events import Callback, Event, FrameDone, FramesChecked, FrameStarted, IterationDone, Notice, RunStarted
from .notices import audio_notice, decoder_notices, folder_notices, streams_notice
from .outputs import Summary
from .passes import stylize_passes
from .sequence import Colors, check_frame_size, prepare_session, read_styles, select_device

__all__ = [
    "Callback", "Event", "FrameDone", "FramesChecked", "FrameStarted", "IterationDone", "Notice", "RunStarted", "Summary",
    "select_device", "stylize_array", "stylize_frames", "stylize_image", "stylize_video",
]


def stylize_image(
    content: Path, styles: list[Path], output: Path, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None, model: Path | None = None,
) -> Summary:
    """Stylize one image and write it to `output`, in the format its suffix names.

    It runs at most `config.first_iterations` iterations per rung of its ladder (`sequence.ladder`:
    with coarse-to-fine, from about `coarse_side` up to the working size); with `model`, that model
    file's network paints it instead (`learned.use_model`). Every output is checked before any work.
    """
    if model is not None:
        return learned.stylize_image_with_model(content, styles, output, config, model=model, overwrite=overwrite,
                                                stats=stats, callback=callback)
    preflight.check_output(output, overwrite=overwrite, inputs=[content, *styles])
    io.check_image_suffix(output)
    preflight.check_stats(stats, inputs=[content, *styles], outputs=[output])
    select_device(config.device)
    frame = io.read_image(content, max_side=config.working_side)
    job = _Job(output, lambda _, image: io.write_image(output, image), n_frames=1)
    return outputs.finish(_run([frame], styles, config, job, callback), stats, None, keep_frames=False)


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
    resume: bool = False, keep_frames: bool = False, model: Path | None = None,
) -> Summary:
    """Stylize an image sequence in natural order into `output_dir`, as PNGs named like the inputs.

    Every frame is decoded once before the model loads, so a damaged file fails the run in seconds.
    Finished frames collect in `<output_dir>.parts/` and move into `output_dir` only once all are
    done; `resume` continues an interrupted run. With `config.ray` the shots run as tasks on a Ray
    cluster (`cluster.stylize_frames_on_ray`). `model` (a model file) implies the network engine.
    """
    network = config.engine == Engine.network or model is not None
    if network:
        learned.check_engine(config, resume=resume, model=model)
    if config.ray is not None:
        from .cluster import stylize_frames_on_ray

        return stylize_frames_on_ray(folder, styles, output_dir, config, overwrite=overwrite, stats=stats,
                                     callback=callback, resume=resume, keep_frames=keep_frames, model=model)
    if network:
        return learned.stylize_frames_with_network(folder, styles, output_dir, config, overwrite=overwrite,
                                                   stats=stats, callback=callback, model=model, resume=resume)
    checked = preflight.check_frame_folder(folder, styles, output_dir, config, stats=stats)
    device = select_device(config.device)
    # The whole folder is recorded, so a resume may change --max-frames.
    checkpoint = Checkpoint.for_run(output_dir, config, [*checked.every_path, *styles], device=device.type)
    resized = preflight.check_folder_output(checked, folder, output_dir, checkpoint, styles, config,
                                            callback or (lambda event: None), resume=resume, overwrite=overwrite)

    notices = folder_notices(folder, checked.skipped, resized)
    progress = checkpoint.start(resume=resume, overwrite=overwrite)
    notices += _device_notice(checkpoint, progress, device)
    # The frames are written by the checkpoint (its PNGs), and moved into place at the end.
    job = _Job(output_dir, lambda index, image: None, len(checked.paths), checkpoint, progress, notices,
               replay_writes=False, says_time=not resume)
    summary = _run(io.read_frames(checked.paths, max_side=config.working_side), styles, config, job, callback)
    with checkpoint.kept_on_interrupt(f"moving the finished frames into {output_dir}"):
        outputs.collect_frames(checkpoint, checked.targets[: summary.n_frames], keep=keep_frames)
        return outputs.finish(summary, stats, checkpoint, keep_frames=keep_frames)


def stylize_video(
    content: Path, styles: list[Path], output: Path | None, config: Config, *,
    overwrite: bool = False, stats: Path | None = None, callback: Callback | None = None,
    resume: bool = False, keep_frames: bool = False, model: Path | None = None,
) -> Summary:
    """Stylize a video, keeping each frame's timestamp and the audio, in the format the output's
    suffix picks (`io.FORMATS`: .mp4 H.264, .mov ProRes 422 HQ, .mkv FFV1, .webm VP9).

    Finished frames are checkpointed in `<output>.parts/`; `resume` continues an interrupted run.
    With `config.ray` the shots run as tasks on a Ray cluster (`cluster.stylize_video_on_ray`).
    `model` (a model file, `learned.use_model`) implies the network engine, and paints untrained.
    """
    network = config.engine == Engine.network or model is not None
    if network:
        learned.check_engine(config, resume=resume, model=model)
    if config.ray is not None:
        from .cluster import stylize_video_on_ray  # the only module that imports Ray, and only then

        return stylize_video_on_ray(content, styles, output, config, overwrite=overwrite, stats=stats,
                                    callback=callback, resume=resume, keep_frames=keep_frames, model=model)
    if network:
        return learned.stylize_video_with_network(content, styles, output, config, overwrite=overwrite, stats=stats,
                                                  callback=callback, model=model, resume=resume)
    # Check everything, then decode the first frame before the model loads: a broken file fails fast.
    checked = preflight.check_video(content, styles, output, config, overwrite=overwrite, stats=stats)
    device = select_device(config.device)
    checkpoint = Checkpoint.for_run(checked.output, config, [content, *styles], device=device.type)
    checkpoint.check(resume=resume, overwrite=overwrite)
    read_styles(config, styles, long_side=max(checked.width, checked.height))  # fail on a style before decoding
    frames = io.read_video(content, max_side=config.working_side, max_frames=config.max_frames)
    first, pts = next(frames), []

    # Stylize and encode, keeping each frame's timestamp; then say what became of the audio and the decoder.
    progress = checkpoint.start(resume=resume, overwrite=overwrite)
    notices = streams_notice(content, checked.info) + _device_notice(checkpoint, progress, device)
    with checkpoint.kept_on_interrupt(f"writing {checked.output}"):
        with _video_writer(checked, first, config) as writer:
            job = _Job(checked.output, lambda index, image: writer.write(image, pts[index]),
                       _video_frames(checked.info, config), checkpoint, progress, notices, says_time=not resume)
            summary = _run(_with_pts(first, frames, pts), styles, config, job, callback)
        for notice in [audio_notice(writer.audio_mode, checked.info.audio_codec, checked.chosen),
                       *decoder_notices(content, frames.error, frames.lost, summary.n_frames)]:
            (callback or (lambda event: None))(notice)
        return outputs.finish(summary, stats, checkpoint, keep_frames=keep_frames)


def _video_writer(checked: preflight.CheckedVideo, first: io.VideoFrame, config: Config) -> io.VideoWriter:
    """The output video, at the checked size, in the input's time base and rate, with its audio."""
    return io.VideoWriter(checked.output, width=checked.width, height=checked.height, time_base=first.time_base,
                          rate=checked.info.average_rate, crf=config.crf, audio_from=checked.info.path)


def _video_frames(info: io.VideoInfo, config: Config) -> int | None:
    """How many frames a video run will stylize, if known: the video's, at most `max_frames`."""
    return min(info.n_frames, config.max_frames or info.n_frames) if info.n_frames else config.max_frames


def _with_pts(first: io.VideoFrame, frames: Iterator[io.VideoFrame], pts: list[int]) -> Iterator[np.ndarray]:
    """The images of `first` and then `frames`, appending each one's pts to `pts` as it is read."""
    for frame in _chain(first, frames):
        pts.append(frame.pts)
        yield frame.image


def _device_notice(checkpoint: Checkpoint, progress: Resume, device: torch.device) -> list[Notice]:
    """A resumed run on another device than the interrupted one is allowed, and said."""
    if not progress.done:
        return []
    before = checkpoint.saved().get("device")
    if before in (None, "auto", device.type):  # "auto": a work folder from before the device was recorded
        return []
    return [Notice(f"note: the interrupted run used the {before} device and this one uses {device.type}; "
                   "the frames after the resume may differ slightly from an uninterrupted run")]


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
    says_time: bool = False  # a long run says its estimated time first (video, frames; a resume has its ETA)


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
        if job.says_time:
            job.notices += long_run_notices(session, [first], n_frames=job.n_frames)
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


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
