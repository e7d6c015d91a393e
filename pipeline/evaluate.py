"""How steady and how stylized a result is: the temporal warping error and mean losses.

Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency", E_warp): for each pair
of consecutive frames, the squared difference between stylized frame t and stylized frame t-1
warped into t along the *content's* backward flow, averaged over the pixels that Ruder's occlusion
mask trusts and over the RGB channels, in [0, 1] units; then averaged over the pairs. The same figure
on the content frames is the floor set by the flow itself: a result cannot be steadier than that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from . import flow, io
from .config import Config, Flow
from .errors import InputError
from .model import VGG19, load_vgg19
from .optimize import Targets, content_targets, frame_losses, style_grams


@dataclass(frozen=True)
class Evaluation:
    n_frames: int  # frames compared (the shorter of the two videos)
    width: int
    height: int
    warp_error: float  # E_warp of the stylized video
    content_warp_error: float  # E_warp of the content: the flow's own floor
    style_loss: float | None = None  # mean unweighted style loss per frame (with styles)
    content_loss: float | None = None  # mean unweighted content loss per frame (with styles)
    stride: int = 1  # frames between the two compared: t and t - stride


def warp_error(frames: list[np.ndarray], guides: list[np.ndarray], *, method: Flow = Flow.dis, stride: int = 1) -> float:
    """Mean masked E_warp of uint8 (H, W, 3) `frames`, using flow and masks from `guides` (same size).

    `stride` K compares frame t with frame t-K, along the flow computed directly between them: the
    long-term measure (does a background come back as it was after something passed in front of it?).
    """
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    if len(frames) <= stride:
        raise ValueError(f"need more than {stride} frames to measure a warping error at stride {stride}, got {len(frames)}")
    errors = []
    for t in range(stride, len(frames)):
        forward = flow.optical_flow(guides[t - stride], guides[t], method=method)
        backward = flow.optical_flow(guides[t], guides[t - stride], method=method)
        mask = flow.occlusion_mask(forward, backward)  # (1, 1, H, W)
        errors.append(flow.warp_residual(io.to_tensor(frames[t - stride]), io.to_tensor(frames[t]), backward, mask))
    return float(np.mean(errors))


def evaluate_video(
    content: Path, stylized: Path, styles: list[Path] = (), config: Config = Config(), *,
    callback: Callable[[int], None] | None = None, stride: int = 1,
) -> Evaluation:
    """Compare a stylized video with its content at the stylized video's size.

    `stride` K measures the warping error between frames t and t-K (see `warp_error`).
    `callback` receives the number of frames read so far. Raises InputError for unreadable videos.
    """
    io.probe_video(content), io.probe_video(stylized)  # fail on either before decoding anything
    outputs = [frame.image for frame in io.read_video(stylized, max_side=None, max_frames=config.max_frames)]
    height, width = outputs[0].shape[:2]
    guides = [cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
              for frame in io.read_video(content, max_side=None, max_frames=len(outputs))]
    n = min(len(outputs), len(guides))
    if n <= stride:
        raise InputError(f"{stylized}: needs at least {stride + 1} frames to measure flicker at stride {stride}, has {n}")
    outputs, guides = outputs[:n], guides[:n]
    method = config.flow if config.flow != Flow.none else Flow.dis
    result = Evaluation(n, width, height, warp_error(outputs, guides, method=method, stride=stride),
                        warp_error(guides, guides, method=method, stride=stride), stride=stride)
    if styles:
        style, content_loss = _mean_losses(outputs, guides, styles, config, callback)
        result = replace(result, style_loss=style, content_loss=content_loss)
    return result


def _mean_losses(
    outputs: list[np.ndarray], guides: list[np.ndarray], styles: list[Path], config: Config,
    callback: Callable[[int], None] | None,
) -> tuple[float, float]:
    """Unweighted style and content losses of each output frame against the styles and its content."""
    judge = evaluator(styles, config, long_side=max(outputs[0].shape[:2]))
    totals = np.zeros(2)
    for index, (output, guide) in enumerate(zip(outputs, guides)):
        totals += frame_style_content(judge, io.to_tensor(output), io.to_tensor(guide))
        if callback is not None:
            callback(index + 1)
    return tuple(totals / len(outputs))


@dataclass(frozen=True)
class Evaluator:
    """What the style and content losses of every evaluated frame share (`evaluator`)."""

    model: VGG19
    grams: dict[str, torch.Tensor]  # the styles' blended Grams, read at the outputs' long side x style_scale
    config: Config  # the run's, with unit content and style weights and no TV or temporal term


def evaluator(styles: list[Path], config: Config, *, long_side: int) -> Evaluator:
    """The evaluator for outputs of long side `long_side` px: the VGG and the style Grams of
    `config`, the losses unweighted. Raises InputError if a style image cannot be read."""
    unweighted = replace(config, content_weight=1.0, style_weight=1.0, tv_weight=0.0, temporal_weight=0.0)
    model = load_vgg19(pooling=config.pooling.value, weights=Path(config.weights) if config.weights else None)
    images = [io.to_tensor(io.read_image(p, max_side=max(16, round(long_side * config.style_scale)))) for p in styles]
    return Evaluator(model, style_grams(model, images, config.style_blend, unweighted), unweighted)


@torch.no_grad()
def frame_style_content(judge: Evaluator, output: torch.Tensor, guide: torch.Tensor) -> tuple[float, float]:
    """The unweighted style and content loss of `output` (1, 3, H, W) RGB in [0, 1] against the
    evaluator's styles and `guide`, its content frame (same shape)."""
    targets = Targets(content_targets(judge.model, guide, judge.config), judge.grams)
    losses = frame_losses(judge.model, output, targets, judge.config)
    return losses["style"].item(), losses["content"].item()
