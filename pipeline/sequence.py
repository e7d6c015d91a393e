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

from . import flow, io
from .checkpoint import Resume
from .config import Config, Device, Flow, Init, Precision
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
    coarse_grams: dict[str, torch.Tensor] | None = None  # the style at the coarse pass's size


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


def deepest_layer(config: Config) -> str:
    """The last VGG-19 layer the losses read; the network is cut after it."""
    return max((config.content_layer, *config.style_layers), key=_layer_index)


def minimum_side(config: Config) -> int:
    """Shortest frame side the deepest layer needs: each of its pools halves the size (conv5_1: 16)."""
    return 2 ** (int(deepest_layer(config)[4]) - 1)  # "conv5_1" is behind 4 pools


def _layer_index(name: str) -> int:
    if name not in LAYER_NAMES:
        raise ConfigError(f"unknown VGG-19 layer '{name}'; known: {', '.join(LAYER_NAMES)}")
    return LAYER_NAMES.index(name)


def prepare_session(config: Config, styles: list[Path], *, long_side: int) -> Session:
    """Pick the device, read and check the styles, load the VGG truncated at the deepest layer used,
    and compute style Grams. Everything that can fail without the model fails before it loads."""
    if config.style_blend and len(config.style_blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(config.style_blend)} weights for {len(styles)} style image(s)")
    full, coarse = read_styles(config, styles, long_side=long_side)
    return session_from_styles(config, full, coarse)


