"""The optimiser loop for one image: Gatys et al. 2015, with Ruder et al. 2016's temporal term.

Convention: images are (1, 3, H, W) float32 RGB in [0, 1] on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import Config, Optimizer
from .losses import content_loss, gram_matrix, style_loss, temporal_loss, tv_loss
from .model import VGG19

# Loss values for the progress bar are read (a device sync on a GPU) this often.
REPORT_EVERY = 5
# Adam's default step on [0, 1] pixels: about 5/255 per step, large enough to restyle in a few hundred steps.
ADAM_LEARNING_RATE = 0.02


@dataclass(frozen=True)
class Targets:
    """What one frame is optimised towards.

    `content`: content-layer features of the frame; `grams`: the run's style Grams (B=1);
    `warped` and `mask`: the previous stylized frame warped into this one, (1, 3, H, W), and its
    per-pixel weights (1, 1, H, W) for the temporal loss, or None for no temporal loss.
    """

    content: dict[str, Tensor]
    grams: dict[str, Tensor]
    warped: Tensor | None = None
    mask: Tensor | None = None


@dataclass(frozen=True)
class IterationDone:
    """Progress report after each iteration; `loss` is None except every REPORT_EVERY iterations."""

    iteration: int
    n_iters: int
    loss: float | None


@dataclass(frozen=True)
class FrameResult:
    image: Tensor  # (1, 3, H, W) RGB in [0, 1], detached
    iterations: int  # iterations actually run
    losses: dict[str, float]  # weighted terms at the result: content, style, tv, temporal, total


def frame_losses(model: VGG19, image: Tensor, targets: Targets, config: Config) -> dict[str, Tensor]:
    """Weighted loss terms of `image` and their sum under "total" (Gatys eq. 7, Ruder eq. 8)."""
    layers = (config.content_layer, *config.style_layers)
    features = model(image, tuple(dict.fromkeys(layers)))
    style = sum(
        weight * style_loss(gram_matrix(features[name]), targets.grams[name])
        for name, weight in zip(config.style_layers, config.style_layer_weights)
    )
    terms = {
        "content": config.content_weight * content_loss(features[config.content_layer], targets.content[config.content_layer]),
        "style": config.style_weight * style,
        "tv": config.tv_weight * tv_loss(image),
    }
    if targets.warped is not None and config.temporal_weight > 0:
        terms["temporal"] = config.temporal_weight * temporal_loss(image, targets.warped, targets.mask)
    terms["total"] = sum(terms.values())
    return terms


def stylize_frame(
    model: VGG19,
    init: Tensor,
    targets: Targets,
    *,
    config: Config,
    n_iters: int,
    callback: Callable[[IterationDone], None] | None = None,
) -> FrameResult:
    """Optimise the pixels of `init` for `n_iters` iterations and return the result.

    `init` is not modified. Pixels move freely during the optimisation and the result is clamped
    to [0, 1], as in Gatys's and Ruder's code: clamping after every step breaks L-BFGS's curvature
    pairs, and with a strong temporal term that made some frames diverge (measured: README).
    L-BFGS without a line search is not monotone, so the result is the best point evaluated.
    """
    image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    optimizer = _make_optimizer(image, config)
    best = {"loss": image.new_tensor(float("inf")), "image": image.detach().clone()}

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = frame_losses(model, image, targets, config)["total"]
        loss.backward()
        _keep_best(best, loss.detach(), image.detach())
        return loss

    for iteration in range(1, n_iters + 1):
        loss = optimizer.step(closure)
        if callback is not None:
            report = iteration % REPORT_EVERY == 0 or iteration == n_iters
            callback(IterationDone(iteration, n_iters, float(loss.detach()) if report else None))
    with torch.no_grad():
        _keep_best(best, frame_losses(model, image, targets, config)["total"], image.detach())
        result = best["image"].clamp(0.0, 1.0)
        final = {name: float(value) for name, value in frame_losses(model, result, targets, config).items()}
    return FrameResult(result, n_iters, final)


def _keep_best(best: dict[str, Tensor], loss: Tensor, image: Tensor) -> None:
    """Remember the lowest-loss image without a device sync (no Python branch on a tensor)."""
    better = loss < best["loss"]
    best["image"] = torch.where(better, image, best["image"])
    best["loss"] = torch.minimum(loss, best["loss"])


def _make_optimizer(image: Tensor, config: Config) -> torch.optim.Optimizer:
    if config.optimizer == Optimizer.adam:
        return torch.optim.Adam([image], lr=config.learning_rate or ADAM_LEARNING_RATE)
    # One L-BFGS iteration per step() call; the curvature history lives in the optimiser's state,
    # so it carries across calls and the loop can report progress after each iteration.
    return torch.optim.LBFGS([image], lr=config.learning_rate or 1.0, max_iter=1, history_size=50)


def content_targets(model: VGG19, content: Tensor, config: Config) -> dict[str, Tensor]:
    """Content-layer features of the (1, 3, H, W) content image, detached."""
    with torch.no_grad():
        return model(content, (config.content_layer,))


def style_grams(model: VGG19, styles: list[Tensor], blend: tuple[float, ...], config: Config) -> dict[str, Tensor]:
    """Blended style Gram matrices {layer: (1, C, C)}, computed once per run.

    Several styles: the weighted mean of their Grams, which is the minimiser of the weighted sum of
    the per-style losses (so it blends exactly as separate losses would, at a third of the cost).
    """
    weights = blend or (1.0,) * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(weights)} style blend weights for {len(styles)} style images")
    grams = {name: 0.0 for name in config.style_layers}
    with torch.no_grad():
        for style, weight in zip(styles, weights):
            features = model(style, config.style_layers)
            for name in config.style_layers:
                grams[name] = grams[name] + weight / sum(weights) * gram_matrix(features[name])
    return grams
