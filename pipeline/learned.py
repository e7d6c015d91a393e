"""The network engine's runs (`--engine network`): train a network on the clip, then paint it.

Where the optimiser (`run`, `passes`, `sequence`) works frame by frame, this engine decodes the
clip at the working size, finds its shots with the chain's own cut test (`shots.scan`), trains one
network on pairs of consecutive frames of those shots (`train.train_network`), and streams every
frame through it into the output, with the same checks, formats, timestamps and audio as `run`.

`train_model` trains one network on several inputs and saves it as a model file with what it was
trained for (`trained_for`); `use_model` loads one for a run, which then paints without training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from . import flow, io, outputs, preflight
from .config import Config, Engine, Pooling, PreserveColors
from .checkpoint import Checkpoint, Resume
from .errors import ConfigError, InputError, Interrupted
from .estimates import long_run_notices
from .events import Callback, FrameDone, FrameStarted, Notice, RunStarted
from .network import TransformNet, load_network, save_network
from .notices import audio_notice, decoder_notices, folder_notices, streams_notice
from .outputs import Summary
from .sequence import (
    Colors, Session, StyleImages, chain_view, check_frame_size, link_back, read_style_images, read_styles,
    select_device, session_from_styles, shot_session, uses_bf16,
)
from .shots import scan
from .optimize import Targets, content_targets, stylize_frame
from .train import BATCH, TrainState, carried, paint, train_network


def check_engine(config: Config, *, resume: bool, model: Path | None) -> None:
    """What the network engine cannot do yet: ConfigError naming it, before any work."""
    if resume and model is not None and config.ray is None:  # a --ray run keeps its finished tasks
        raise ConfigError("--resume is not available with --model (a model file's run trains nothing and keeps no "
                          "work folder); run again without it")
    if config.passes > 1:
        raise ConfigError("--passes applies to --engine optimize only")


def stylize_video_with_network(content: Path, styles: list[Path], output: Path | None, config: Config, *,
                               overwrite: bool, stats: Path | None, callback: Callback | None,
                               model: Path | None = None, resume: bool = False) -> Summary:
    """`run.stylize_video` with the network engine: train on the clip's frames, then paint them;
    with `model`, paint them with that model file's network instead (`use_model`), untrained.
    Training keeps its state in `<output>.parts/` (`_Work`); `resume` continues it.

    Raises what `run.stylize_video` raises; Interrupted on Ctrl-C, saying what is kept.
    """
    emit = callback or (lambda event: None)
    config, loaded = with_model(model, config, styles)  # a bad file fails first
    checked = preflight.check_video(content, styles, output, config, overwrite=overwrite, stats=stats)
    check_frame_size(config, checked.width, checked.height, name=checked.output)
    work = _Work.of_run(checked.output, config, [content, *styles], loaded, resume=resume, overwrite=overwrite)
    with work.kept_on_interrupt():
        work.start(resume=resume, overwrite=overwrite, emit=emit)
        read_styles(config, styles, long_side=max(checked.width, checked.height))
        decoded = io.read_video(content, max_side=config.working_side, max_frames=config.max_frames)
        video = list(decoded)  # every frame at the working size: training samples from all of them
        if not video:
            raise InputError(f"{content}: no frames to stylize")
        for notice in streams_notice(content, checked.info):
            emit(notice)
        trained = _ready([frame.image for frame in video], styles, checked.output, config, emit, loaded, work)
        records: list[FrameDone] = []
        work.doing = f"writing {checked.output}"
        with io.VideoWriter(checked.output, width=checked.width, height=checked.height,
                            time_base=video[0].time_base, rate=checked.info.average_rate, crf=config.crf,
                            audio_from=content) as writer:
            for frame, (image, record) in zip(video, _painted(trained, emit, work)):
                writer.write(image, frame.pts)
                records.append(record)
        emit(audio_notice(writer.audio_mode, checked.info.audio_codec, checked.chosen))
        for notice in decoder_notices(content, decoded.error, decoded.lost, len(video)):
            emit(notice)
        return outputs.finish(_summary(trained, checked.output, records), stats, work.checkpoint, keep_frames=False)


def stylize_frames_with_network(folder: Path, styles: list[Path], output_dir: Path, config: Config, *,
                                overwrite: bool, stats: Path | None, callback: Callback | None,
                                model: Path | None = None, resume: bool = False) -> Summary:
    """`run.stylize_frames` with the network engine (with `model`, that model file's network); the
    PNGs are written once all are painted. Training keeps its state as for video; `resume`."""
    emit = callback or (lambda event: None)
    config, loaded = with_model(model, config, styles)  # a bad file fails first
    checked = preflight.check_frame_folder(folder, styles, output_dir, config, stats=stats)
    work = _Work.of_run(output_dir, config, [*checked.every_path, *styles], loaded, resume=resume,
                        overwrite=overwrite)
    # A run stopped while writing the frames resumes into the folder it was writing.
    preflight.check_output_dir(output_dir, checked.targets, overwrite=overwrite or work.resuming(resume),
                               input_dir=folder)
    resized = preflight.check_frames(checked.paths, styles, config, emit)
    with work.kept_on_interrupt():
        work.start(resume=resume, overwrite=overwrite, emit=emit)
        for notice in folder_notices(folder, checked.skipped, resized):
            emit(notice)
        trained = _ready(list(io.read_frames(checked.paths, max_side=config.working_side)), styles, output_dir,
                         config, emit, loaded, work)
        painted = list(_painted(trained, emit, work))  # all of them before the first is written
        work.doing = f"writing the frames into {output_dir}"
        output_dir.mkdir(exist_ok=True)
        for target, (image, _) in zip(checked.targets, painted):
            io.write_image(target, image)
        summary = _summary(trained, output_dir, [record for _, record in painted])
        return outputs.finish(summary, stats, work.checkpoint, keep_frames=False)


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
    model: Path | None = None  # the model file painting the clip, untrained (`use_model`)


def _train(frames: list[np.ndarray], styles: list[Path], output: Path, config: Config, emit: Callback,
           work: _Work, *, clip_starts: tuple[int, ...] = (0,), paints: bool = True) -> _Trained:
    """Find the shots of `frames` (of each clip of them, starting at `clip_starts`), prepare the
    losses and train the network on them, from and into `work`'s checkpoint if it has one; the
    frames bar counts them only if the run `paints` them."""
    began, work.doing = time.perf_counter(), "training the network"
    height, width = frames[0].shape[:2]
    check_frame_size(config, width, height, name=output)
    seen = [chain_view(config.preserve_colors, frame) for frame in frames]
    starts = _shot_starts(config, frames, clip_starts)
    session = _loss_session(config, styles, seen)
    if paints and work.training is None:  # a long run says its time first; a resumed one has its ETA
        for notice in long_run_notices(session, seen, n_frames=len(frames)):
            emit(notice)
    emit(RunStarted(len(frames) if paints else 0, width, height, str(session.device)))
    network = train_network(session, seen, starts, steps=config.train_iterations, emit=emit, resume=work.training,
                            save=work.save_training if work.checkpoint is not None else None)
    work.doing = "painting the frames"
    return _Trained(network, session, frames, seen, starts, began, time.perf_counter() - began)


def _loss_session(config: Config, styles: list[Path], seen: list[np.ndarray]) -> Session:
    """The VGG and the style Grams the network's losses (training, `refine`) use for `seen` frames."""
    return loss_session(config, read_style_images(config, styles, size=seen[0].shape[:2]), seen[0])


def loss_session(config: Config, images: StyleImages, first: np.ndarray) -> Session:
    """`_loss_session` from style images already read (a Ray task gets them through the object
    store): `first` is the clip's first frame as the losses see it (`chain_view`), uint8 (H, W, 3).
    Departs from the optimiser: `histogram` maps the style to the clip's first frame, not each shot's."""
    session = session_from_styles(config, images)
    return shot_session(session, io.to_tensor(first).to(session.device))


def _painted(trained: _Trained, emit: Callback, work: _Work) -> Iterator[tuple[np.ndarray, FrameDone]]:
    """Each frame through the network (and `refine` iterations of the optimiser), with its colours
    back under `luminance`, and its record. With `refine`, each finished frame is kept in `work`,
    and those an interrupted run kept are read back instead of painted again."""
    colors = Colors(trained.session.config.preserve_colors)
    done = yield from work.replayed(emit)
    device, first = trained.session.device, done - done % BATCH  # from a whole batch: the same batches as before
    config = trained.session.config
    painted = paint(trained.network, trained.seen[first:], device, bf16=uses_bf16(config, device), compiled=config.compile)
    painted = itertools.islice(painted, done - first, None)
    records = [FrameDone(**record) for record in work.resumed.records[:done]]
    began = time.perf_counter()
    for index, (image, iterations, chain) in enumerate(_finished(trained, painted, emit, done, work.chain()), done):
        colors.originals[index] = trained.frames[index]
        finished = time.perf_counter()
        record = FrameDone(index, iterations, finished - began, {}, index in trained.starts[1:])
        trained.infer_seconds += finished - began
        image = colors.output(index, image)
        records.append(record)
        work.save_frame(index, image, records, chain)
        emit(record)
        yield image, record
        began = time.perf_counter()


def paint_shot(network: TransformNet, session: Session, frames: list[np.ndarray], *, first: int, cut: bool
               ) -> Iterator[tuple[np.ndarray, FrameDone]]:
    """`frames` (uint8 (H, W, 3) as decoded: video frames `first` ... of one shot) painted as a run
    paints them (`_painted`), with their records; `cut`: frame `first` starts a shot after the
    video's first. With `refine` (`session` then holds the losses, `loss_session`) or `carry` each
    frame is finished from the one before, so `frames` must start at the shot's first frame to match
    a run."""
    seen = [chain_view(session.config.preserve_colors, frame) for frame in frames]
    trained = _Trained(network.to(session.device), session, frames, seen, [0], time.perf_counter(), 0.0)
    for image, record in _painted(trained, lambda event: None, _Work(Path("<task>"))):
        yield image, dataclasses.replace(record, index=first + record.index, scene_cut=cut and record.index == 0)


def chained(config: Config) -> bool:
    """Whether each painted frame is finished from the one before (`carry` or `refine`): a shot is
    then painted in order from its first frame, locally and as one Ray task, and needs its cuts."""
    return bool(config.carry or config.refine)


def _finished(trained: _Trained, painted: Iterator[np.ndarray], emit: Callback, first: int,
              chain: dict[str, Tensor] | None) -> Iterator[tuple[np.ndarray, int, dict[str, Tensor] | None]]:
    """Each painted frame from frame `first` on as the chain finishes it: within a shot, `carry`
    of the finished frame before it, warped into it (bicubically: `flow.warp_sharp`), blended in
    outside occlusions (`train.carried`), then with `refine` at most that many iterations of the
    per-frame optimisation from there (its content weighed `refine_content_scale` times:
    docs/design.md, departure 24), held by Ruder's temporal loss to the frame before warped as the
    optimiser warps it (bilinearly), L-BFGS's first step as long as the frame
    before ended with (departure 25); with how many iterations it took and what the next frame
    needs, which a resume keeps (None without `refine`: a resume paints again). `chain`: that of
    frame `first - 1`, or None. With neither, the frames as painted."""
    config, model, device = trained.session.config, trained.session.model, trained.session.device
    refining = dataclasses.replace(config, content_weight=config.content_weight * config.refine_content_scale)
    previous = chain["previous"].to(device) if chain is not None else None
    step_length = chain.get("step_length") if chain is not None else None
    for index, image in enumerate(painted, first):
        if not chained(config):
            yield image, 0, None
            continue
        start, link = io.to_tensor(image).to(device), None
        if previous is not None and index not in trained.starts:
            backward, mask = link_back(config.flow, trained.seen[index - 1], trained.seen[index], device)
            if config.carry:
                start = carried(start, flow.warp_sharp(previous, backward), mask, share=config.carry)
            if config.refine:  # the temporal loss's target, warped as the optimiser warps it
                link = flow.warp(previous, backward), mask
        if not config.refine:
            previous = start
            yield io.to_array(start), 0, None
            continue
        targets = Targets(content_targets(model, io.to_tensor(trained.seen[index]).to(device), config),
                          trained.session.grams)
        if link is not None:
            targets = dataclasses.replace(targets, warped=link[0], mask=link[1])
        emit(FrameStarted(index, config.refine))
        result = stylize_frame(model, start, targets, config=refining, n_iters=config.refine, callback=emit,
                               step_length=step_length if link is not None else None)
        previous, step_length = result.image, result.step_length
        state = {"previous": previous.cpu()} | ({} if step_length is None else {"step_length": step_length.cpu()})
        yield io.to_array(result.image), result.iterations, state


def _summary(trained: _Trained, output: Path, records: list[FrameDone]) -> Summary:
    height, width = trained.frames[0].shape[:2]
    seconds = time.perf_counter() - trained.began
    if trained.model is not None:  # painted with a model file: nothing was trained
        return Summary(output, len(records), width, height, str(trained.session.device), seconds, records,
                       {"infer": trained.infer_seconds}, model=trained.model)
    phases = {"train": trained.train_seconds, "infer": trained.infer_seconds}
    return Summary(output, len(records), width, height, str(trained.session.device), seconds, records, phases,
                   train={"steps": trained.session.config.train_iterations, "seconds": trained.train_seconds})


@dataclass
class _Work:
    """A network run's work folder (`checkpoint.Checkpoint`, `<output>.parts/`, None for a run that
    keeps none: a model file's, `train_model`'s) and what it keeps: the training state, saved by
    `train_network` (every `train.SAVE_SECONDS`, at its end and on Ctrl-C), and with `refine` each
    finished frame, as the optimiser keeps them. Without `refine` painting is fast and a resume
    paints again."""

    output: Path
    checkpoint: Checkpoint | None = None
    steps: int = 0  # the run's training steps
    training: TrainState | None = None  # the training an interrupted run kept, to continue
    kept_steps: int | None = None  # training steps kept in the folder (None: none)
    resumed: Resume = field(default_factory=Resume)  # the refined frames an interrupted run kept
    kept_frames: int = 0
    doing: str = "preparing the run"

    @classmethod
    def of_run(cls, output: Path, config: Config, inputs: list[Path], loaded: LoadedModel | None, *, resume: bool,
               overwrite: bool) -> _Work:
        """The work of a run writing `output`, checked before any work (`Checkpoint.check`: a
        folder left there needs `resume` or `overwrite`; a resume, the same settings and inputs)."""
        if loaded is not None:
            return cls(output)
        checkpoint = Checkpoint.for_run(output, config, inputs, device=select_device(config.device).type)
        checkpoint.check(resume=resume, overwrite=overwrite)
        return cls(output, checkpoint, config.train_iterations)

    def resuming(self, resume: bool) -> bool:
        return resume and self.checkpoint is not None and self.checkpoint.folder.exists()

    def start(self, *, resume: bool, overwrite: bool, emit: Callback) -> None:
        """Create the work folder, or with `resume` read what it keeps."""
        if self.checkpoint is None:
            return
        self.resumed = self.checkpoint.start(resume=resume, overwrite=overwrite)
        state = self.checkpoint.load_training() if resume else None
        if state is not None:
            self.training = TrainState(**state)
            self.kept_steps, self.kept_frames = self.training.step, self.resumed.done
            emit(Notice(f"resuming the training after step {self.training.step} from {self.checkpoint.folder}"))

    def save_training(self, state: TrainState) -> None:
        self.checkpoint.save_training(vars(state))
        self.kept_steps = state.step

    def chain(self) -> dict[str, Tensor] | None:
        """What the frame after the last refined one an interrupted run kept needs (`_finished`), or None."""
        return self.resumed.chain

    def replayed(self, emit: Callback) -> Iterator[tuple[np.ndarray, FrameDone]]:
        """The refined frames an interrupted run kept, with their records; returns their number."""
        if self.resumed.done:
            emit(Notice(f"resuming after frame {self.resumed.done} from {self.checkpoint.folder}"))
        for index in range(self.resumed.done):
            record = FrameDone(**self.resumed.records[index])
            emit(record)
            yield io.read_image(self.checkpoint.frame_path(index)), record
        return self.resumed.done

    def save_frame(self, index: int, image: np.ndarray, records: list[FrameDone], chain: dict[str, Tensor] | None
                   ) -> None:
        """Keep a refined frame (`chain` not None) and what the next one needs."""
        if self.checkpoint is not None and chain is not None:
            self.checkpoint.save(index, image, [dataclasses.asdict(record) for record in records], chain)
            self.kept_frames = index + 1

    def kept(self) -> str | None:
        """What the work folder keeps, for Ctrl-C's line ("... is"), or None."""
        if self.kept_steps is None:
            return None
        if self.kept_frames:
            return f"the trained network and {self.kept_frames} finished frame(s) are"
        if self.kept_steps < self.steps:
            return f"the training up to step {self.kept_steps} of {self.steps} is"
        return "the trained network is"

    @contextlib.contextmanager
    def kept_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C inside becomes one Interrupted line saying what is kept for --resume; a failure
        with nothing kept drops the work folder, as the optimiser's runs do."""
        try:
            yield
        except BaseException as error:
            kept = self.kept()
            if self.checkpoint is not None and kept is None:
                self.checkpoint.remove()
            if not isinstance(error, KeyboardInterrupt):
                raise
            if self.checkpoint is None:
                raise Interrupted(f"interrupted while {self.doing}; nothing was written to {self.output}") from None
            raise self.checkpoint.interrupted(self.doing, kept) from None


# What a model must have been trained for to paint a run that names its styles: the losses the
# network learned (the style images, their blend and scale, the layers and weights) and the colour
# mode it learned in. The working side and the network's width are recorded but not compared: the
# network paints any size, and its file says its shape.
COMPARED = ("styles", "style_blend", "style_scale", "content_layer", "style_layers", "style_layer_weights", "pooling",
            "content_weight", "style_weight", "tv_weight", "temporal_weight", "train_temporal_weight", "range_weight",
            "preserve_colors")


def trained_for(config: Config, styles: list[Path]) -> dict[str, Any]:
    """What a network trained with `config` on `styles` learned, as JSON values: each style file's
    sha256, the losses' layers and weights, the colour mode, the working side and the network's
    width. A model file keeps it (`network.save_network`); `use_model` compares it with a run's.

    Raises:
        InputError: a style file cannot be read.
    """
    return {
        "styles": [_sha256(path) for path in styles],
        "style_blend": list(config.style_blend), "style_scale": config.style_scale,
        "content_layer": config.content_layer, "style_layers": list(config.style_layers),
        "style_layer_weights": list(config.style_layer_weights), "pooling": Pooling(config.pooling).value,
        "content_weight": config.content_weight, "style_weight": config.style_weight, "tv_weight": config.tv_weight,
        "temporal_weight": config.temporal_weight, "train_temporal_weight": config.train_temporal_weight,
        "range_weight": config.range_weight,
        "preserve_colors": PreserveColors(config.preserve_colors).value, "max_side": config.max_side,
        "network_width": config.network_width, "train_iterations": config.train_iterations,
        "train_whole_frame_style": config.train_whole_frame_style,
    }


@dataclass(frozen=True)
class LoadedModel:
    """A model file ready to paint a run (`use_model`)."""

    path: Path
    network: TransformNet  # on the CPU, in eval mode
    config: Config  # the run's, with the network engine and the colour mode the network learned in


def with_model(model: Path | None, config: Config, styles: list[Path]) -> tuple[Config, LoadedModel | None]:
    """A run's settings and the model file `model` loaded for it (`use_model`), or `config` and None
    without one. Raises what `use_model` raises."""
    if model is None:
        return config, None
    loaded = use_model(model, config, styles)
    return loaded.config, loaded


def use_model(path: Path, config: Config, styles: list[Path]) -> LoadedModel:
    """Load the model file `path` (`network.load_network`: tensors and JSON only, no code runs) for a
    run with `config`. With `styles`, the model must have been trained for them and for this run's
    losses (`COMPARED`); without, the run takes the model's (and cannot `refine`, which needs the
    styles). Either way it paints in the model's colour mode.

    Raises:
        InputError: the file is missing, damaged, foreign or of another architecture version.
        ConfigError: the model was trained for other styles or losses than the run's, naming them.
    """
    network, recorded = load_network(path)
    if config.refine and not styles:
        raise ConfigError(f"{path}: --refine with --model needs the style images the model was trained for (-s)")
    if styles:
        wanted = json.loads(json.dumps(trained_for(config, styles)))  # tuples become lists, as in the file
        differences = [_difference(key, recorded.get(key), wanted[key], styles) for key in COMPARED
                       if recorded.get(key) != wanted[key]]
        if differences:
            raise ConfigError(f"{path}: trained for other settings than this run's: {'; '.join(differences)}. "
                              "Leave out -s to paint with the model's settings")
    try:
        colors = PreserveColors(recorded.get("preserve_colors", PreserveColors.none.value))
    except ValueError:
        raise InputError(f"{path}: records an unknown colour mode {recorded['preserve_colors']!r}") from None
    return LoadedModel(path, network, dataclasses.replace(config, engine=Engine.network, preserve_colors=colors))


def _difference(key: str, recorded: Any, wanted: Any, styles: list[Path]) -> str:
    if key == "styles":
        return f"other style images than {', '.join(path.name for path in styles)}"
    return f"{key} was {_shown(recorded)}, this run asks {_shown(wanted)}"


def _shown(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, list):
        return ",".join(_shown(item) for item in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise InputError(f"{path}: cannot read the style image ({error.strerror or error})") from None


def stylize_image_with_model(content: Path, styles: list[Path], output: Path, config: Config, *, model: Path,
                             overwrite: bool, stats: Path | None, callback: Callback | None) -> Summary:
    """`run.stylize_image` painted by the model file `model` (`use_model`): one pass of the network.

    Raises what `run.stylize_image` and `use_model` raise.
    """
    emit = callback or (lambda event: None)
    loaded = use_model(model, config, styles)
    preflight.check_output(output, overwrite=overwrite, inputs=[content, *styles, model])
    io.check_image_suffix(output)
    preflight.check_stats(stats, inputs=[content, *styles, model], outputs=[output])
    frame = io.read_image(content, max_side=loaded.config.working_side)
    work = _Work(output, doing=f"painting {output}")
    with work.kept_on_interrupt():
        trained = _loaded([frame], styles, output, emit, loaded)
        image, record = next(_painted(trained, emit, work))
        io.write_image(output, image)
        return outputs.finish(_summary(trained, output, [record]), stats, None, keep_frames=False)


def _ready(frames: list[np.ndarray], styles: list[Path], output: Path, config: Config, emit: Callback,
           loaded: LoadedModel | None, work: _Work) -> _Trained:
    """The network that paints `frames`: trained on them (into and from `work`), or the model file's as it is."""
    if loaded is None:
        return _train(frames, styles, output, config, emit, work)
    return _loaded(frames, styles, output, emit, loaded)


def _loaded(frames: list[np.ndarray], styles: list[Path], output: Path, emit: Callback, loaded: LoadedModel
            ) -> _Trained:
    """A model file's network, ready to paint `frames`. Painting alone needs no VGG, styles or
    shots; `carry` needs the shots (nothing is carried across a cut), `refine` all three, as after
    training."""
    began, config = time.perf_counter(), loaded.config
    height, width = frames[0].shape[:2]
    check_frame_size(config, width, height, name=output)
    seen = [chain_view(config.preserve_colors, frame) for frame in frames]
    starts = _shot_starts(config, frames, (0,)) if chained(config) else [0]
    if config.refine:
        session = _loss_session(config, styles, seen)
    else:
        session = Session(config, select_device(config.device), model=None, grams={})  # no losses
    emit(RunStarted(len(frames), width, height, str(session.device)))
    return _Trained(loaded.network.to(session.device), session, frames, seen, starts, began, 0.0, model=loaded.path)


def _shot_starts(config: Config, frames: list[np.ndarray], clip_starts: tuple[int, ...]) -> list[int]:
    """The first frame of each shot of `frames` (as decoded: `shots.scan` takes the chain's view
    itself), made of clips that start at `clip_starts`: each clip's own shots, and each clip starts
    one, so no pair crosses into the next."""
    bounds = [*clip_starts, len(frames)]
    return [begin + start for begin, end in zip(bounds, bounds[1:]) for start in scan(config, frames[begin:end])[0]]


@dataclass(frozen=True)
class TrainSummary:
    """What `train_model` did."""

    output: Path  # the model file
    n_inputs: int
    n_frames: int  # frames learned from, over all inputs
    n_shots: int
    width: int  # px, of the first input's frames at the working size
    height: int
    device: str
    steps: int
    seconds: float  # the whole run
    train_seconds: float


def default_model(first_input: Path) -> Path:
    """Where `train_model`'s file goes unless named: `<first input>.model.safetensors` beside it."""
    return first_input.with_name(f"{first_input.stem}.model.safetensors")


def train_model(inputs: list[Path], styles: list[Path], output: Path, config: Config, *, overwrite: bool = False,
                resume: bool = False, callback: Callback | None = None) -> TrainSummary:
    """Train one network on every frame of `inputs` (videos, frame folders, images) and save it to
    `output` with what it was trained for (`trained_for`), for `use_model`. Each input's frames
    are shots of their own (`shots.scan` per input): no training pair spans two inputs. Training
    keeps its state in `<output>.parts/` (`_Work`), as a video run's does; `resume` continues it
    to the network an uninterrupted run gives, and the folder goes once the model file is written.

    Raises:
        InputError: an input or a style cannot be read, or an input has no frames.
        OutputError: `output` exists (without `overwrite`), is an input, or cannot be written; or an
            interrupted run's folder is there (without `resume` or `overwrite`).
        ConfigError: no styles, the frames are too small for the losses, or `resume` with other settings.
        Interrupted: on Ctrl-C, saying what is kept for `resume`.
    """
    emit = callback or (lambda event: None)
    began = time.perf_counter()
    config = dataclasses.replace(config, engine=Engine.network)  # whatever the file says: a resume compares as one
    if not styles:
        raise ConfigError("training needs at least one style image (-s)")
    preflight.check_output(output, overwrite=overwrite, inputs=[*inputs, *styles])
    kinds = [_input_kind(path) for path in inputs]  # each input opens before any is decoded
    work = _Work.of_run(output, config, [*inputs, *styles], None, resume=resume, overwrite=overwrite)
    with work.kept_on_interrupt():
        work.start(resume=resume, overwrite=overwrite, emit=emit)
        clips = [_decoded(path, kind, config) for path, kind in zip(inputs, kinds)]
        read_styles(config, styles, long_side=max(clips[0][0].shape[:2]))
        clip_starts = tuple(itertools.accumulate([0, *map(len, clips[:-1])]))
        frames = [frame for clip in clips for frame in clip]
        trained = _train(frames, styles, output, config, emit, work, clip_starts=clip_starts, paints=False)
        save_network(output, trained.network, trained_for(config, styles))
    work.checkpoint.remove()
    height, width = frames[0].shape[:2]
    return TrainSummary(output, len(inputs), len(frames), len(trained.starts), width, height,
                        str(trained.session.device), config.train_iterations, time.perf_counter() - began,
                        trained.train_seconds)


def _input_kind(path: Path) -> str:
    """"folder", "image" or "video", after opening it: InputError naming it if it is none of them."""
    if path.is_dir():
        io.list_frames(path)
        return "folder"
    if path.suffix.lower() in io.IMAGE_SUFFIXES:
        io.image_size(path)
        return "image"
    io.probe_video(path)
    return "video"


def _decoded(path: Path, kind: str, config: Config) -> list[np.ndarray]:
    """Every frame of one input at the working size (at most `max_frames`), each checked for size."""
    if kind == "folder":
        frames = list(io.read_frames(io.list_frames(path)[0][: config.max_frames], max_side=config.working_side))
    elif kind == "image":
        frames = [io.read_image(path, max_side=config.working_side)]
    else:
        frames = [frame.image for frame in io.read_video(path, max_side=config.working_side,
                                                          max_frames=config.max_frames)]
    if not frames:
        raise InputError(f"{path}: no frames to train on")
    check_frame_size(config, frames[0].shape[1], frames[0].shape[0], name=path)
    return frames