def session_from_styles(config: Config, full: list[np.ndarray], coarse: list[np.ndarray] | None) -> Session:
    """`prepare_session` from style images already read (`read_styles`): a Ray task gets them
    through the object store instead of from files."""
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    model = load_model(config, device)

    def grams_at(images: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return style_grams(model, [io.to_tensor(image).to(device) for image in images], config.style_blend, config)

    # The coarse pass sees the style at its own scale, so strokes keep their size relative to the
    # frame; a style image too narrow for that keeps its full-size Grams.
    full_grams = grams_at(full)
    coarse_grams = (grams_at(coarse) if coarse else full_grams) if config.coarse_to_fine else None
    return Session(config, device, model, full_grams, coarse_grams)


def read_styles(config: Config, styles: list[Path], *, long_side: int
                ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The style images, uint8 (H, W, 3), at the size the run uses them (long side `style_scale`
    times the frames' `long_side`), and at the coarse pass's size (None if any would be too small
    there, or coarse-to-fine is off).

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
    full = [io.read_image(path, max_side=side) for path in styles]
    if not config.coarse_to_fine:
        return full, None
    try:
        coarse = [io.read_image(path, max_side=max(1, round(side * config.coarse_scale))) for path in styles]
    except InputError:  # too small to read at that size
        return full, None
    return full, (coarse if min(min(image.shape[:2]) for image in coarse) >= minimum_side(config) else None)


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

    def push(self, stylized: torch.Tensor, frame: np.ndarray, level: float, *,
             new_shot: bool, keep: int) -> None:
        self.stylized = [*self.stylized, stylized][-keep:]
        self.frames = [*self.frames, frame][-keep:]
        self.level = level
        self.length = 1 if new_shot else self.length + 1

    def earlier(self) -> list[torch.Tensor]:
        """Stylized frames t-1, t-2, ... of the current shot, nearest first."""
        return self.stylized[::-1][: self.length]

    def state(self) -> dict[str, Any]:
        return {"stylized": torch.cat(self.stylized).cpu(), "frames": torch.from_numpy(np.stack(self.frames)),
                "level": self.level, "length": self.length}

    @classmethod
    def restore(cls, state: dict[str, Any] | None, device: torch.device) -> Chain:
        if state is None:
            return cls()
        return cls([image[None].to(device) for image in state["stylized"]], list(state["frames"].numpy()),
                   state["level"], state["length"])


def temporal_offsets(config: Config) -> tuple[int, ...]:
    """The earlier frames a frame is held to: 1 (Ruder's short-term loss) and those of `long_term`."""
    return tuple(sorted({1, *config.long_term}))


def stylize_sequence(session: Session, frames: Iterable[np.ndarray], emit: Callback, resume: Resume) -> Iterator[Step]:
    """Stylize frames in order; each frame after the first starts from the previous result.

    Ruder et al. 2016: the previous stylized frame, warped along the content's flow, is both the
    starting point and the target of the temporal loss outside occlusions; with `long_term`, frames
    t-2, t-4 ... are targets too (section 3.2). A scene cut restarts the chain from the content, as
    the first frame of a sequence does. `resume` continues a chain. Decoding and optical flow run
    `config.prefetch` frames ahead in a background thread.
    """
    config, model = session.config, session.model
    offsets = temporal_offsets(config)
    chain = Chain.restore(resume.chain, session.device)
    ahead = prefetch(_with_flow(config, frames, chain.frames, offsets), depth=config.prefetch)
    for index, (frame, flows) in enumerate(ahead, start=resume.done):
        start = time.perf_counter()
        content = io.to_tensor(frame).to(session.device)
        link = link_frames(config, flows, content, chain.earlier()) if chain.length else None
        linked = time.perf_counter()
        cut = link is not None and link.cut
        if cut:
            emit(Notice(f"frame {index + 1}: scene cut ({link.unlinked:.0%} of pixels unlinked), restarting from the content"))
        chained = link is not None and not cut
        targets = Targets(content_targets(model, content, config), session.grams,
                          warped=link.warped if chained and config.temporal_weight > 0 else None,
                          mask=link.mask if chained else None)
        if chained:
            init = initial_image(config.init, content, chain.stylized[-1], link)
            emit(FrameStarted(index, config.iterations))
            # With settle, a frame that starts from the one before stops once it is as close to its
            # content and style as that one: the shot keeps the look its first frame reached (README, Drift).
            settles = config.settle and config.init in (Init.prev_warped, Init.prev)
            result = stylize_frame(model, init, targets, config=config, n_iters=config.iterations, callback=emit,
                                   level=chain.level if settles else None)
        else:
            result = start_shot(session, content, targets, index, emit)
        # A frame kept untouched keeps the level it was measured against, so a slow creep (the blur
        # of repeated warps) adds up against one level and is corrected once it passes the tolerance.
        level = chain.level if chained and result.iterations == 0 else look(result.losses)
        chain.push(result.image, frame, level, new_shot=not chained, keep=max(offsets))
        done = time.perf_counter()
        # The flow itself may have run in the background: it counts in flow_seconds, not in seconds.
        record = FrameDone(index, result.iterations, done - start, result.losses, cut,
                           flow_seconds=linked - start + (flows.seconds if flows else 0.0),
                           optimize_seconds=done - linked)
        yield Step(io.to_array(result.image), frame, record, chain.state())


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
    """The first frame of a shot, from its content; coarse-to-fine when the session has coarse Grams.

    The coarse pass optimises the frame at `coarse_scale` of its size, where an iteration costs
    about coarse_scale**2 as much and large structures settle in fewer iterations; its result,
    upsampled, starts the full-size pass, as Gatys et al. 2017 ("Controlling Perceptual Factors in
    Neural Style Transfer") do for high resolutions.
    Each pass stops at `first_iterations` or earlier by `stop_tolerance`; the record counts both.
    """
    config, model = session.config, session.model
    size = coarse_size(content.shape[-2:], config) if session.coarse_grams is not None else None
    budget = config.first_iterations * (2 if size else 1)
    emit(FrameStarted(index, budget))
    init, done = content, 0
    if size:
        small = F.interpolate(content, size=size, mode="bilinear", antialias=True, align_corners=False)
        small_targets = Targets(content_targets(model, small, config), session.coarse_grams)
        coarse = stylize_frame(model, small, small_targets, config=config, n_iters=config.first_iterations,
                               callback=_offset(emit, 0, budget))
        init = F.interpolate(coarse.image, size=content.shape[-2:], mode="bilinear", align_corners=False)
        done = coarse.iterations
    result = stylize_frame(model, init, targets, config=config, n_iters=config.first_iterations,
                           callback=_offset(emit, done, budget))
    return dataclasses.replace(result, iterations=result.iterations + done)


def coarse_size(size: tuple[int, int], config: Config) -> tuple[int, int] | None:
    """(height, width) of the coarse pass, or None where it would be too small for the network."""
    height, width = (max(1, round(side * config.coarse_scale)) for side in size)
    return (height, width) if min(height, width) >= minimum_side(config) else None


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
    the masks of several offsets are made exclusive, nearest first (Ruder et al. 2016, eq. 9).
    """
    device = content.device
    warped, masks, unlinked = [], [], 1.0
    for j in sorted(flows.backward):
        if j > len(earlier):
            break
        previous_content = io.to_tensor(flows.earlier[j]).to(device)
        backward, mask = flow_and_mask(flows.forward[j], flows.backward[j], content)
        if j == 1:
            unlinked = flow.unlinked_fraction(previous_content, content, backward, mask)
            if unlinked > config.cut_threshold:
                return Link(earlier[0], content.new_zeros((1, 1, *content.shape[-2:])), unlinked, True)
        mask = mask * flow.photometric_mask(previous_content, content, backward)
        moved = flow.warp(earlier[j - 1], backward)
        if j > 1:
            # Long-term offsets also link a pixel the flow could not where its content is unchanged in
            # place: DIS drags the background behind a moving occluder along with it, and the flow
            # check then rejects exactly the background that reappears (README, Long-term consistency).
            still = (1 - mask) * flow.photometric_mask(previous_content, content, torch.zeros_like(backward),
                                                       threshold=STILL_THRESHOLD)
            moved = still * earlier[j - 1] + (1 - still) * moved
            mask = mask + still
        masks.append(mask)
        warped.append(moved)
    return Link(torch.cat(warped), flow.closest_first(torch.cat(masks)), unlinked, False)


def flow_and_mask(forward: torch.Tensor | None, backward: torch.Tensor | None, content: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow from frame t to an earlier frame on `content`'s device, and Ruder's occlusion mask
    (1, 1, H, W) for it; for --flow none (both None) zero flow and every pixel trusted."""
    if backward is None:
        return (torch.zeros((1, 2, *content.shape[-2:]), device=content.device),
                torch.ones((1, 1, *content.shape[-2:]), device=content.device))
    backward = backward.to(content.device)
    return backward, flow.occlusion_mask(forward.to(content.device), backward)


def initial_image(init: Init, content: torch.Tensor, previous: torch.Tensor | None, link: Link | None) -> torch.Tensor:
    """Where a frame's optimisation starts (Ruder et al. 2016, section 3.1); the content if no previous."""
    if previous is None or init == Init.content:
        return content
    if init == Init.random:
        return torch.rand(content.shape).to(content.device)  # drawn on the CPU, so seeded runs match across devices
    if init == Init.prev:
        return previous
    return link.start()
