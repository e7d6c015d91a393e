"""The temporal chain of Ruder et al. 2016: stylize frames in order, each from the one before.

A `Session` holds what a run computes once (device, truncated VGG, style Grams); `stylize_sequence`
turns content frames into `Step`s, linking each frame to the previous one through optical flow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import color, flow, io
from .checkpoint import Resume
from .config import Config, Device, Flow, Init, Precision, PreserveColors
from .errors import ConfigError, InputError
from .events import Callback, Event, FrameDone, FrameStarted, Notice
from .model import LAYER_NAMES, VGG19, load_vgg19
from .optimize import FrameResult, IterationDone, Targets, content_targets, look, style_grams, stylize_frame
from .prefetch import prefetch


@dataclass(frozen=True)
class Session:
    """What a run computes once: the device, the truncated VGG and the style Grams."""

    config: Config
    device: torch.device
    model: VGG19
    grams: dict[str, torch.Tensor]
    # The style Grams of each rung below the working size, keyed by the rung's (height, width).
    rung_grams: dict[tuple[int, int], dict[str, torch.Tensor]] = field(default_factory=dict)
    # The style images on the device, (1, 3, H, W) each, at the working size and at each rung (None
    # where one would be too small for the network there), for `shot_session`.
    styles: tuple[torch.Tensor, ...] = ()
    rung_styles: dict[tuple[int, int], tuple[torch.Tensor, ...] | None] = field(default_factory=dict)


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


def uses_bf16(config: Config, device: torch.device) -> bool:
    """bf16 convolutions where asked for, or by default on CUDA (tensor cores); fp32 elsewhere."""
    if config.precision == Precision.auto:
        return device.type == "cuda"
    return config.precision == Precision.bf16


def trains_in_bf16(config: Config, device: torch.device) -> bool:
    """Whether the network engine's training runs the VGG's convolutions in bf16: as `uses_bf16`,
    and by default also on a CPU that multiplies bf16 in hardware (`cpu_has_bf16`). There a
    training step takes 0.6-0.7x the fp32 one, and the trained network scores as well
    (docs/speed.md, bf16 training); the optimiser and painting stay fp32 on the CPU."""
    if config.precision == Precision.auto and device.type == "cpu":
        return cpu_has_bf16()
    return uses_bf16(config, device)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 units: AMX tiles (Intel Xeon since Sapphire Rapids) or AVX512-BF16
    (also AMD Zen 4 and later). Without, torch emulates bf16 and it runs slower than fp32. torch
    says so only through private helpers; where they are missing, no."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def deepest_layer(config: Config) -> str:
    """The last VGG-19 layer the losses read; the network is cut after it."""
    return max((config.content_layer, *config.style_layers), key=_layer_index)


def minimum_side(config: Config) -> int:
    """Shortest frame side the deepest layer needs: each of its pools halves the size (conv5_1: 16)."""
    return 2 ** (int(deepest_layer(config)[4]) - 1)  # "conv5_1" is behind 4 pools


def check_frame_size(config: Config, width: int, height: int, *, name: Path | str) -> None:
    """ConfigError naming `name` (the output, or the input) if frames of `width` x `height` are too
    small for the deepest layer the losses read."""
    if min(width, height) < minimum_side(config):
        raise ConfigError(f"{name}: frames would be {width}x{height} at --max-side {config.max_side}, but "
                          f"VGG-19 needs at least {minimum_side(config)} px on the short side; use a larger --max-side")


def _layer_index(name: str) -> int:
    if name not in LAYER_NAMES:
        raise ConfigError(f"unknown VGG-19 layer '{name}'; known: {', '.join(LAYER_NAMES)}")
    return LAYER_NAMES.index(name)


@dataclass(frozen=True)
class StyleImages:
    """The style images as a run uses them, uint8 (H, W, 3) each: at the working size, and at each
    rung of the first frames' ladder below it (None where one would be too small for the network)."""

    full: list[np.ndarray]
    rungs: dict[tuple[int, int], list[np.ndarray] | None]


