"""The temporal chain of Ruder et al. 2016: stylize frames in order, each from the one before.

A `Session` holds what a run computes once (device, truncated VGG, style Grams); `stylize_sequence`
turns content frames into `Step`s, linking each frame to the previous one through optical flow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import flow, io
from .checkpoint import Resume
from .config import Config, Device, Flow, Init
from .errors import ConfigError, InputError
from .events import Callback, FrameDone, FrameStarted, Notice
from .model import LAYER_NAMES, VGG19, load_vgg19
from .optimize import Targets, content_targets, style_grams, stylize_frame


@dataclass(frozen=True)
class Session:
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


def minimum_side(config: Config) -> int:
    """Shortest frame side the deepest layer needs: each of its pools halves the size (conv5_1: 16)."""
    deepest = max((config.content_layer, *config.style_layers), key=_layer_index)
    return 2 ** (int(deepest[4]) - 1)  # "conv5_1" is behind 4 pools


def _layer_index(name: str) -> int:
    if name not in LAYER_NAMES:
        raise ConfigError(f"unknown VGG-19 layer '{name}'; known: {', '.join(LAYER_NAMES)}")
    return LAYER_NAMES.index(name)


def prepare_session(config: Config, styles: list[Path], *, long_side: int) -> Session:
    """Pick the device, load the VGG truncated at the deepest layer used, and compute style Grams."""
    if config.style_blend and len(config.style_blend) != len(styles):
        raise ConfigError(f"--style-blend has {len(config.style_blend)} weights for {len(styles)} style image(s)")
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    images = [io.read_image(path, max_side=max(16, round(long_side * config.style_scale))) for path in styles]
    deepest = max((config.content_layer, *config.style_layers), key=_layer_index)
    weights = Path(config.weights) if config.weights else None
    model = load_vgg19(last_layer=deepest, pooling=config.pooling.value, weights=weights).to(device)
    grams = style_grams(model, [io.to_tensor(image).to(device) for image in images], config.style_blend, config)
    return Session(config, device, model, grams)


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
    """
    config, model = session.config, session.model
    previous_frame = resume.frame
    previous = None if resume.stylized is None else resume.stylized.to(session.device)
    for index, frame in enumerate(frames, start=resume.done):
        start = time.perf_counter()
        content = io.to_tensor(frame).to(session.device)
        link = None if previous is None else link_frames(config, previous_frame, frame, previous)
        cut = link is not None and link.cut
        if cut:
            emit(Notice(f"frame {index + 1}: scene cut ({link.unlinked:.0%} of pixels unlinked), restarting from the content"))
        chained = link is not None and not cut
        targets = Targets(content_targets(model, content, config), session.grams,
                          warped=link.warped if chained and config.temporal_weight > 0 else None,
                          mask=link.mask if chained else None)
        init = initial_image(config.init, content, previous if chained else None, link)
        n_iters = config.iterations if chained else config.first_iterations
        emit(FrameStarted(index, n_iters))
        result = stylize_frame(model, init, targets, config=config, n_iters=n_iters, callback=emit)
        previous, previous_frame = result.image, frame
        record = FrameDone(index, result.iterations, time.perf_counter() - start, result.losses, cut)
        yield Step(io.to_array(result.image), result.image, frame, record)


@dataclass(frozen=True)
class Link:
    """How frame t relates to frame t-1: the warped previous result, its mask, and whether it is a cut."""

    warped: torch.Tensor  # (1, 3, H, W) previous stylized frame in frame t's geometry
    mask: torch.Tensor  # (1, 1, H, W) 1 where the flow is trusted
    unlinked: float  # share of pixels the flow cannot explain
    cut: bool


def link_frames(config: Config, previous_frame: np.ndarray, frame: np.ndarray, previous_stylized: torch.Tensor) -> Link:
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
