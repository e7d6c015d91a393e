"""The temporal chain of Ruder et al. 2016: stylize frames in order, each from the one before.

A `Session` holds what a run computes once (device, truncated VGG, style Grams); `stylize_sequence`
turns content frames into `Step`s, linking each frame to the previous one through optical flow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import flow, io
from .checkpoint import Resume
from .config import Config, Device, Flow, Init, Precision
from .errors import ConfigError, InputError
from .events import Callback, Event, FrameDone, FrameStarted, Notice
from .model import LAYER_NAMES, VGG19, load_vgg19
from .optimize import FrameResult, IterationDone, Targets, content_targets, style_grams, stylize_frame
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
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    full, coarse = read_styles(config, styles, long_side=long_side)
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
    """One finished frame: the image to write, the full-precision result, its content, its record."""

    image: np.ndarray
    stylized: torch.Tensor
    frame: np.ndarray
    record: FrameDone


def stylize_sequence(session: Session, frames: Iterable[np.ndarray], emit: Callback, resume: Resume) -> Iterator[Step]:
    """Stylize frames in order; each frame after the first starts from the previous result.

    Ruder et al. 2016: the previous stylized frame, warped along the content's flow, is both the
    starting point and the target of the temporal loss outside occlusions. A scene cut restarts
    the chain from the content, as the first frame of a sequence does. `resume` continues a chain.
    Decoding and optical flow run `config.prefetch` frames ahead in a background thread.
    """
    config, model = session.config, session.model
    previous = None if resume.stylized is None else resume.stylized.to(session.device)
    ahead = prefetch(_with_flow(config, frames, resume.frame), depth=config.prefetch)
    for index, (frame, flows) in enumerate(ahead, start=resume.done):
        start = time.perf_counter()
        content = io.to_tensor(frame).to(session.device)
        link = None if previous is None else link_frames(config, flows, content, previous)
        linked = time.perf_counter()
        cut = link is not None and link.cut
        if cut:
            emit(Notice(f"frame {index + 1}: scene cut ({link.unlinked:.0%} of pixels unlinked), restarting from the content"))
        chained = link is not None and not cut
        targets = Targets(content_targets(model, content, config), session.grams,
                          warped=link.warped if chained and config.temporal_weight > 0 else None,
                          mask=link.mask if chained else None)
        if chained:
            init = initial_image(config.init, content, previous, link)
            emit(FrameStarted(index, config.iterations))
            result = stylize_frame(model, init, targets, config=config, n_iters=config.iterations, callback=emit)
        else:
            result = start_shot(session, content, targets, index, emit)
        previous = result.image
        done = time.perf_counter()
        # The flow itself may have run in the background: it counts in flow_seconds, not in seconds.
        record = FrameDone(index, result.iterations, done - start, result.losses, cut,
                           flow_seconds=linked - start + (flows.seconds if flows else 0.0),
                           optimize_seconds=done - linked)
        yield Step(io.to_array(result.image), result.image, frame, record)


@dataclass(frozen=True)
class Flows:
    """Optical flow between two content frames, both ways, and the seconds it took."""

    previous_frame: np.ndarray  # frame t-1, uint8 (H, W, 3)
    forward: torch.Tensor | None  # (1, 2, H, W) t-1 -> t, on the CPU; None for --flow none
    backward: torch.Tensor | None  # (1, 2, H, W) t -> t-1
    seconds: float


def _with_flow(config: Config, frames: Iterable[np.ndarray], previous_frame: np.ndarray | None
               ) -> Iterator[tuple[np.ndarray, Flows | None]]:
    """Each frame with its flow to the frame before (None for the very first): content only, so it
    can run ahead of the stylization."""
    for frame in frames:
        flows = None
        if previous_frame is not None:
            start = time.perf_counter()
            forward = backward = None
            if config.flow != Flow.none:
                forward = flow.optical_flow(previous_frame, frame, method=config.flow)
                backward = flow.optical_flow(frame, previous_frame, method=config.flow)
            flows = Flows(previous_frame, forward, backward, time.perf_counter() - start)
        yield frame, flows
        previous_frame = frame


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


@dataclass(frozen=True)
class Link:
    """How frame t relates to frame t-1: the warped previous result, its mask, and whether it is a cut."""

    warped: torch.Tensor  # (1, 3, H, W) previous stylized frame in frame t's geometry
    mask: torch.Tensor  # (1, 1, H, W) 1 where the flow is trusted
    unlinked: float  # share of pixels the flow cannot explain
    cut: bool


def link_frames(config: Config, flows: Flows, content: torch.Tensor, previous_stylized: torch.Tensor) -> Link:
    """Warp the previous result along the content's flow; occlusion mask and scene-cut test.

    `content` is frame t as (1, 3, H, W) on the run's device; `flows` link it to frame t-1.
    """
    device = previous_stylized.device
    if flows.backward is None:
        backward = torch.zeros((1, 2, *content.shape[-2:]), device=device)
        mask = torch.ones((1, 1, *content.shape[-2:]), device=device)
    else:
        backward = flows.backward.to(device)
        mask = flow.occlusion_mask(flows.forward.to(device), backward)
    previous_content = io.to_tensor(flows.previous_frame).to(device)
    unlinked = flow.unlinked_fraction(previous_content, content, backward, mask)
    return Link(flow.warp(previous_stylized, backward), mask, unlinked, unlinked > config.cut_threshold)


def initial_image(init: Init, content: torch.Tensor, previous: torch.Tensor | None, link: Link | None) -> torch.Tensor:
    """Where a frame's optimisation starts (Ruder et al. 2016, section 3.1); the content if no previous."""
    if previous is None or init == Init.content:
        return content
    if init == Init.random:
        return torch.rand(content.shape).to(content.device)  # drawn on the CPU, so seeded runs match across devices
    if init == Init.prev:
        return previous
    return link.warped