def read_style_images(config: Config, styles: list[Path], *, size: tuple[int, int]) -> StyleImages:
    """The styles for frames of `size` (height, width) and each rung of their ladder (`read_styles`).

    Raises:
        ConfigError: --style-blend has not one weight per style.
        InputError: a style cannot be read, or is too small at the working size.
    """
    if config.style_blend and len(config.style_blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(config.style_blend)} weights for {len(styles)} style image(s)")
    full = read_styles(config, styles, long_side=max(size))
    return StyleImages(full, {rung: _styles_at(config, styles, long_side=max(rung)) for rung in ladder(size, config)[:-1]})


def prepare_session(config: Config, styles: list[Path], *, size: tuple[int, int]) -> Session:
    """Pick the device, read and check the styles, load the VGG truncated at the deepest layer used,
    and compute style Grams for frames of `size` (height, width) and for each rung of their ladder.
    Everything that can fail without the model fails before it loads."""
    return session_from_styles(config, read_style_images(config, styles, size=size))


def session_from_styles(config: Config, images: StyleImages) -> Session:
    """`prepare_session` from style images already read (`read_style_images`): a Ray task gets them
    through the object store instead of from files."""
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    model = load_model(config, device)

    def on_device(images: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
        return tuple(io.to_tensor(image).to(device) for image in images)

    rung_styles = {rung: on_device(rung_images) if rung_images is not None else None
                   for rung, rung_images in images.rungs.items()}
    session = Session(config, device, model, {}, {}, on_device(images.full), rung_styles)
    return _with_grams(session, session.styles, rung_styles)


def _with_grams(session: Session, styles: tuple[torch.Tensor, ...],
                rung_styles: dict[tuple[int, int], tuple[torch.Tensor, ...] | None]) -> Session:
    """`session` with the Grams of `styles` at the working size and of `rung_styles` at each rung."""
    config = session.config

    def grams_at(images: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        return style_grams(session.model, list(images), config.style_blend, config)

    # Each rung sees the style at its own scale, so strokes keep their size relative to the frame;
    # a rung where a style image would be too narrow for that keeps the Grams of the rung above.
    grams = above = grams_at(styles)
    rung_grams = {}
    for rung in sorted(rung_styles, key=max, reverse=True):
        images = rung_styles[rung]
        rung_grams[rung] = above = grams_at(images) if images is not None else above
    return dataclasses.replace(session, grams=grams, rung_grams=rung_grams)


def shot_session(session: Session, first: torch.Tensor) -> Session:
    """The session with the style Grams for a shot whose first frame is `first` (1, 3, H, W).

    With `preserve_colors` the style is first mapped to that frame (`color.style_for`), at every
    rung: once per shot, so the target does not change under a running chain. Without, `session`.
    """
    mode = session.config.preserve_colors
    if mode == PreserveColors.none:
        return session

    def mapped(images: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(color.style_for(mode, style, first) for style in images)

    rung_styles = {rung: mapped(images) if images is not None else None for rung, images in session.rung_styles.items()}
    return _with_grams(session, mapped(session.styles), rung_styles)


def read_styles(config: Config, styles: list[Path], *, long_side: int) -> list[np.ndarray]:
    """The style images, uint8 (H, W, 3), at the size the run uses them: long side `style_scale`
    times the frames' `long_side`.

    Raises:
        InputError: a style cannot be read, or its short side would be under what VGG-19 needs.
    """
    side = max(16, round(long_side * config.style_scale))
    for path in styles:
        width, height = io.fit_size(*io.image_size(path), side, even=False)
        if min(width, height) < minimum_side(config):
            raise InputError(
                f"{path}: the style would be {width}x{height} px here (long side {side} px: --style-scale "
                f"{config.style_scale:g} of the frames' {long_side} px), but VGG-19 needs at least "
                f"{minimum_side(config)} px on the short side; use a larger --style-scale or --max-side")
    return [io.read_image(path, max_side=side) for path in styles]


def _styles_at(config: Config, styles: list[Path], *, long_side: int) -> list[np.ndarray] | None:
    """The style images for a rung whose long side is `long_side`; None if one would be too small."""
    try:
        return read_styles(config, styles, long_side=long_side)
    except InputError:
        return None


def load_model(config: Config, device: torch.device) -> VGG19:
    """The run's VGG-19 on `device`, cut after the deepest layer used, set up to run as the device
    runs best: bf16 and channels_last on CUDA (by `config.precision`), fp32 elsewhere."""
    weights = Path(config.weights) if config.weights else None
    model = load_vgg19(last_layer=deepest_layer(config), pooling=config.pooling.value, weights=weights).to(device)
    model.set_execution(bf16=uses_bf16(config, device), channels_last=device.type == "cuda")
    if device.type == "cuda":
        # Every run is seeded, and the same seed must give the same result: cuDNN's autotuner may
        # pick other convolution algorithms from run to run, and some of them are not deterministic.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return model


@dataclass(frozen=True)
class Step:
    """One finished frame: the image to write, its content, its record, and the chain to resume from."""

    image: np.ndarray
    frame: np.ndarray
    record: FrameDone
    chain: dict[str, Any]  # `Chain.state()` after this frame, for the checkpoint


@dataclass
class Chain:
    """What links the next frame to the ones before: the latest stylized frames (newest last, as many
    as the longest temporal offset), their content, the `look` the last one ended at, and how
    many frames the current shot has had so far (long-term terms never reach across a cut)."""

    stylized: list[torch.Tensor] = field(default_factory=list)  # (1, 3, H, W) RGB [0, 1] each
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 (H, W, 3) each
    level: float | None = None  # `optimize.look` of the last frame
    length: int = 0
    first: np.ndarray | None = None  # the current shot's first frame (its style Grams are mapped to it)

    def push(self, stylized: torch.Tensor, frame: np.ndarray, level: float, *,
             new_shot: bool, keep: int) -> None:
        self.stylized = [*self.stylized, stylized][-keep:]
        self.frames = [*self.frames, frame][-keep:]
        self.level = level
        self.length = 1 if new_shot else self.length + 1
        self.first = frame if new_shot else self.first

    def earlier(self) -> list[torch.Tensor]:
        """Stylized frames t-1, t-2, ... of the current shot, nearest first."""
        return self.stylized[::-1][: self.length]

    def state(self) -> dict[str, Any]:
        return {"stylized": torch.cat(self.stylized).cpu(), "frames": torch.from_numpy(np.stack(self.frames)),
                "level": self.level, "length": self.length, "first": torch.from_numpy(self.first)}

    @classmethod
    def restore(cls, state: dict[str, Any] | None, device: torch.device) -> Chain:
        if state is None:
            return cls()
        first = state["first"].numpy() if "first" in state else None  # absent from older work folders
        return cls([image[None].to(device) for image in state["stylized"]], list(state["frames"].numpy()),
                   state["level"], state["length"], first)


class Colors:
    """`preserve_colors = luminance` around a chain (a local run's, a Ray task's): the chain (flow,
    losses, checkpointed chain) sees each frame's luminance, and each result gets its frame's colours
    back (`color.keep_colors`) before it is written. Other modes pass frames and results through."""

    def __init__(self, mode: PreserveColors) -> None:
        self.luminance = mode == PreserveColors.luminance
        self.originals: dict[int, np.ndarray] = {}  # frames handed on and not yet written, by index

    def frames(self, frames: Iterator[np.ndarray], *, start: int) -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames, start=start):
            if self.luminance:
                self.originals[index] = frame
                frame = chain_view(PreserveColors.luminance, frame)
            yield frame

    def output(self, index: int, image: np.ndarray) -> np.ndarray:
        if not self.luminance:
            return image
        return io.to_array(color.keep_colors(io.to_tensor(image), io.to_tensor(self.originals.pop(index))))


def temporal_offsets(config: Config) -> tuple[int, ...]:
    """The earlier frames a frame is held to: 1 (Ruder's short-term loss) and those of `long_term`."""
    return tuple(sorted({1, *config.long_term}))


def stylize_sequence(session: Session, frames: Iterable[np.ndarray], emit: Callback, resume: Resume, *,
                     first_index: int = 0, shot_first: np.ndarray | None = None) -> Iterator[Step]:
    """Stylize frames in order; each frame after the first starts from the previous result.

    Ruder et al. 2016: the previous stylized frame, warped along the content's flow, is both the
    starting point and the target of the temporal loss outside occlusions; with `long_term`, frames
    t-2, t-4 ... are targets too (section 3.2). A scene cut restarts the chain from the content, as
    the first frame of a sequence does. `resume` continues a chain. Decoding and optical flow run
    `config.prefetch` frames ahead in a background thread.

    A Ray task's frames are a piece of the video: `first_index` is the video's index of the first
    (records and notices name the video's frames), and `shot_first` the first frame of the shot they
    continue, whose colours `preserve_colors` keeps (None: the shot starts with `frames`).
    """
    config = session.config
    offsets = temporal_offsets(config)
    chain = Chain.restore(resume.chain, session.device)
    # The session with the current shot's style Grams (`shot_session`); a resume maps them again.
    shot = shot_session(session, io.to_tensor(chain.first).to(session.device)) if chain.first is not None else session
    ahead = prefetch(_with_flow(config, frames, chain.frames, offsets), depth=config.prefetch)
    capped, warned = False, False  # a shot's first frame ran its whole budget; said so once per run
    opening = shot_first  # the shot's first frame, until the sequence's first frame has used it
    for index, (frame, flows) in enumerate(ahead, start=resume.done + first_index):
        # Link the frame to the ones before; a cut (or the very first frame) starts a new shot.
        start = time.perf_counter()
        content = io.to_tensor(frame).to(session.device)
        link = link_frames(config, flows, content, chain.earlier()) if chain.length else None
        linked = time.perf_counter()
        chained, cut = _chained(link, index, emit)
        if not chained:
            shot = shot_session(session, content if opening is None else io.to_tensor(opening).to(session.device))
        opening = None

        # Optimise it: from the frame before, or up the ladder for a shot's first frame.
        if chained and capped and not warned:
            emit(Notice(_capped_notice(index - 1, config), key="first frame capped"))
            warned = True
        if chained:
            result = _continue_shot(shot, content, chain, link, index, emit)
        else:
            result = start_shot(shot, content, _targets_of(shot, content, None), index, emit)
            capped = config.stop_tolerance > 0 and result.iterations == first_budget(tuple(content.shape[-2:]), config)

        # Carry the chain on and record the frame.
        # A frame kept untouched keeps the level it was measured against, so a slow creep (the blur
        # of repeated warps) adds up against one level and is corrected once it passes the tolerance.
        level = chain.level if chained and result.iterations == 0 else look(result.losses)
        chain.push(result.image, frame, level, new_shot=not chained, keep=max(offsets))
        record = _record(index, result, cut, flows, start=start, linked=linked)
        yield Step(io.to_array(result.image), frame, record, chain.state())


def _chained(link: Link | None, index: int, emit: Callback) -> tuple[bool, bool]:
    """(whether frame `index` continues the shot before it, whether it is a scene cut); says where
    it is a cut. `link` is None for the very first frame."""
    cut = link is not None and link.cut
    if cut:
        emit(cut_notice(index, link.unlinked))
    return link is not None and not cut, cut


def _record(index: int, result: FrameResult, cut: bool, flows: Flows | None, *, start: float, linked: float
            ) -> FrameDone:
    """Frame `index`'s record, timed from `start` (linked to the frames before at `linked`)."""
    done = time.perf_counter()
    # The flow itself may have run in the background: it counts in flow_seconds, not in seconds.
    return FrameDone(index, result.iterations, done - start, result.losses, cut,
                     flow_seconds=linked - start + (flows.seconds if flows else 0.0), optimize_seconds=done - linked)


def _targets_of(shot: Session, content: torch.Tensor, link: Link | None) -> Targets:
    """What a frame is optimised towards: its content, the shot's style Grams and, when `link`
    chains it to the frame before, that frame warped (the temporal term, outside occlusions)."""
    config = shot.config
    return Targets(content_targets(shot.model, content, config), shot.grams,
                   warped=link.warped if link is not None and config.temporal_weight > 0 else None,
                   mask=link.mask if link is not None else None)


def _continue_shot(shot: Session, content: torch.Tensor, chain: Chain, link: Link, index: int,
                   emit: Callback) -> FrameResult:
    """A later frame of a shot, started from the previous result (`initial_image`) and held to it."""
    config = shot.config
    targets = _targets_of(shot, content, link)
    init = initial_image(config.init, content, chain.stylized[-1], link)
    emit(FrameStarted(index, config.iterations))
    # With settle, a frame that starts from the one before stops once it is as close to its
    # content and style as that one: the shot keeps the look its first frame reached (docs/quality.md, Drift).
    settles = config.settle and config.init in (Init.prev_warped, Init.prev)
    return stylize_frame(shot.model, init, targets, config=config, n_iters=config.iterations, callback=emit,
                         level=chain.level if settles else None)


def is_scene_cut(config: Config, unlinked: float) -> bool:
    """The scene-cut test, one for the chain, the planner and the preview: more than `cut_threshold`
    of a frame's pixels cannot be linked to the frame before (`flow.unlinked_share`)."""
    return unlinked > config.cut_threshold


def cut_notice(index: int, unlinked: float) -> Notice:
    """What a run says where frame `index` starts a new shot."""
    return Notice(f"frame {index + 1}: scene cut ({unlinked:.0%} of pixels unlinked), restarting from the content")


def chain_view(mode: PreserveColors, frame: np.ndarray) -> np.ndarray:
    """A content frame as the chain sees it (flow, losses, cut test): its luminance with
    `preserve_colors = luminance`, else the frame itself. uint8 (H, W, 3) in and out."""
    if mode != PreserveColors.luminance:
        return frame
    return io.to_array(color.luminance(io.to_tensor(frame)))


def _capped_notice(index: int, config: Config) -> str:
    """Why a chain whose first frame hit its budget drifts, and what to do (docs/quality.md, Drift)."""
    return (f"frame {index + 1}: the shot's first frame used its whole budget (--first-iterations "
            f"{config.first_iterations}) without settling; later frames will carry on converging and the "
            f"shot's look may drift: a larger --first-iterations lets it settle first")


@dataclass(frozen=True)
class Flows:
    """Optical flow between frame t and each earlier frame t-j it is linked to, and the seconds it took.

    Keyed by the offset j: `earlier[j]` is frame t-j as uint8 (H, W, 3); `forward[j]` maps it to t and
    `backward[j]` maps t to it, (1, 2, H, W) on the CPU, or None for --flow none. The prefetch thread
    does not know where the cuts are, so offsets reaching across one are computed and then unused.
    """

    earlier: dict[int, np.ndarray]
    forward: dict[int, torch.Tensor | None]
    backward: dict[int, torch.Tensor | None]
    seconds: float


def _with_flow(config: Config, frames: Iterable[np.ndarray], earlier: list[np.ndarray], offsets: tuple[int, ...]
               ) -> Iterator[tuple[np.ndarray, Flows | None]]:
    """Each frame with its flows to the frames `offsets` before it (None for the very first): content
    only, so it can run ahead of the stylization. Keeps only the frames it will still need."""
    earlier = list(earlier)[-max(offsets):]  # oldest first
    for frame in frames:
        flows = None
        if earlier:
            start = time.perf_counter()
            reachable = [j for j in offsets if j <= len(earlier)]
            before = {j: earlier[-j] for j in reachable}
            forward, backward = {}, {}
            for j in reachable:
                forward[j] = backward[j] = None
                if config.flow != Flow.none:
                    forward[j] = flow.optical_flow(before[j], frame, method=config.flow)
                    backward[j] = flow.optical_flow(frame, before[j], method=config.flow)
            flows = Flows(before, forward, backward, time.perf_counter() - start)
        yield frame, flows
        earlier = [*earlier, frame][-max(offsets):]


def start_shot(session: Session, content: torch.Tensor, targets: Targets, index: int, emit: Callback) -> FrameResult:
    """The first frame of a shot, from its content, climbing the ladder of `ladder` sizes.

    Each rung optimises the frame at its size, where an iteration costs about the square of the
    rung's share of the working size and large structures settle in fewer iterations; its result,
    upsampled, starts the next rung, as Gatys et al. 2017 ("Controlling Perceptual Factors in
    Neural Style Transfer") do for high resolutions. Each rung stops at its budget (`rung_budgets`)
    or earlier by `stop_tolerance`; the record counts every rung's iterations.
    """
    config, model = session.config, session.model
    size = tuple(content.shape[-2:])
    rungs = ladder(size, config)
    budgets = rung_budgets(len(rungs), config)
    emit(FrameStarted(index, sum(budgets)))
    result, done = None, 0
    for rung, budget in zip(rungs, budgets):
        if rung == size:
            scaled, rung_targets = content, targets
        else:
            scaled = F.interpolate(content, size=rung, mode="bilinear", antialias=True, align_corners=False)
            rung_targets = Targets(content_targets(model, scaled, config), session.rung_grams[rung])
        # Warm start: the rung below, upsampled (bilinear: its strokes are enlarged, not resharpened).
        init = scaled if result is None else F.interpolate(result.image, size=rung, mode="bilinear",
                                                           align_corners=False)
        result = stylize_frame(model, init, rung_targets, config=config, n_iters=budget,
                               callback=_offset(emit, done, sum(budgets)))
        done += result.iterations
    return dataclasses.replace(result, iterations=done)


def first_budget(size: tuple[int, int], config: Config) -> int:
    """Most iterations a shot's first frame at `size` (height, width) runs, over every rung."""
    return sum(rung_budgets(len(ladder(size, config)), config))


def rung_budgets(n_rungs: int, config: Config) -> list[int]:
    """Most iterations of each of `n_rungs` rungs, smallest first: `first_iterations` for the first,
    which starts from the content, and `rung_iterations` (at most `first_iterations`) for each rung
    above, which starts from the one below with the layout settled and only detail to add.

    Why a smaller budget above: the loss the optimiser sees is that of unclamped pixels, and a rung
    warm-started from below keeps lowering it slowly, so early stopping lets it run long, while the
    delivered (clamped) image gets worse: at 512 px (docs/speed.md, The coarse-to-fine ladder) the top rung's delivered style
    loss rose from 6.3e4 after 20 iterations to 1.18e5 after 100 and 1.42e5 after 280.
    """
    above = min(config.rung_iterations, config.first_iterations)
    return [config.first_iterations] + [above] * (n_rungs - 1)


def ladder(size: tuple[int, int], config: Config) -> list[tuple[int, int]]:
    """The (height, width) of each rung a shot's first frame climbs, smallest first, ending at `size`.

    Below `size` come sizes `coarse_scale`, `coarse_scale`**2 ... of it (each side rounded): the
    first of them always (the coarse pass at 512 px), the next ones while the smallest rung so far
    is longer than `coarse_side`. With the defaults (halving, 256 px): 512 px climbs 256, 512;
    1024 px climbs 256, 512, 1024; 1920x1080 climbs 240, 480, 960, 1920 on the long side. A rung
    whose short side would be under what the network needs (`minimum_side`) is left out, and so is
    everything without `coarse_to_fine`.
    """
    rungs = [tuple(size)]
    while config.coarse_to_fine and (len(rungs) == 1 or max(rungs[0]) > config.coarse_side):
        factor = config.coarse_scale ** len(rungs)
        rung = tuple(max(1, round(side * factor)) for side in size)
        if min(rung) < minimum_side(config):
            break
        rungs.insert(0, rung)
    return rungs


def _offset(emit: Callback, done: int, total: int) -> Callback:
    """Report a pass's iterations as part of the frame's: counted on from `done`, out of `total`."""
    def forward(event: Event) -> None:
        if isinstance(event, IterationDone):
            event = IterationDone(event.iteration + done, total, event.loss)
        emit(event)
    return forward


# Largest per-channel difference, in [0, 1] units, for a pixel to count as unchanged in place
# (tighter than flow.PHOTOMETRIC_THRESHOLD: a pixel linked without any flow must really be the same).
STILL_THRESHOLD = 0.05
# With several offsets, how much worse (largest per-channel difference, [0, 1] units) a nearer frame's
# link may explain the content than the best one and still hold the pixel (about 1/255, noise).
LINK_MARGIN = 0.005
# Largest per-channel difference for a pixel to count as the same in place even where the flow links
# it too: only then does the link in place replace the flow's (about 2.5/255; a pan over a mild
# texture changes pixels more than that, a still background under compression noise less).
STILL_EXACT = 0.01
# Smallest content change (largest per-channel difference, [0, 1] units, about 8/255) that `residual`
# carries into the warped result; below it, frame-to-frame compression noise.
RESIDUAL_FLOOR = 0.03
STILL_WINDOW = 3  # ... over each pixel's 3x3 neighbourhood (5x5 left the occluder's revealed/static at 3.11, 3x3 2.46: docs/quality.md)


@dataclass(frozen=True)
class Link:
    """How frame t relates to the frames before it: the warped earlier results, their weights, and
    whether t starts a new shot. Index 0 along the first axis is frame t-1, then t-2, t-4 ..."""

    warped: torch.Tensor  # (J, 3, H, W) earlier stylized frames in frame t's geometry, nearest first
    mask: torch.Tensor  # (J, 1, H, W) per-pixel weights, each pixel held by its nearest visible frame
    unlinked: float  # share of pixels the flow cannot explain from frame t-1
    cut: bool

    def start(self) -> torch.Tensor:
        """The warped start (1, 3, H, W): each pixel from the nearest earlier frame where it is visible,
        frame t-1 where none is. With long-term offsets a background uncovered by something that
        passed in front of it starts as it was before, not as the occluder was painted."""
        held = self.mask.sum(0, keepdim=True).clamp(max=1.0)  # (1, 1, H, W)
        return (self.mask * self.warped).sum(0, keepdim=True) + (1 - held) * self.warped[:1]


def link_frames(config: Config, flows: Flows, content: torch.Tensor, earlier: list[torch.Tensor]) -> Link:
    """Warp the earlier results along the content's flows; occlusion masks and the scene-cut test.

    `content` is frame t as (1, 3, H, W) on the run's device; `earlier` holds the stylized frames
    t-1, t-2, ... of the current shot, nearest first; `flows` link t to the content frames before it.
    Each mask is Ruder's (forward-backward and motion-boundary checks) times a photometric check, and
    the masks of several offsets are made exclusive, nearest first (Ruder et al. 2016, eq. 9), among
    the links that explain the content within `LINK_MARGIN` of the best one.
    """
    device = content.device
    warped, masks, errors, unlinked = [], [], [], 1.0
    for j in sorted(flows.backward):
        if j > len(earlier):
            break
        previous_content = io.to_tensor(flows.earlier[j]).to(device)
        backward, mask = flow_and_mask(flows.forward[j], flows.backward[j], content)
        error = flow.photometric_error(previous_content, content, backward)  # (1, 1, H, W)
        if j == 1:
            unlinked = flow.unlinked_share(mask, error)
            if is_scene_cut(config, unlinked):
                return Link(earlier[0], content.new_zeros((1, 1, *content.shape[-2:])), unlinked, True)
        mask = mask * (error <= flow.PHOTOMETRIC_THRESHOLD).to(mask.dtype)
        moved = flow.warp(earlier[j - 1], backward)
        if j == 1 and config.residual > 0:
            moved = moved + config.residual * mask * _unexplained(previous_content, content, backward)
        if j > 1:
            moved, mask, error = _in_place(earlier[j - 1], previous_content, content, moved, mask, error)
        masks.append(mask)
        warped.append(moved)
        errors.append(error)
    masks = torch.cat(masks)
    if len(masks) > 1:
        # Departs from Ruder eq. 9: a nearer frame holds a pixel only if its link explains the content
        # about as well as the best one; a dragged flow to t-1 that passes the checks must not win
        # over t-4's exact link in place (docs/quality.md, Long-term consistency).
        masks = flow.best_explained(masks, torch.cat(errors), margin=LINK_MARGIN)
    return Link(torch.cat(warped), flow.closest_first(masks), unlinked, False)


def _unexplained(previous_content: torch.Tensor, content: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """What the flow does not explain of frame t's content: t minus t-1 warped into it, (1, 3, H, W),
    zero where no channel differs by more than RESIDUAL_FLOOR.

    Each warp blurs and misplaces a few-pixel object a little, and the content layer (8 px per
    feature) barely sees an object that size, so a chain loses it within a few dozen frames; the
    content's own change puts it back (departs from Ruder: docs/quality.md, Residual).
    """
    change = content - flow.warp(previous_content, backward)  # (1, 3, H, W)
    return change * (change.abs().amax(1, keepdim=True) > RESIDUAL_FLOOR).to(change.dtype)


def _in_place(stylized: torch.Tensor, previous_content: torch.Tensor, content: torch.Tensor, moved: torch.Tensor,
              mask: torch.Tensor, error: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A long-term offset's link, (moved, mask, error), with pixels linked in place where their content
    is unchanged there and the flow could not link them or explains them worse.

    DIS drags the background behind a moving occluder along with it, so the flow check rejects, or
    links to the wrong place, exactly the background that reappears (docs/quality.md, Long-term consistency).
    Replacing a link the flow made needs the pixel's neighbourhood unchanged too: in a pan over a
    mild texture a pixel can look unchanged in place while the picture moves.
    """
    in_place = flow.photometric_error(previous_content, content, content.new_zeros((1, 2, *content.shape[-2:])))
    still = (((mask < 0.5) & (in_place <= STILL_THRESHOLD))
             | ((_around(in_place) <= STILL_EXACT) & (in_place + LINK_MARGIN < error))).to(mask.dtype)
    return (still * stylized + (1 - still) * moved, torch.maximum(mask, still),
            still * in_place + (1 - still) * error)


def _around(error: torch.Tensor) -> torch.Tensor:
    """The largest of `error` (1, 1, H, W) over each pixel's neighbourhood (STILL_WINDOW wide)."""
    return F.max_pool2d(error, STILL_WINDOW, stride=1, padding=STILL_WINDOW // 2)


def flow_and_mask(forward: torch.Tensor | None, backward: torch.Tensor | None, content: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow from frame t to an earlier frame on `content`'s device, and Ruder's occlusion mask
    (1, 1, H, W) for it; for --flow none (both None) zero flow and every pixel trusted."""
    if backward is None:
        return (torch.zeros((1, 2, *content.shape[-2:]), device=content.device),
                torch.ones((1, 1, *content.shape[-2:]), device=content.device))
    backward = backward.to(content.device)
    return backward, flow.occlusion_mask(forward.to(content.device), backward)


def link_back(method: Flow, previous: np.ndarray, current: np.ndarray, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """How frame `current` links back to `previous` (uint8 (H, W, 3) both), as the chain links
    frames: the flow from `current` to `previous` (1, 2, H, W) and the mask of pixels it explains
    (1, 1, H, W), Ruder's occlusion checks times the photometric check, on `device`."""
    content = io.to_tensor(current).to(device)
    forward = backward = None
    if method != Flow.none:
        forward = flow.optical_flow(previous, current, method=method)
        backward = flow.optical_flow(current, previous, method=method)
    backward, mask = flow_and_mask(forward, backward, content)
    return backward, mask * flow.photometric_mask(io.to_tensor(previous).to(device), content, backward)


def initial_image(init: Init, content: torch.Tensor, previous: torch.Tensor | None, link: Link | None) -> torch.Tensor:
    """Where a frame's optimisation starts (Ruder et al. 2016, section 3.1); the content if no previous."""
    if previous is None or init == Init.content:
        return content
    if init == Init.random:
        return torch.rand(content.shape).to(content.device)  # drawn on the CPU, so seeded runs match across devices
    if init == Init.prev:
        return previous
    return link.start()
