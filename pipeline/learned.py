"""The network engine's runs (`--engine network`): train a network on the clip, then paint it.

Where the optimiser (`run`, `passes`, `sequence`) works frame by frame, this engine decodes the
clip at the working size, finds its shots with the chain's own cut test (`shots.scan`), trains one
network on pairs of consecutive frames of those shots (`train.train_network`), and streams every
frame through it into the output, with the same checks, formats, timestamps and audio as `run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from . import flow, io, outputs, preflight
from .config import Config
from .errors import ConfigError, InputError, Interrupted
from .events import Callback, FrameDone, FrameStarted, RunStarted
from .network import TransformNet
from .notices import audio_notice, decoder_notices, folder_notices, streams_notice
from .outputs import Summary
from .sequence import Colors, Session, chain_view, check_frame_size, prepare_session, read_styles, shot_session
from .shots import scan
from .optimize import Targets, content_targets, stylize_frame
from .train import pair_link, paint, train_network


def check_engine(config: Config, *, resume: bool) -> None:
    """What the network engine cannot do yet: ConfigError naming it, before any work."""
    if resume:
        raise ConfigError("--resume is not available with --engine network yet; run again without it")
    if config.ray is not None:
        raise ConfigError("--ray is not available with --engine network yet")
    if config.passes > 1:
        raise ConfigError("--passes applies to --engine optimize only")


def stylize_video_with_network(content: Path, styles: list[Path], output: Path | None, config: Config, *,
                               overwrite: bool, stats: Path | None, callback: Callback | None) -> Summary:
    """`run.stylize_video` with the network engine: train on the clip's frames, then paint them.

    Raises what `run.stylize_video` raises; Interrupted on Ctrl-C (nothing is written).
    """
    emit = callback or (lambda event: None)
    checked = preflight.check_video(content, styles, output, config, overwrite=overwrite, stats=stats)
    check_frame_size(config, checked.width, checked.height, name=checked.output)
    read_styles(config, styles, long_side=max(checked.width, checked.height))
    decoded = io.read_video(content, max_side=config.working_side, max_frames=config.max_frames)
    with _interruptible(checked.output):
        video = list(decoded)  # every frame at the working size: training samples from all of them
        if not video:
            raise InputError(f"{content}: no frames to stylize")
        for notice in streams_notice(content, checked.info):
            emit(notice)
        trained = _train([frame.image for frame in video], styles, checked.output, config, emit)
        records: list[FrameDone] = []
        with io.VideoWriter(checked.output, width=checked.width, height=checked.height,
                            time_base=video[0].time_base, rate=checked.info.average_rate, crf=config.crf,
                            audio_from=content) as writer:
            for frame, (image, record) in zip(video, _painted(trained, emit)):
                writer.write(image, frame.pts)
                records.append(record)
        emit(audio_notice(writer.audio_mode, checked.info.audio_codec, checked.chosen))
        for notice in decoder_notices(content, decoded.error, decoded.lost, len(video)):
            emit(notice)
        return outputs.finish(_summary(trained, checked.output, records), stats, None, keep_frames=False)


def stylize_frames_with_network(folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
                                overwrite: bool, stats: Path | None, callback: Callback | None) -> Summary:
    """`run.stylize_frames` with the network engine; the PNGs are written once all are painted."""
    emit = callback or (lambda event: None)
    checked = preflight.check_frame_folder(folder, styles, output_dir, config, stats=stats)
    preflight.check_output_dir(output_dir, checked.targets, overwrite=overwrite, input_dir=folder)
    resized = preflight.check_frames(checked.paths, styles, config, emit)
    with _interruptible(output_dir):
        for notice in folder_notices(folder, checked.skipped, resized):
            emit(notice)
        trained = _train(list(io.read_frames(checked.paths, max_side=config.working_side)), styles, output_dir,
                         config, emit)
        painted = list(_painted(trained, emit))  # all of them before the first is written
        output_dir.mkdir(exist_ok=True)
        for target, (image, _) in zip(checked.targets, painted):
            io.write_image(target, image)
        summary = _summary(trained, output_dir, [record for _, record in painted])
        return outputs.finish(summary, stats, None, keep_frames=False)


@dataclass
class _Trained:
    """A network trained on a clip, and what painting the clip needs."""

    network: TransformNet
    session: Session
    frames: list[np.ndarray]  # uint8 (H, W, 3) as decoded
    seen: list[np.ndarray]  # the same as the losses saw them (`chain_view`)
    starts: list[int]  # the first frame of each shot
    began: float  # perf_counter when the run began
    train_seconds: float
    infer_seconds: float = 0.0


def _train(frames: list[np.ndarray], styles: list[Path], output: Path, config: Config, emit: Callback) -> _Trained:
    """Find the shots of `frames`, prepare the losses and train the network on them."""
    began = time.perf_counter()
    height, width = frames[0].shape[:2]
    check_frame_size(config, width, height, name=output)
    seen = [chain_view(config.preserve_colors, frame) for frame in frames]
    starts = scan(config, seen)[0]
    session = prepare_session(config, styles, size=(height, width))
    # Departs from the optimiser: `histogram` maps the style to the clip's first frame, not each shot's.
    session = shot_session(session, io.to_tensor(seen[0]).to(session.device))
    emit(RunStarted(len(frames), width, height, str(session.device)))
    network = train_network(session, seen, starts, steps=config.train_iterations, emit=emit)
    return _Trained(network, session, frames, seen, starts, began, time.perf_counter() - began)


def _painted(trained: _Trained, emit: Callback) -> Iterator[tuple[np.ndarray, FrameDone]]:
    """Each frame through the network (and `refine` iterations of the optimiser), with its colours
    back under `luminance`, and its record."""
    colors = Colors(trained.session.config.preserve_colors)
    painted = paint(trained.network, trained.seen, trained.session.device)
    began = time.perf_counter()
    for index, (image, iterations) in enumerate(_refined(trained, painted, emit)):
        colors.originals[index] = trained.frames[index]
        done = time.perf_counter()
        record = FrameDone(index, iterations, done - began, {}, index in trained.starts[1:])
        trained.infer_seconds += done - began
        emit(record)
        yield colors.output(index, image), record
        began = time.perf_counter()


def _refined(trained: _Trained, painted: Iterator[np.ndarray], emit: Callback) -> Iterator[tuple[np.ndarray, int]]:
    """Each painted frame after at most `config.refine` iterations of the per-frame optimisation
    started from it, held by Ruder's temporal loss to its refined predecessor warped into it
    (within a shot), and how many iterations it took. With `refine` 0, the frames as painted."""
    config, model, device = trained.session.config, trained.session.model, trained.session.device
    previous = None
    for index, image in enumerate(painted):
        if not config.refine:
            yield image, 0
            continue
        content = io.to_tensor(trained.seen[index]).to(device)
        targets = Targets(content_targets(model, content, config), trained.session.grams)
        if previous is not None and index not in trained.starts:
            backward, mask = pair_link(config, trained.seen[index - 1], trained.seen[index])
            targets = dataclasses.replace(targets, warped=flow.warp(previous, backward.to(device)), mask=mask.to(device))
        emit(FrameStarted(index, config.refine))
        result = stylize_frame(model, io.to_tensor(image).to(device), targets, config=config, n_iters=config.refine,
                               callback=emit)
        previous = result.image
        yield io.to_array(result.image), result.iterations


def _summary(trained: _Trained, output: Path, records: list[FrameDone]) -> Summary:
    height, width = trained.frames[0].shape[:2]
    phases = {"train": trained.train_seconds, "infer": trained.infer_seconds}
    return Summary(output, len(records), width, height, str(trained.session.device),
                   time.perf_counter() - trained.began, records, phases,
                   train={"steps": trained.session.config.train_iterations, "seconds": trained.train_seconds})


@contextlib.contextmanager
def _interruptible(output: Path) -> Iterator[None]:
    """Ctrl-C inside becomes Interrupted: nothing was written (the network engine keeps no work folder yet)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {output}") from None
